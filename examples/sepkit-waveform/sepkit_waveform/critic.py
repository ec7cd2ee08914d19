"""The ``wave-critic`` critic: one score per waveform excerpt of one source.

A centre crop of ``crop`` samples (or the whole excerpt), then ``layers`` strided 1-D convolutions
(``kernel_size`` wide, stride ``stride``, zero padding ``kernel_size // 2``; filters
``base_filters * 2**i`` capped at ``max_filters``) with LeakyReLU, flatten, a dense layer of
``dense_units`` with LeakyReLU and a linear score. No normalisation layers: the Wasserstein-GP
gradient penalty needs each example's score to depend on that example only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, field_validator
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from sepkit import ComponentConfig, ConfigValues, Critic, ShapeError, TomlOptional


class WaveCriticConfig(ComponentConfig):
    crop: TomlOptional[PositiveInt] = Field(
        None, description='Centre crop in samples; false (or "none", the default) looks at the whole excerpt.'
    )
    layers: PositiveInt = Field(5, description="Strided convolutions.")
    base_filters: PositiveInt = Field(8, description="Filters of the first convolution; doubled per layer.")
    max_filters: PositiveInt = Field(64, description="Cap on the filters per convolution.")
    kernel_size: PositiveInt = Field(15, description="Width of every convolution (odd).")
    stride: PositiveInt = Field(4, description="Stride of every convolution.")
    dense_units: PositiveInt = Field(16, description="Units of the hidden dense layer.")
    leaky_slope: float = Field(0.2, ge=0.0, lt=1.0, description="LeakyReLU negative slope.")
    spectral_norm: bool = Field(False, description="Spectral normalisation of every layer (near 1-Lipschitz by construction).")

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"kernel_size must be odd (symmetric padding), got {value}")
        return value


def strided_length(length: int, kernel: int, stride: int) -> int:
    """Samples after a convolution with padding ``kernel // 2`` (``ceil(length / stride)`` for odd kernels)."""
    return (length + 2 * (kernel // 2) - kernel) // stride + 1


class WaveCritic(Critic):
    """``[B, C, 1, T]`` source waveforms -> ``[B]`` scores (higher: more like a real recording)."""

    Config = WaveCriticConfig
    config: WaveCriticConfig

    def __init__(self, config: ConfigValues, *, input_shape: tuple[int, int, int]) -> None:
        super().__init__(config, input_shape=input_shape)
        config = self.config
        channels, bins, frames = self.input_shape
        if bins != 1:
            raise ShapeError(
                f"wave-critic scores waveforms (features with 1 bin, e.g. the 'waveform' representation); "
                f"its input has {bins} bins"
            )
        crop = config.crop if config.crop is not None else frames
        if crop > frames:
            raise ShapeError(
                f"wave-critic crop {crop} is longer than its input of {frames} samples; set crop to at most "
                f"{frames} or to none"
            )
        self.crop_length = crop
        self.crop_start = (frames - crop) // 2

        layers: list[nn.Module] = []
        width, length = channels, crop
        for i in range(config.layers):
            filters = min(config.base_filters * 2**i, config.max_filters)
            layers += [
                nn.Conv1d(width, filters, config.kernel_size, stride=config.stride, padding=config.kernel_size // 2),
                nn.LeakyReLU(config.leaky_slope),
            ]
            width, length = filters, strided_length(length, config.kernel_size, config.stride)
        self.convs = nn.Sequential(*layers)
        self.feature_shape = (width, length)
        self.dense = nn.Linear(width * length, config.dense_units)
        self.score = nn.Linear(config.dense_units, 1)
        if config.spectral_norm:
            for module in list(self.modules()):
                if isinstance(module, (nn.Conv1d, nn.Linear)):
                    spectral_norm(module)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.check_input(features)
        x = features[:, :, 0, self.crop_start : self.crop_start + self.crop_length]  # [B, C, crop]
        x = self.convs(x)
        x = F.leaky_relu(self.dense(x.flatten(1)), self.config.leaky_slope)
        return self.score(x).squeeze(1)
