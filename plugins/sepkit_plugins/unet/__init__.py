"""The ``unet`` separator plugin (the paper's U-Net with valid convolutions)."""

from sepkit import hookimpl


@hookimpl
def register_separators(register):
    from .model import UNet

    register("unet", UNet)
