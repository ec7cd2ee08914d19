"""The paper's adapted DCGAN critic (placeholder until the components issue lands)."""

from __future__ import annotations

from pydantic import Field, PositiveInt

from sepkit.component import ComponentConfig
from sepkit.critic import Critic
from sepkit.errors import NotImplementedComponentError


class DCGANConfig(ComponentConfig):
    crop: tuple[PositiveInt, PositiveInt] | None = Field(
        (256, 64), description="Centre crop (bins, frames) of the source features; none to use all."
    )
    base_filters: PositiveInt = Field(32, description="Filters of the first conv; doubled per layer.")
    max_filters: PositiveInt = Field(256, description="Cap on the filters per conv.")
    dense_units: PositiveInt = Field(32, description="Units of the hidden dense layer.")
    leaky_slope: float = Field(0.2, ge=0.0, lt=1.0, description="LeakyReLU negative slope.")


class DCGANCritic(Critic):
    Config = DCGANConfig

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        raise NotImplementedComponentError("dcgan is not implemented yet")
