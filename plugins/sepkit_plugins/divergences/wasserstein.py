"""``wasserstein-gp``: the Wasserstein-1 distance through a gradient-penalised critic (WGAN-GP).

The paper's choice (Stoller et al. 2018, after Gulrajani et al. 2017): the critic maximises
``mean D(real) - mean D(fake)``, kept close to 1-Lipschitz by a penalty on its gradient norm at random
interpolations between fake examples and a shuffled real batch.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, NonNegativeFloat, model_validator

from sepkit.critic import Critic
from sepkit.divergence import CriticLoss, Divergence

from .penalties import PENALTY_HELP, PenaltyConfig, PenaltyKind, add_penalty, critic_penalty
from .scores import check_same_shape, critic_scores


class WassersteinGPConfig(PenaltyConfig):
    penalty: PenaltyKind = Field("gp-one-sided", description=PENALTY_HELP)
    penalty_weight: NonNegativeFloat = Field(10.0, description="Weight lambda of the penalty (the paper: 10).")

    @model_validator(mode="before")
    @classmethod
    def _paper_names(cls, values: Any) -> Any:
        """The names of earlier recipes: ``gradient_penalty`` (lambda) and ``one_sided``."""
        if not isinstance(values, dict) or not ({"gradient_penalty", "one_sided"} & set(values)):
            return values
        values = dict(values)
        for old, new in (("gradient_penalty", "penalty_weight"), ("one_sided", "penalty")):
            if old in values and new in values:
                raise ValueError(f"{old} and {new} say the same thing: keep {new}")
        if "gradient_penalty" in values:
            weight = values.pop("gradient_penalty")
            if isinstance(weight, (int, float)) and weight < 0:
                raise ValueError("gradient_penalty: Input should be greater than or equal to 0")
            values["penalty_weight"] = weight
        if "one_sided" in values:
            values["penalty"] = "gp-one-sided" if values.pop("one_sided") else "gp"
        return values

    @property
    def gradient_penalty(self) -> float:
        return self.penalty_weight

    @property
    def one_sided(self) -> bool:
        return self.penalty == "gp-one-sided"


class WassersteinGP(Divergence):
    """Critic loss ``mean D(fake) - mean D(real) + lambda * penalty``; separator loss ``-mean D(fake)``.

    The paper's penalty (``penalty = "gp-one-sided"``, the default) is
    ``GP = mean(max(0, ||grad D(x_hat)|| - 1)^2)``; ``"gp"`` is the two-sided
    ``mean((||grad D(x_hat)|| - 1)^2)``, with ``x_hat = eps * fake + (1 - eps) * real[perm]``,
    ``eps ~ U(0, 1)`` per example and ``perm`` a random permutation of the real batch; ``"r1"``
    penalises the gradient on real examples (see penalties.py). The norm is over all non-batch
    dimensions. The logged estimate ``mean D(real) - mean D(fake)`` estimates W1 (in the units of the
    features) once the critic is near-optimal and about 1-Lipschitz.
    """

    Config = WassersteinGPConfig
    config: WassersteinGPConfig

    def critic_loss(self, critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> CriticLoss:
        check_same_shape(real, fake)
        real, fake = real.detach(), fake.detach()  # the critic's step never reaches the separator
        real_scores = critic_scores(critic, real, "real")
        fake_scores = critic_scores(critic, fake, "fake")
        estimate = real_scores.mean() - fake_scores.mean()
        loss = add_penalty(self.config, -estimate, critic, real, fake)
        return CriticLoss(loss=loss, estimate=estimate.detach())

    def gradient_penalty(self, critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """The configured penalty (unweighted), differentiable w.r.t. the critic's parameters."""
        penalty = critic_penalty(self.config.penalty, critic, real, fake)
        return torch.zeros((), device=real.device) if penalty is None else penalty

    def separator_loss(self, critic: Critic, fake: torch.Tensor) -> torch.Tensor:
        return -critic_scores(critic, fake, "fake").mean()
