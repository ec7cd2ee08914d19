"""The separator's loss terms: supervised MSE and the additive penalty (paper, section 2)."""

from __future__ import annotations

import torch

from ..representation import Representation


def supervised_loss(estimates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error in the feature domain, summed over sources (each source a mean).

    ``estimates`` and ``targets`` are ``[B, N, C, F, T]``.
    """
    per_source = (estimates - targets).pow(2).flatten(2).mean(dim=(0, 2))
    return per_source.sum()


def additive_penalty(
    representation: Representation, mixture: torch.Tensor, estimates: torch.Tensor
) -> torch.Tensor:
    """Mean squared difference between the mixture and the sum of the estimates, in LINEAR magnitudes.

    ``mixture`` is ``[B, C, F, T]`` and ``estimates`` ``[B, N, C, F, T]`` (features, e.g. log1p).
    """
    total = representation.to_linear(estimates).sum(dim=1)
    return (representation.to_linear(mixture) - total).pow(2).mean()
