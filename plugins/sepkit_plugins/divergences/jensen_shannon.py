"""Placeholder until the components issue lands."""

from __future__ import annotations

from sepkit.component import ComponentConfig
from sepkit.divergence import Divergence
from sepkit.errors import NotImplementedComponentError


from pydantic import Field


class JensenShannonConfig(ComponentConfig):
    non_saturating: bool = Field(True, description="Separator maximises log D(fake) instead of minimising log(1 - D(fake)).")


class JensenShannon(Divergence):
    Config = JensenShannonConfig

    def critic_loss(self, critic, real, fake):
        raise NotImplementedComponentError("not implemented yet")

    def separator_loss(self, critic, fake):
        raise NotImplementedComponentError("not implemented yet")
