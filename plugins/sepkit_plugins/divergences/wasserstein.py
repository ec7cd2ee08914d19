"""Placeholder until the components issue lands."""

from __future__ import annotations

from sepkit.component import ComponentConfig
from sepkit.divergence import Divergence
from sepkit.errors import NotImplementedComponentError


from pydantic import Field


class WassersteinGPConfig(ComponentConfig):
    gradient_penalty: float = Field(10.0, ge=0.0, description="Weight lambda of the gradient penalty.")
    one_sided: bool = Field(True, description="Penalise only gradient norms above 1 (the paper).")


class WassersteinGP(Divergence):
    Config = WassersteinGPConfig

    def critic_loss(self, critic, real, fake):
        raise NotImplementedComponentError("not implemented yet")

    def separator_loss(self, critic, fake):
        raise NotImplementedComponentError("not implemented yet")
