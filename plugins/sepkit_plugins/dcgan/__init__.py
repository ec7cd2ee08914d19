"""The ``dcgan`` critic plugin (the paper's adapted DCGAN)."""

from sepkit import hookimpl


@hookimpl
def register_critics(register):
    from .model import DCGANCritic

    register("dcgan", DCGANCritic)
