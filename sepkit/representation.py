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

from .component import Component, ConfigValues


class Representation(Component, abc.ABC):
    """Turns waveforms into features and back.

    ``encode`` returns the features plus a ``context`` object holding whatever ``decode`` needs
    (the mixture's complex spectrogram for a magnitude STFT). Normalisation (e.g. log1p) belongs to
    the representation; ``to_linear``/``from_linear`` convert features to and from the linear
    magnitude domain, where the additive penalty, the loudness augmentation and the Wiener filter
    work.

    What the core relies on beyond the abstract members: frames are shift-invariant in whole hops
    (a segment that starts ``k * hop_length`` samples later gives the same frames, ``k`` later, away
    from its edges), and zero features are silence (the engine pads with them).
    """

    #: True when ``decode(encode(x), context)`` reproduces ``x`` (up to float precision).
    invertible: bool = False
    #: True when the features are (normalised) magnitudes of a complex spectrogram that ``decode``
    #: combines with the mixture's phase: then scaling ``to_linear(features)`` bin by bin by masks
    #: that sum to one splits the mixture exactly, which the Wiener post-filter (``--wiener``)
    #: needs. It also promises that the spectrogram is linear in the waveform (an STFT), so that
    #: scaling the waveform scales ``to_linear(features)`` by the same factor: the streaming
    #: sampler applies loudness augmentation to waveforms on that promise. False (the default)
    #: makes ``--wiener`` an error for this representation.
    magnitude_spectrogram: bool = False

    def __init__(self, config: ConfigValues, *, sample_rate: int) -> None:
        super().__init__(config)
        self.sample_rate = int(sample_rate)

    @property
    @abc.abstractmethod
    def num_bins(self) -> int:
        """F, the number of feature bins per frame."""

    @property
    @abc.abstractmethod
    def hop_length(self) -> int:
        """Samples between the starts of consecutive frames (1 for a waveform representation)."""

    @property
    @abc.abstractmethod
    def frame_length(self) -> int:
        """Samples one frame depends on (an STFT's ``n_fft``; 1 for a waveform representation).

        The streaming engine and the streaming sampler encode segments of a long signal with this
        much margin, so that their frames equal those of one pass over the whole signal: an
        underestimate makes them differ near the segments' edges. A class attribute
        (``frame_length = 1``) is enough when it is fixed.
        """

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

    @property
    def margin_frames(self) -> int:
        """Frames of samples to encode beyond each side of a segment so that the segment's frames
        equal a whole-signal pass: ``frame_length`` samples reach ``ceil(frame_length / hop_length)``
        frames, plus one for a frame that straddles the edge."""
        return -(-self.frame_length // self.hop_length) + 1

    def describe(self) -> dict[str, Any]:
        """Settings worth showing in summaries."""
        return {"bins": self.num_bins, "hop_length": self.hop_length, **self.config.model_dump()}
