"""What every built-in divergence does with a critic: call it and check that it scored each example once."""

from __future__ import annotations

import torch

from sepkit.errors import ShapeError


def critic_scores(critic: torch.nn.Module, features: torch.Tensor, what: str) -> torch.Tensor:
    """``critic(features)`` as ``[B]`` scores in at least float32 (so exp/softplus stay finite under AMP)."""
    scores = critic(features)
    if not isinstance(scores, torch.Tensor) or scores.shape != features.shape[:1]:
        shape = list(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ShapeError(
            f"a critic must return one score per example, shape [{features.shape[0]}], for the "
            f"{what} batch {list(features.shape)}; got {shape}"
        )
    return scores.to(torch.promote_types(scores.dtype, torch.float32))


def check_same_shape(real: torch.Tensor, fake: torch.Tensor) -> None:
    """Real and fake batches must match: the divergences pair and interpolate them example by example."""
    if real.shape != fake.shape:
        raise ShapeError(
            f"real and fake batches must have the same shape, got real {list(real.shape)} and fake {list(fake.shape)}"
        )
