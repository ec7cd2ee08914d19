"""``kl``: an f-GAN variational estimate (Nowozin et al. 2016) of KL(P_real || P_fake).

With ``f(u) = u log u`` the f-divergence ``E_fake[f(p_real / p_fake)]`` is ``KL(P_real || P_fake)``
(the "forward" KL: real data under the separator's distribution, which punishes estimates that miss
real modes). Its convex conjugate is ``f*(t) = exp(t - 1)``, and for any critic ``T``

    KL(P_real || P_fake) >= E_real[T(x)] - E_fake[exp(T(x) - 1)],

with equality at ``T = 1 + log(p_real / p_fake)``. The critic's raw output is ``T``.
"""

from __future__ import annotations

import torch
from pydantic import Field

from sepkit.critic import Critic
from sepkit.divergence import CriticLoss, Divergence

from .penalties import PenaltyConfig, add_penalty
from .scores import critic_scores


class KullbackLeiblerConfig(PenaltyConfig):
    non_saturating: bool = Field(
        True,
        description="Separator maximises E_fake[T] (f-GAN's alternative) instead of minimising the bound.",
    )
    max_exponent: float = Field(
        5.0,
        gt=1.0,
        description="Above this critic output, exp(T - 1) continues as its tangent line, so no example's "
        "gradient weight exceeds exp(max_exponent - 1) (5: at most 54.6).",
    )


class KullbackLeibler(Divergence):
    """Critic loss ``-(E_real[T] - E_fake[exp(T - 1)])``; estimate: the bound itself (nats).

    The separator can only move the ``E_fake`` term, so it minimises ``-E_fake[exp(T(fake) - 1)]``:
    that lowers the bound, and its gradient raises ``T`` on fake examples, i.e. moves them to where
    the critic sees real data (``T`` is large where ``p_real / p_fake`` is). That gradient carries the
    weight ``exp(T(fake) - 1)``, which vanishes when fake examples lie far from every real one;
    ``non_saturating`` (the default) minimises ``-E_fake[T(fake)]`` instead (Nowozin et al., section
    3.2): the same direction for every example, without the vanishing (or exploding) weight.

    Stabilisation: ``exp(T - 1)`` explodes for large ``T`` (a critic that has collapsed onto a few
    fake examples: one such step, gradient norm 79, poisoned Adam's second moment in earlier runs).
    Above ``max_exponent`` it is replaced by its tangent line, so no example weighs more than
    ``e^(max_exponent - 1)`` in the critic's gradient. The bound is changed only where
    ``p_real / p_fake > e^(max_exponent - 1)`` (about 55 at the default 5), where a variational
    estimate from a few examples means little anyway. ``penalty = "r1"`` keeps the critic smooth.
    """

    Config = KullbackLeiblerConfig
    config: KullbackLeiblerConfig
    default_critic_iterations = 1

    def critic_loss(self, critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> CriticLoss:
        real_scores = critic_scores(critic, real.detach(), "real")
        fake_scores = critic_scores(critic, fake.detach(), "fake")
        bound = real_scores.mean() - self.conjugate(fake_scores).mean()
        return CriticLoss(loss=add_penalty(self.config, -bound, critic, real, fake), estimate=bound.detach())

    def separator_loss(self, critic: Critic, fake: torch.Tensor) -> torch.Tensor:
        scores = critic_scores(critic, fake, "fake")
        if self.config.non_saturating:
            return -scores.mean()
        return -self.conjugate(scores).mean()

    def conjugate(self, scores: torch.Tensor) -> torch.Tensor:
        """``f*(t) = exp(t - 1)``, continued linearly above ``max_exponent``."""
        top = self.config.max_exponent
        clipped = scores.clamp(max=top)
        value = torch.exp(clipped - 1)
        return torch.where(scores > top, value * (1 + scores - top), value)
