"""Critic regularisers shared by every built-in divergence: gradient penalties (WGAN-GP) and R1.

A critic that is far from smooth gives the separator gradients that say more about the critic than
about the data; each divergence adds one of these to its critic loss (``penalty``, ``penalty_weight``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, NonNegativeFloat

from sepkit.component import ComponentConfig
from sepkit.critic import Critic

from .scores import critic_scores

PenaltyKind = Literal["gp-one-sided", "gp", "r1", "none"]

PENALTY_HELP = (
    '"gp-one-sided": (max(0, |grad D(x_hat)| - 1))^2 at interpolates of fake and real examples (the paper); '
    '"gp": (|grad D(x_hat)| - 1)^2 (Gulrajani et al.); "r1": |grad D(x_real)|^2 / 2 on real examples '
    '(Mescheder et al. 2018); "none".'
)


class PenaltyConfig(ComponentConfig):
    """The regulariser part of a divergence's config; subclasses set their own defaults."""

    penalty: PenaltyKind = Field("none", description=PENALTY_HELP)
    penalty_weight: NonNegativeFloat = Field(10.0, description="Weight of the penalty in the critic loss.")


def _input_gradient_norms(critic: Critic, points: torch.Tensor) -> torch.Tensor:
    """``|grad D(x)|`` per example, differentiable w.r.t. the critic's parameters."""
    points = points.detach().requires_grad_(True)
    scores = critic_scores(critic, points, "penalised")
    (gradients,) = torch.autograd.grad(scores.sum(), points, create_graph=True)
    # sqrt(sum g^2 + tiny) instead of norm(): finite double-backward when a gradient is exactly 0.
    return torch.sqrt(gradients.flatten(1).square().sum(dim=1) + 1e-12)


def interpolates(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``eps * fake + (1 - eps) * real[perm]``, ``eps ~ U(0, 1)`` per example, ``perm`` a random permutation."""
    batch = real.shape[0]
    shuffled = real[torch.randperm(batch, device=real.device)]
    eps = torch.rand((batch,) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    return eps * fake + (1 - eps) * shuffled


def critic_penalty(kind: PenaltyKind, critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
    """The unweighted penalty of ``kind`` (None for "none")."""
    if kind == "none":
        return None
    if kind == "r1":
        return _input_gradient_norms(critic, real).square().mean() / 2
    norms = _input_gradient_norms(critic, interpolates(real, fake))
    excess = torch.relu(norms - 1) if kind == "gp-one-sided" else norms - 1
    return excess.square().mean()


def add_penalty(config: PenaltyConfig, loss: torch.Tensor, critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``loss + penalty_weight * penalty`` (unchanged when there is no penalty or its weight is 0)."""
    if config.penalty_weight == 0:
        return loss
    penalty = critic_penalty(config.penalty, critic, real, fake)
    return loss if penalty is None else loss + config.penalty_weight * penalty
