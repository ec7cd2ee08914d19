"""sepkit-waveform: separation on raw waveforms, as a third-party sepkit plugin.

Registers, through the ``sepkit`` entry-point group (see pyproject.toml):

* ``waveform``    representation: the samples themselves, ``[B, C, 1, L]`` (one bin, one frame per sample)
* ``wave-unet``   separator: a small Wave-U-Net (Stoller, Ewert and Dixon, 2018) with valid 1-D convolutions
* ``wave-critic`` critic: strided 1-D convolutions over a waveform excerpt
* ``sepkit wave-unet-window``: a command printing the window a wave-unet gets for given settings

The hooks import torch only when they run, so that loading every plugin (which the ``sepkit``
command does at start-up) stays cheap.
"""

import sepkit

__version__ = "0.1.0"


@sepkit.hookimpl
def register_representations(register):
    from .representation import Waveform

    register("waveform", Waveform)


@sepkit.hookimpl
def register_separators(register):
    from .separator import WaveUNet

    register("wave-unet", WaveUNet)


@sepkit.hookimpl
def register_critics(register):
    from .critic import WaveCritic

    register("wave-critic", WaveCritic)


@sepkit.hookimpl
def register_commands(app):
    from .command import register

    register(app)
