"""An optional soft-mask Wiener post-filter for magnitude-spectrogram representations.

What it is, exactly: one iteration of a single-channel Wiener filter applied to every channel
independently. The separator's source estimates ``|S_j|`` (linear magnitudes) give power masks
``m_j = |S_j|^2 / sum_k |S_k|^2``; each source becomes ``m_j * X``, the mixture's complex spectrogram
scaled by its mask (decoding a magnitude ``m_j * |X|`` with the mixture phase is exactly that). The
masks sum to one, so the filtered sources add up to the mixture. It is not the iterative
multichannel EM filter of ``norbert`` (no spatial covariance matrices): channels do not share
information.
"""

from __future__ import annotations

import torch

from ..errors import SepkitError
from ..representation import Representation

#: Added to every source power so that silent bins split the mixture evenly instead of dividing by 0.
POWER_FLOOR = 1e-12


def check_wiener(representation: Representation, name: str) -> None:
    """The filter needs features that are magnitudes of a spectrogram decoded with the mixture
    phase: what :attr:`Representation.magnitude_spectrogram` declares."""
    if not representation.magnitude_spectrogram:
        raise SepkitError(
            f"the Wiener post-filter needs a magnitude-spectrogram representation; this model's "
            f"representation '{name}' ({representation.num_bins} bins, hop {representation.hop_length}) is not one"
        )


def soft_mask_wiener(
    representation: Representation, sources: torch.Tensor, mixture: torch.Tensor
) -> torch.Tensor:
    """Source features ``[B, N, C, F, T]`` and mixture features ``[B, C, F, T]`` -> filtered source features."""
    magnitudes = representation.to_linear(sources).clamp_min(0.0)
    mixture_magnitude = representation.to_linear(mixture).clamp_min(0.0).unsqueeze(1)
    power = magnitudes.square() + POWER_FLOOR
    masks = power / power.sum(dim=1, keepdim=True)
    return representation.from_linear(masks * mixture_magnitude)
