"""The ``wave-unet`` separator: a small Wave-U-Net (Stoller, Ewert and Dixon, ISMIR 2018) on waveforms.

Valid (unpadded) 1-D convolutions, so every output sample is computed from real input samples only,
and the window arithmetic is declared to sepkit instead of being padded away:

* ``depth`` down levels: a valid conv (``down_kernel``, ``base_filters * (i + 1)`` filters, as the
  paper's additive filter growth), LeakyReLU, keep the result as the level's skip connection, then
  decimate by 2 (keep every other sample);
* a bottleneck conv (``down_kernel``, ``base_filters * (depth + 1)`` filters);
* ``depth`` up levels: linear interpolation to ``2 L - 1`` samples (no extrapolation past the ends),
  concatenation with the centre-cropped skip connection, a valid conv (``up_kernel``), LeakyReLU;
* output: concatenation with the centre-cropped mixture, one 1 x 1 conv giving ``N x C`` channels,
  ``tanh`` (or linear).

Decimating an odd number of samples keeps both ends and the interpolation restores ``2 L - 1``, so
every stage is symmetric: the output sits in the centre of the input, with the same context on
both sides. Not every input size fits; ``output_samples`` asks for at least that many output
samples and the smallest network input that gives them is chosen (``window`` reports the result).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, field_validator
from torch import nn

from sepkit import ComponentConfig, ConfigValues, Separator, ShapeError, Window


class WaveUNetConfig(ComponentConfig):
    depth: PositiveInt = Field(4, le=10, description="Down-sampling levels (and as many up-sampling levels).")
    base_filters: PositiveInt = Field(8, description="Filters of the first level; level i has base_filters * (i + 1).")
    down_kernel: PositiveInt = Field(15, description="Width of the down-path and bottleneck convolutions (odd).")
    up_kernel: PositiveInt = Field(5, description="Width of the up-path convolutions (odd).")
    output_samples: PositiveInt = Field(
        8192, description="At least this many output samples per window; the network input is sized to fit."
    )
    output_activation: Literal["tanh", "linear"] = Field("tanh", description="tanh keeps samples in [-1, 1].")
    leaky_slope: float = Field(0.2, ge=0.0, lt=1.0, description="LeakyReLU negative slope.")

    @field_validator("down_kernel", "up_kernel")
    @classmethod
    def _odd(cls, value: int) -> int:
        # An odd kernel shrinks both ends equally, so the output stays centred in the input.
        if value % 2 == 0:
            raise ValueError(f"kernel widths must be odd so that the output stays centred, got {value}")
        return value


# --------------------------------------------------------------------------- window arithmetic


def sizes_for_bottleneck(bottom: int, depth: int, down_kernel: int, up_kernel: int) -> tuple[int, int] | None:
    """(input samples, output samples) of the network whose bottleneck conv outputs ``bottom``
    samples, or None when some feature map would be empty."""
    x = bottom + down_kernel - 1  # the bottleneck conv's input
    for _ in range(depth):  # run the down path backwards: decimated d <- 2 d - 1 <- conv input
        x = 2 * x - 1 + down_kernel - 1
    out = bottom
    for _ in range(depth):  # the up path: interpolate to 2 L - 1, then a valid conv
        out = 2 * out - 1 - (up_kernel - 1)
        if out < 1:
            return None
    return x, out


def fit_window(output_samples: int, depth: int, down_kernel: int, up_kernel: int) -> tuple[int, int]:
    """(input, output) samples of the smallest network whose output has at least ``output_samples``."""
    bottom = 1
    while True:
        sizes = sizes_for_bottleneck(bottom, depth, down_kernel, up_kernel)
        if sizes is not None and sizes[1] >= output_samples:
            return sizes
        bottom += 1


def centre_crop(x: torch.Tensor, length: int) -> torch.Tensor:
    """The central ``length`` samples of the last axis (the difference is even here)."""
    start = (x.shape[-1] - length) // 2
    return x[..., start : start + length]


def interpolate(x: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``[..., L]`` to ``[..., 2 L - 1]``: the samples, and midpoints between them."""
    midpoints = 0.5 * (x[..., :-1] + x[..., 1:])
    interleaved = torch.stack([x[..., :-1], midpoints], dim=-1).flatten(-2)
    return torch.cat([interleaved, x[..., -1:]], dim=-1)


# --------------------------------------------------------------------------- model


class WaveUNet(Separator):
    """``[B, C, 1, T_in]`` mixture waveform -> ``[B, N, C, 1, T_out]`` source waveforms."""

    Config = WaveUNetConfig
    config: WaveUNetConfig

    def __init__(self, config: ConfigValues, *, num_sources: int, num_channels: int, num_bins: int) -> None:
        super().__init__(config, num_sources=num_sources, num_channels=num_channels, num_bins=num_bins)
        config = self.config
        if self.num_bins != 1:
            raise ShapeError(
                f"wave-unet separates waveforms (features with 1 bin, e.g. the 'waveform' "
                f"representation); the representation gives {self.num_bins} bins"
            )
        depth, base = config.depth, config.base_filters
        input_samples, output_samples = fit_window(config.output_samples, depth, config.down_kernel, config.up_kernel)
        context = (input_samples - output_samples) // 2
        self._window = Window(
            input_frames=input_samples,
            output_frames=output_samples,
            context_before=context,
            context_after=context,
            input_bins=1,
            output_bins=1,
        )

        def filters(level: int) -> int:
            return base * (level + 1)

        channels = self.num_channels
        self.down = nn.ModuleList(
            nn.Conv1d(channels if i == 0 else filters(i - 1), filters(i), config.down_kernel) for i in range(depth)
        )
        self.bottleneck = nn.Conv1d(filters(depth - 1), filters(depth), config.down_kernel)
        self.up = nn.ModuleList(
            nn.Conv1d(filters(i + 1) + filters(i), filters(i), config.up_kernel) for i in reversed(range(depth))
        )
        # One output channel per (source, audio channel): channel n * C + c is source n, channel c.
        self.output = nn.Conv1d(filters(0) + channels, self.num_sources * channels, 1)

    @property
    def window(self) -> Window:
        return self._window

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        self.check_input(mixture)
        slope = self.config.leaky_slope
        audio = mixture[:, :, 0]  # [B, C, T_in]
        x = audio
        skips = []
        for conv in self.down:
            x = F.leaky_relu(conv(x), slope)
            skips.append(x)
            x = x[..., ::2]
        x = F.leaky_relu(self.bottleneck(x), slope)
        for conv, skip in zip(self.up, reversed(skips)):
            x = interpolate(x)
            x = torch.cat([x, centre_crop(skip, x.shape[-1])], dim=1)
            x = F.leaky_relu(conv(x), slope)
        x = torch.cat([x, centre_crop(audio, x.shape[-1])], dim=1)
        sources = self.output(x)
        if self.config.output_activation == "tanh":
            sources = torch.tanh(sources)
        batch, frames = sources.shape[0], sources.shape[-1]
        return sources.reshape(batch, self.num_sources, self.num_channels, 1, frames)
