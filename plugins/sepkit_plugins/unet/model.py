"""The paper's U-Net separator (placeholder until the components issue lands)."""

from __future__ import annotations

from pydantic import Field, PositiveInt

from sepkit.component import ComponentConfig
from sepkit.errors import NotImplementedComponentError
from sepkit.separator import Separator


class UNetConfig(ComponentConfig):
    depth: PositiveInt = Field(4, description="Down-sampling levels (and as many up-sampling levels).")
    base_filters: PositiveInt = Field(16, description="Filters of the first conv; doubled at each level down.")
    kernel_size: PositiveInt = Field(3, description="Side of the square valid convolutions.")
    input_frames: PositiveInt = Field(158, description="Frames per input window (context included).")


class UNet(Separator):
    Config = UNetConfig

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        raise NotImplementedComponentError("unet is not implemented yet")
