"""The Representation interface: waveforms <-> the features the networks see.

Shapes (all tensors on whatever device the input is on):
  waveform          [B, C, L]           C audio channels, L samples
  features          [B, C, F, T]        F bins (1 for a waveform representation), T frames
  source features   [B, N, C, F, T]     N sources
"""

from __future__ import annotations

import abc
from typing import Any

import torch

from .component import Component, ComponentConfig


class Representation(Component, abc.ABC):
    """Turns waveforms into features and back.

    ``encode`` returns the features plus a ``context`` object holding whatever ``decode`` needs
    (the mixture's complex spectrogram for a magnitude STFT). Normalisation (e.g. log1p) belongs to
    the representation; ``to_linear``/``from_linear`` convert features to and from the linear
    magnitude domain, where the additive penalty and the loudness augmentation work.
    """

    #: True when ``decode(encode(x), context)`` reproduces ``x`` (up to float precision).
    invertible: bool = False

    def __init__(self, config: ComponentConfig, *, sample_rate: int) -> None:
        self.config = config
        self.sample_rate = int(sample_rate)

    @property
    @abc.abstractmethod
    def num_bins(self) -> int:
        """F, the number of feature bins per frame."""

    @property
    @abc.abstractmethod
    def hop_length(self) -> int:
        """Samples between consecutive frames (1 for a waveform representation)."""

    @abc.abstractmethod
    def num_frames(self, num_samples: int) -> int:
        """T for a waveform of ``num_samples`` samples."""

    @abc.abstractmethod
    def encode(self, waveform: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """``[B, C, L]`` waveform -> (``[B, C, F, T]`` features, context for ``decode``)."""

    @abc.abstractmethod
    def decode(self, features: torch.Tensor, context: Any, length: int) -> torch.Tensor:
        """Source features ``[B, N, C, F, T]`` (or ``[B, C, F, T]``) -> waveforms ``[B, N, C, L]``
        (or ``[B, C, L]``) of ``length`` samples, using the mixture ``context`` from ``encode``."""

    @abc.abstractmethod
    def to_linear(self, features: torch.Tensor) -> torch.Tensor:
        """Features -> linear magnitudes (undo the normalisation); differentiable."""

    @abc.abstractmethod
    def from_linear(self, magnitudes: torch.Tensor) -> torch.Tensor:
        """Linear magnitudes -> features (apply the normalisation); differentiable."""

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def describe(self) -> dict[str, Any]:
        """Settings worth showing in summaries."""
        return {"bins": self.num_bins, "hop_length": self.hop_length, **self.config.model_dump()}
