"""Test-only components for the separation tests, registered with ``use_plugins(separation_plugin)``.

``test-frames``: a magnitude spectrogram of non-overlapping rectangular frames (exactly invertible
with the mixture phase). ``tiny-conv``: a separator of two valid (in time) convolutions with an
asymmetric declared context (4 frames before, 2 after) that accepts any number of frames, so a
whole-signal pass can be compared with the windowed engine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import nn

from sepkit import hookimpl
from sepkit.component import ComponentConfig
from sepkit.errors import ShapeError
from sepkit.representation import Representation
from sepkit.separator import Separator, Window


class FramesConfig(ComponentConfig):
    frame: PositiveInt = Field(8, description="Samples per frame (and hop).")


class FrameSpectrum(Representation):
    Config = FramesConfig
    invertible = True
    magnitude_spectrogram = True

    @property
    def frame_length(self) -> int:
        return self.config.frame

    @property
    def num_bins(self) -> int:
        return self.config.frame // 2 + 1

    @property
    def hop_length(self) -> int:
        return self.config.frame

    def num_frames(self, num_samples: int) -> int:
        return -(-int(num_samples) // self.config.frame)

    def encode(self, waveform):
        frames = self.num_frames(waveform.shape[-1])
        padded = F.pad(waveform, (0, frames * self.config.frame - waveform.shape[-1]))
        spectrum = torch.fft.rfft(padded.reshape(*padded.shape[:-1], frames, self.config.frame), dim=-1)
        spectrum = spectrum.transpose(-1, -2)  # [B, C, F, T]
        return torch.log1p(spectrum.abs()), spectrum

    def decode(self, features, context, length):
        if features.dim() == 5:
            context = context.unsqueeze(1)
        magnitude = torch.expm1(features).clamp_min(0.0)
        spectrum = torch.polar(magnitude, torch.angle(context).expand_as(magnitude))
        frames = torch.fft.irfft(spectrum.transpose(-1, -2), n=self.config.frame, dim=-1)
        return frames.reshape(*frames.shape[:-2], -1)[..., :length]

    def to_linear(self, features):
        return torch.expm1(features)

    def from_linear(self, magnitudes):
        return torch.log1p(magnitudes)


class TinyConvConfig(ComponentConfig):
    input_frames: PositiveInt = Field(24, description="Frames per window (context included).")
    hidden: PositiveInt = Field(4, description="Hidden channels.")


class TinyConv(Separator):
    Config = TinyConvConfig
    BEFORE, AFTER = 4, 2  # 5 + 3 - 2 = 6 frames of context in all

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        c, n = self.num_channels, self.num_sources
        self.first = nn.Conv2d(c, config.hidden, (3, 5), padding=(1, 0))
        self.second = nn.Conv2d(config.hidden, n * c, (3, 3), padding=(1, 0))
        out = config.input_frames - self.BEFORE - self.AFTER
        self._window = Window(config.input_frames, out, self.BEFORE, self.AFTER, self.num_bins, self.num_bins)

    @property
    def window(self):
        return self._window

    def forward(self, mixture):
        if mixture.dim() != 4 or mixture.shape[1] != self.num_channels or mixture.shape[2] != self.num_bins:
            raise ShapeError(f"tiny-conv expects [batch, {self.num_channels}, {self.num_bins}, frames], got {list(mixture.shape)}")
        x = torch.tanh(self.first(mixture))
        x = F.softplus(self.second(x))  # [B, N*C, F, T - 6]
        return x.reshape(x.shape[0], self.num_sources, self.num_channels, self.num_bins, -1)


@hookimpl
def register_representations(register):
    register("test-frames", FrameSpectrum)


@hookimpl
def register_separators(register):
    register("tiny-conv", TinyConv)


def recipe_dict(*, channels: int = 1, sample_rate: int = 8000, sources=("accompaniment", "vocals"), input_frames: int = 24) -> dict:
    """A minimal recipe using the test components (no data: check_data=False to load it)."""
    return {
        "name": "tiny",
        "sources": list(sources),
        "audio": {"sample_rate": sample_rate, "channels": channels, "clip": False},
        "representation": {"type": "test-frames", "frame": 8},
        "separator": {"type": "tiny-conv", "input_frames": input_frames},
    }


def build(**kwargs):
    """(recipe, representation, separator) of the test components, weights seeded."""
    from sepkit.build import build_representation, build_separator
    from sepkit.model import model_recipe

    seed = kwargs.pop("seed", 0)
    recipe = model_recipe(recipe_dict(**kwargs))
    torch.manual_seed(seed)
    representation = build_representation(recipe)
    separator = build_separator(recipe, representation).eval()
    return recipe, representation, separator
