"""The paper's U-Net separator: valid convolutions, log-magnitudes in, log-magnitudes out.

Level structure (Stoller et al. 2018, as in the authors' code), for ``depth`` d, ``base_filters`` b
and ``kernel_size`` k:

* first conv: k x k valid, b filters, ReLU;
* d down levels: 2 x 2 max-pool (stride 2), then ONE k x k valid conv with b * 2**(i+1) filters, ReLU;
* d up levels: 2 x 2 transposed conv (stride 2) with b * 2**level filters, ReLU; centre-crop the
  feature map that entered the matching pooling, concatenate, then ONE k x k valid conv, ReLU;
* output: the last feature map concatenated with the centre-cropped (padded) mixture, then a 1 x 1
  conv per source with ReLU (the log-normalised source magnitudes, no mask), or with
  ``output = "mask"`` a softmax over the sources of that conv's outputs times the mixture's linear
  magnitudes (back in the representation's features): hard mixture consistency, so the
  additive penalty is zero by construction (the paper's remark on constrained outputs).

With one conv per level an input of 350 bins x 158 frames gives 258 x 66 and the paper's ~0.96 M
parameters (two convs per level would give neither). Valid convolutions shrink every side, so only
some input sizes fit (every pooled map must have even sides); the arithmetic below is generic in
depth, kernel size, bins and frames.
"""

from __future__ import annotations

from typing import Callable, Iterator, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, ValidationInfo, field_validator
from torch import nn

from sepkit.component import ComponentConfig, ConfigValues
from sepkit.errors import ShapeError
from sepkit.separator import Separator, Window


# --------------------------------------------------------------------------- window arithmetic


def unet_output_size(size: int, depth: int, kernel_size: int) -> int | None:
    """Side of the U-Net's output for an input side of ``size``; None when ``size`` does not fit.

    A size fits when every map that is pooled has an even side and no map shrinks below one.
    """
    shrink = kernel_size - 1
    x = size - shrink  # first conv
    if x < 1:
        return None
    for _ in range(depth):  # pool, conv
        if x % 2:
            return None
        x = x // 2 - shrink
        if x < 1:
            return None
    for _ in range(depth):  # transposed conv (x2), conv
        x = 2 * x - shrink
        if x < 1:
            return None
    return x


def _input_size_for_bottom(bottom: int, depth: int, kernel_size: int) -> int:
    """The input side whose deepest feature map has side ``bottom`` (run the down path backwards)."""
    shrink = kernel_size - 1
    x = bottom
    for _ in range(depth):
        x = 2 * (x + shrink)
    return x + shrink


def valid_input_sizes(depth: int, kernel_size: int) -> Iterator[int]:
    """Every input side the U-Net accepts, in increasing order (spaced 2**depth apart)."""
    bottom = 1
    while True:
        size = _input_size_for_bottom(bottom, depth, kernel_size)
        if unet_output_size(size, depth, kernel_size) is not None:
            yield size
        bottom += 1


def nearest_valid_sizes(size: int, depth: int, kernel_size: int) -> tuple[int | None, int]:
    """The largest valid input side below ``size`` (None if there is none) and the smallest above."""
    below = None
    for valid in valid_input_sizes(depth, kernel_size):
        if valid > size:
            return below, valid
        if valid < size:
            below = valid
    raise AssertionError("unreachable: valid sizes are unbounded")


def minimal_input_covering(size: int, depth: int, kernel_size: int) -> int:
    """The smallest valid input side whose output side is at least ``size``."""
    for valid in valid_input_sizes(depth, kernel_size):
        if unet_output_size(valid, depth, kernel_size) >= size:  # type: ignore[operator]
            return valid
    raise AssertionError("unreachable: valid sizes are unbounded")


# --------------------------------------------------------------------------- config


class UNetConfig(ComponentConfig):
    depth: PositiveInt = Field(4, description="Down-sampling levels (and as many up-sampling levels).")
    base_filters: PositiveInt = Field(16, description="Filters of the first conv; doubled at each level down.")
    kernel_size: PositiveInt = Field(3, description="Side of the square valid convolutions (odd).")
    input_frames: PositiveInt = Field(158, description="Frames per input window (context included).")
    output: Literal["direct", "mask"] = Field(
        "direct",
        description='"direct": the sources\' features (the paper); "mask": per-source masks that sum to one '
        "(softmax over sources) times the mixture's linear magnitudes, so the estimates add up to the "
        "mixture by construction.",
    )

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        # An odd kernel shrinks both sides equally, so the output stays centred in the input.
        if value % 2 == 0:
            raise ValueError(f"kernel_size must be odd so that the output stays centred, got {value}")
        return value

    @field_validator("input_frames")
    @classmethod
    def _fitting_frames(cls, value: int, info: ValidationInfo) -> int:
        depth, kernel = info.data.get("depth"), info.data.get("kernel_size")
        if depth is None or kernel is None:  # their own errors are reported
            return value
        if unet_output_size(value, depth, kernel) is None:
            below, above = nearest_valid_sizes(value, depth, kernel)
            nearest = f"{below} or {above}" if below is not None else f"{above}"
            smallest = next(valid_input_sizes(depth, kernel))
            raise ValueError(
                f"{value} frames do not fit a U-Net of depth {depth} with {kernel}x{kernel} valid "
                f"convolutions (valid sizes are {smallest}, {smallest + 2**depth}, ... in steps of "
                f"{2**depth}, so that every pooled map has even sides); nearest valid input_frames: {nearest}"
            )
        return value


# --------------------------------------------------------------------------- model


def centre_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central ``height`` x ``width`` of the last two axes (differences are even here)."""
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


class UNet(Separator):
    """``[B, C, F, T_in]`` log-magnitudes -> ``[B, N, C, F, T_out]`` log-magnitudes.

    The ``F`` bins are zero-padded (below by the context, above by the rest) to the smallest valid
    network input whose output covers them; the extra output bins are dropped, so the separator
    takes and returns exactly the representation's bins.
    """

    Config = UNetConfig
    config: UNetConfig

    def __init__(self, config: ConfigValues, *, num_sources: int, num_channels: int, num_bins: int) -> None:
        super().__init__(config, num_sources=num_sources, num_channels=num_channels, num_bins=num_bins)
        config = self.config
        depth, kernel, base = config.depth, config.kernel_size, config.base_filters
        channels, sources = self.num_channels, self.num_sources

        input_bins = minimal_input_covering(self.num_bins, depth, kernel)
        output_bins = unet_output_size(input_bins, depth, kernel)
        output_frames = unet_output_size(config.input_frames, depth, kernel)
        assert output_bins is not None and output_frames is not None  # guaranteed by construction
        self._window = Window(
            input_frames=config.input_frames,
            output_frames=output_frames,
            context_before=(config.input_frames - output_frames) // 2,
            context_after=(config.input_frames - output_frames) // 2,
            input_bins=input_bins,
            output_bins=output_bins,
        )
        # The real bins must land where the output starts: pad below by the context.
        self.pad_below = (input_bins - output_bins) // 2
        self.pad_above = input_bins - self.num_bins - self.pad_below

        def filters(level: int) -> int:
            return base * 2**level

        self.first = nn.Conv2d(channels, filters(0), kernel)
        self.down = nn.ModuleList(nn.Conv2d(filters(i), filters(i + 1), kernel) for i in range(depth))
        levels_up = list(reversed(range(depth)))
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(filters(level + 1), filters(level), 2, stride=2) for level in levels_up
        )
        self.up = nn.ModuleList(nn.Conv2d(2 * filters(level), filters(level), kernel) for level in levels_up)
        # One 1x1 conv per source, stacked into one conv: output channel n*C + c is source n, channel c.
        self.output = nn.Conv2d(filters(0) + channels, sources * channels, 1)
        self._to_linear: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._from_linear: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.reset_parameters()

    def bind_representation(self, representation) -> None:
        """Masks multiply the mixture's LINEAR magnitudes: keep the representation's mapping."""
        self._to_linear, self._from_linear = representation.to_linear, representation.from_linear

    def reset_parameters(self) -> None:
        """Glorot-uniform kernels and zero biases, the TensorFlow defaults of the authors' code."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def window(self) -> Window:
        return self._window

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        self.check_input(mixture)
        batch = mixture.shape[0]
        padded = F.pad(mixture, (0, 0, self.pad_below, self.pad_above))
        x = F.relu(self.first(padded), inplace=True)  # in place: conv outputs are not needed for backward
        skips = []
        for conv in self.down:
            skips.append(x)
            x = F.relu(conv(F.max_pool2d(x, 2)), inplace=True)
        for upsample, conv, skip in zip(self.upsample, self.up, reversed(skips)):
            x = F.relu(upsample(x), inplace=True)
            x = torch.cat([centre_crop(skip, x.shape[-2], x.shape[-1]), x], dim=1)
            x = F.relu(conv(x), inplace=True)
        mixture_out = centre_crop(padded, x.shape[-2], x.shape[-1])
        x = torch.cat([x, mixture_out], dim=1)
        if self.config.output == "mask":
            return self._masked(self.output(x), mixture_out)
        sources = F.relu(self.output(x), inplace=True)[:, :, : self.num_bins]  # drop the padded top bins
        return sources.reshape(batch, self.num_sources, self.num_channels, self.num_bins, -1)

    def _masked(self, logits: torch.Tensor, mixture_out: torch.Tensor) -> torch.Tensor:
        """softmax over sources of ``logits`` times the mixture's linear magnitudes, as features."""
        if self._to_linear is None or self._from_linear is None:
            raise ShapeError('unet output = "mask" needs the representation: build it with sepkit.build.build_separator')
        batch = logits.shape[0]
        logits = logits[:, :, : self.num_bins].reshape(batch, self.num_sources, self.num_channels, self.num_bins, -1)
        mixture = self._to_linear(mixture_out[:, :, : self.num_bins]).clamp(min=0)
        return self._from_linear(torch.softmax(logits, dim=1) * mixture[:, None])
