"""The paper's adapted DCGAN critic: one score per excerpt of one source's log-magnitudes.

Layers (Stoller et al. 2018, as in the authors' code), on a centre crop of ``crop`` (bins, frames):

* 4 x 4 convs, stride 2, TensorFlow 'same' padding, filters ``base_filters * 2**i`` capped at
  ``max_filters``, until a side reaches 4 (at least one such conv);
* then 4 x 2 convs with stride (2, 1), same padding, continuing the capped doubling, while the
  frequency side is above 4 (spectrogram excerpts have more bins than frames);
* flatten, dense ``dense_units``, dense 1 (linear, no bias);
* LeakyReLU(``leaky_slope``) after every conv and after the hidden dense layer.

At the paper's 256 x 64 crop: 128x32, 64x16, 32x8, 16x4 (32, 64, 128, 256 filters), then 8x4 and
4x4 (256, 256), 4096 -> 32 -> 1: 1,869,344 parameters for one channel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from sepkit.component import ComponentConfig, ConfigValues, TomlOptional
from sepkit.critic import Critic
from sepkit.errors import ShapeError


class DCGANConfig(ComponentConfig):
    crop: TomlOptional[tuple[PositiveInt, PositiveInt]] = Field(
        (256, 64),
        description='Centre crop [bins, frames] of the source features; false (or "none") to use all of them.',
    )
    base_filters: PositiveInt = Field(32, description="Filters of the first conv; doubled per layer.")
    max_filters: PositiveInt = Field(256, description="Cap on the filters per conv.")
    dense_units: PositiveInt = Field(32, description="Units of the hidden dense layer.")
    leaky_slope: float = Field(0.2, ge=0.0, lt=1.0, description="LeakyReLU negative slope.")
    spectral_norm: bool = Field(
        False,
        description="Spectral normalisation of every conv and dense layer (Miyato et al. 2018): keeps the "
        "critic near 1-Lipschitz by construction, for any divergence.",
    )


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow 'same' padding along one axis: (pad before, pad after, output size).

    The output has ``ceil(size / stride)`` entries; an odd total padding puts the extra zero after.
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


def crop_start(size: int, crop: int) -> int:
    """First index of a centre crop; an odd difference drops the extra entry on the low side."""
    diff = size - crop
    return diff - diff // 2


class SameConv2d(nn.Module):
    """A strided convolution with TensorFlow's 'same' zero padding.

    The symmetric part of the padding is the convolution's own; only the extra zero after (odd
    totals) is an explicit pad, so the common even case costs no copy.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel: tuple[int, int], stride: tuple[int, int],
        size: tuple[int, int],
    ) -> None:
        super().__init__()
        f_before, f_after, f_out = same_padding(size[0], kernel[0], stride[0])
        t_before, t_after, t_out = same_padding(size[1], kernel[1], stride[1])
        self.extra_padding = (0, t_after - t_before, 0, f_after - f_before)  # F.pad order: T, then F
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=(f_before, t_before))
        self.output_size = (f_out, t_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.extra_padding):
            x = F.pad(x, self.extra_padding)
        return self.conv(x)

    def extra_repr(self) -> str:
        return f"extra_padding={self.extra_padding}, output_size={self.output_size}"


class DCGANCritic(Critic):
    """``[B, C, F, T]`` source features -> ``[B]`` scores (higher: more like a real source)."""

    Config = DCGANConfig
    config: DCGANConfig

    def __init__(self, config: ConfigValues, *, input_shape: tuple[int, int, int]) -> None:
        super().__init__(config, input_shape=input_shape)
        config = self.config
        channels, bins, frames = self.input_shape
        crop_bins, crop_frames = config.crop if config.crop is not None else (bins, frames)
        if crop_bins > bins or crop_frames > frames:
            raise ShapeError(
                f"dcgan crop ({crop_bins}, {crop_frames}) is larger than its input of {bins} bins x "
                f"{frames} frames; set crop to at most ({bins}, {frames}) or to none"
            )
        self.crop_bins, self.crop_frames = crop_bins, crop_frames
        self.bin_start = crop_start(bins, crop_bins)
        self.frame_start = crop_start(frames, crop_frames)

        slope = config.leaky_slope
        layers: list[nn.Module] = []
        size, width, index = (crop_bins, crop_frames), channels, 0

        def add(kernel: tuple[int, int], stride: tuple[int, int]) -> None:
            nonlocal size, width, index
            filters = min(config.base_filters * 2**index, config.max_filters)
            conv = SameConv2d(width, filters, kernel, stride, size)
            layers.extend([conv, nn.LeakyReLU(slope)])
            size, width, index = conv.output_size, filters, index + 1

        add((4, 4), (2, 2))
        while min(size) > 4:
            add((4, 4), (2, 2))
        while size[0] > 4:
            add((4, 2), (2, 1))
        self.convs = nn.Sequential(*layers)
        self.feature_shape = (width, *size)
        self.dense = nn.Linear(width * size[0] * size[1], config.dense_units)
        self.activation = nn.LeakyReLU(slope)
        self.score = nn.Linear(config.dense_units, 1, bias=False)
        self.reset_parameters()
        if config.spectral_norm:
            for module in list(self.modules()):
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    spectral_norm(module)

    def reset_parameters(self) -> None:
        """Glorot-uniform kernels and zero biases, the TensorFlow defaults of the authors' code."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.check_input(features)
        x = features[
            ...,
            self.bin_start : self.bin_start + self.crop_bins,
            self.frame_start : self.frame_start + self.crop_frames,
        ]
        x = self.convs(x)
        x = self.activation(self.dense(x.flatten(1)))
        return self.score(x).squeeze(1)
