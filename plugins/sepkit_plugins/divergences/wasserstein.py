"""``wasserstein-gp``: the Wasserstein-1 distance through a gradient-penalised critic (WGAN-GP).

The paper's choice (Stoller et al. 2018, after Gulrajani et al. 2017): the critic maximises
``mean D(real) - mean D(fake)``, kept close to 1-Lipschitz by a penalty on its gradient norm at random
interpolations between fake examples and a shuffled real batch.
"""

from __future__ import annotations

import torch
from pydantic import Field

from sepkit.component import ComponentConfig
from sepkit.critic import Critic
from sepkit.divergence import CriticLoss, Divergence

from .scores import check_same_shape, critic_scores


class WassersteinGPConfig(ComponentConfig):
    gradient_penalty: float = Field(10.0, ge=0.0, description="Weight lambda of the gradient penalty.")
    one_sided: bool = Field(True, description="Penalise only gradient norms above 1 (the paper).")


class WassersteinGP(Divergence):
    """Critic loss ``mean D(fake) - mean D(real) + lambda * GP``; separator loss ``-mean D(fake)``.

    ``GP = mean(max(0, ||grad D(x_hat)|| - 1)^2)`` (one-sided, the default) or
    ``mean((||grad D(x_hat)|| - 1)^2)`` (two-sided), with ``x_hat = eps * fake + (1 - eps) * real[perm]``,
    ``eps ~ U(0, 1)`` per example and ``perm`` a random permutation of the real batch. The norm is
    over all non-batch dimensions. The logged estimate ``mean D(real) - mean D(fake)`` estimates W1
    (in the units of the features) once the critic is near-optimal and about 1-Lipschitz.
    """

    Config = WassersteinGPConfig
    config: WassersteinGPConfig

    def critic_loss(self, critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> CriticLoss:
        check_same_shape(real, fake)
        real, fake = real.detach(), fake.detach()  # the critic's step never reaches the separator
        real_scores = critic_scores(critic, real, "real")
        fake_scores = critic_scores(critic, fake, "fake")
        estimate = real_scores.mean() - fake_scores.mean()
        loss = -estimate
        if self.config.gradient_penalty > 0:
            loss = loss + self.config.gradient_penalty * self.gradient_penalty(critic, real, fake)
        return CriticLoss(loss=loss, estimate=estimate.detach())

    def gradient_penalty(self, critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """The penalty on ``||grad D||`` at interpolates, differentiable w.r.t. the critic's parameters."""
        batch = real.shape[0]
        shuffled = real[torch.randperm(batch, device=real.device)]
        eps = torch.rand((batch,) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
        interpolates = (eps * fake + (1 - eps) * shuffled).requires_grad_(True)
        scores = critic_scores(critic, interpolates, "interpolated")
        (gradients,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
        # sqrt(sum g^2 + tiny) instead of norm(): finite double-backward when a gradient is exactly 0.
        norms = torch.sqrt(gradients.flatten(1).square().sum(dim=1) + 1e-12)
        excess = torch.relu(norms - 1) if self.config.one_sided else norms - 1
        return excess.square().mean()

    def separator_loss(self, critic: Critic, fake: torch.Tensor) -> torch.Tensor:
        return -critic_scores(critic, fake, "fake").mean()
