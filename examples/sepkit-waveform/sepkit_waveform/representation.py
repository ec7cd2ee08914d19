"""The ``waveform`` representation: the features are the samples themselves.

sepkit's features are ``[B, C, F, T]``; a waveform has one bin (``F = 1``) and one frame per sample
(``hop_length = 1``), so ``encode`` only adds the bin axis and ``decode`` removes it. There is no
normalisation: ``to_linear``/``from_linear`` are the identity, so the trainer's additive penalty is
``mean (mixture - sum of the estimates)^2`` on the samples and its loudness augmentation scales the
waveform by the drawn factor, both exactly what they mean for a waveform.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sepkit import Representation, ShapeError


class Waveform(Representation):
    """``[B, C, L]`` waveform <-> ``[B, C, 1, L]`` features; exactly invertible, no context.

    No settings (the base class's empty ``Config``): the rate is the recipe's ``audio.sample_rate``.
    """

    invertible = True
    frame_length = 1

    @property
    def num_bins(self) -> int:
        return 1

    @property
    def hop_length(self) -> int:
        return 1

    def num_frames(self, num_samples: int) -> int:
        num_samples = int(num_samples)
        if num_samples < 1:
            raise ShapeError(f"waveform: a waveform needs at least 1 sample, got {num_samples}")
        return num_samples

    def encode(self, waveform: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """``[B, C, L]`` -> (``[B, C, 1, L]``, ``None``); the features are a view of the input."""
        if not isinstance(waveform, torch.Tensor) or waveform.dim() != 3:
            shape = list(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
            raise ShapeError(f"waveform encodes waveforms [batch, channels, samples], got {shape}")
        if not waveform.is_floating_point():
            raise ShapeError(f"waveform encodes floating-point waveforms, got {waveform.dtype}")
        if waveform.shape[-1] < 1:
            raise ShapeError(f"waveform: a waveform needs at least 1 sample, got {list(waveform.shape)}")
        if not bool(torch.isfinite(waveform).all()):
            raise ShapeError(f"waveform: the waveform {list(waveform.shape)} contains NaN or infinite samples")
        return waveform.unsqueeze(-2), None

    def decode(self, features: torch.Tensor, context: Any, length: int) -> torch.Tensor:
        """``[B, N, C, 1, T]`` or ``[B, C, 1, T]`` -> ``[B, N, C, length]`` or ``[B, C, length]``.

        Frames past ``length`` are dropped; missing ones are zeros. ``context`` is unused (``None``).
        """
        if not isinstance(features, torch.Tensor) or features.dim() not in (4, 5) or features.shape[-2] != 1:
            shape = list(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ShapeError(
                f"waveform decodes features [batch, sources, channels, 1, frames] or "
                f"[batch, channels, 1, frames], got {shape}"
            )
        length = int(length)
        if length < 1:
            raise ShapeError(f"waveform: decode length must be at least 1 sample, got {length}")
        samples = features.squeeze(-2)
        if samples.shape[-1] >= length:
            return samples[..., :length]
        return F.pad(samples, (0, length - samples.shape[-1]))

    def to_linear(self, features: torch.Tensor) -> torch.Tensor:
        """Identity: samples are already linear (scaling them scales the signal)."""
        return features

    def from_linear(self, magnitudes: torch.Tensor) -> torch.Tensor:
        """Identity."""
        return magnitudes
