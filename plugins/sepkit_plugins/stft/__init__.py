"""The ``magnitude-stft`` representation plugin."""

from sepkit import hookimpl


@hookimpl
def register_representations(register):
    from .representation import MagnitudeSTFT

    register("magnitude-stft", MagnitudeSTFT)
