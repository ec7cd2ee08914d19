"""Placeholder until the components issue lands."""

from __future__ import annotations

from sepkit.component import ComponentConfig
from sepkit.divergence import Divergence
from sepkit.errors import NotImplementedComponentError


class KullbackLeiblerConfig(ComponentConfig):
    pass


class KullbackLeibler(Divergence):
    Config = KullbackLeiblerConfig

    def critic_loss(self, critic, real, fake):
        raise NotImplementedComponentError("not implemented yet")

    def separator_loss(self, critic, fake):
        raise NotImplementedComponentError("not implemented yet")
