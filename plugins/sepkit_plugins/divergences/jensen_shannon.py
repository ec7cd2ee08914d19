"""``js``: the original GAN objective (Goodfellow et al. 2014), a variational Jensen-Shannon divergence.

The critic outputs a logit ``D``; ``sigmoid(D)`` is its probability that an example is real. Every
loss is written with ``softplus`` (``-log sigmoid(x) = softplus(-x)``), so huge logits stay finite.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field

from sepkit.critic import Critic
from sepkit.divergence import CriticLoss, Divergence

from .penalties import PenaltyConfig, add_penalty
from .scores import critic_scores

LOG_2 = math.log(2.0)


class JensenShannonConfig(PenaltyConfig):
    non_saturating: bool = Field(
        True, description="Separator maximises log D(fake) instead of minimising log(1 - D(fake))."
    )


class JensenShannon(Divergence):
    """Critic loss ``BCE(D(real), 1) + BCE(D(fake), 0)``; estimate ``log 2 - loss / 2`` (nats).

    At the optimal critic (``D = log p_real / p_fake``) the loss is ``2 log 2 - 2 JS(P_real, P_fake)``,
    so the estimate is a lower bound on JS in nats, between 0 and log 2 ~ 0.693 once trained.
    ``penalty`` (default none) regularises the critic (``"r1"`` is the usual choice for GANs).
    The separator minimises ``BCE(D(fake), 1) = -mean log sigmoid(D(fake))`` (non-saturating, the
    default) or ``-BCE(D(fake), 0) = mean log(1 - sigmoid(D(fake)))`` (the saturating minimax form).
    """

    Config = JensenShannonConfig
    config: JensenShannonConfig
    default_critic_iterations = 1

    def critic_loss(self, critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> CriticLoss:
        real_logits = critic_scores(critic, real.detach(), "real")
        fake_logits = critic_scores(critic, fake.detach(), "fake")
        # BCE(x, 1) = softplus(-x) and BCE(x, 0) = softplus(x)
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        estimate = (LOG_2 - loss / 2).detach()
        return CriticLoss(loss=add_penalty(self.config, loss, critic, real, fake), estimate=estimate)

    def separator_loss(self, critic: Critic, fake: torch.Tensor) -> torch.Tensor:
        logits = critic_scores(critic, fake, "fake")
        if self.config.non_saturating:
            return F.softplus(-logits).mean()  # -log sigmoid(D)
        return -F.softplus(logits).mean()  # log(1 - sigmoid(D))
