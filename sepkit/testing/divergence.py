"""Contract suite for :class:`sepkit.divergence.Divergence` plugins.

Call :func:`check_divergence` from any pytest test; it raises ``AssertionError`` with a message
naming the broken promise::

    from sepkit.testing import check_divergence

    def test_my_divergence_keeps_the_contract():
        check_divergence(MyDivergence(MyDivergence.Config()))

The "simple case" is two overlapping Gaussians in feature space: every feature is N(+0.5, 1) for
real examples and N(-0.5, 1) for fake ones (overlapping, so that no divergence's gradient vanishes).
After a short critic training, the divergence estimate must be positive and the separator loss's
gradient must push fake examples towards the real ones.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from sepkit.component import EmptyConfig
from sepkit.critic import Critic
from sepkit.divergence import CriticLoss, Divergence

#: Every feature of a real example is N(REAL, 1), of a fake one N(FAKE, 1).
REAL, FAKE = 0.5, -0.5

CriticFactory = Callable[[tuple[int, int, int]], nn.Module]


class MLPCritic(Critic):
    """A small fully connected critic on the flattened features: enough for the contract's simple case."""

    Config = EmptyConfig

    def __init__(
        self, config: EmptyConfig | None = None, *, input_shape: tuple[int, int, int], hidden: int = 32
    ) -> None:
        super().__init__(config or EmptyConfig(), input_shape=input_shape)
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(self.input_shape), hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.check_input(features)
        return self.net(features).squeeze(-1)


def make_mlp_critic(input_shape: tuple[int, int, int]) -> nn.Module:
    return MLPCritic(input_shape=input_shape)


def check_divergence(
    divergence: Divergence,
    *,
    make_critic: CriticFactory = make_mlp_critic,
    input_shape: tuple[int, int, int] = (1, 4, 2),
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    train_steps: int = 100,
    learning_rate: float = 2e-3,
    seed: int = 0,
) -> None:
    """Check types, finiteness, gradients and the direction of the separator's gradient.

    ``make_critic(input_shape)`` builds a fresh critic (``[B, C, F, T]`` -> ``[B]``); the default is a
    small MLP. ``train_steps`` Adam steps of the divergence's own critic loss precede the checks that
    need a trained critic.
    """
    name = type(divergence).__name__
    _expect(isinstance(divergence, Divergence), f"{name} is not a sepkit.divergence.Divergence")
    device = torch.device(device)
    torch.manual_seed(seed)
    critic = make_critic(tuple(input_shape)).to(device)
    generator = torch.Generator().manual_seed(seed)

    def batch(centre: float) -> torch.Tensor:
        noise = torch.randn(batch_size, *input_shape, generator=generator)
        return (centre + noise).to(device)

    untrained = _check_critic_loss(divergence, critic, batch(REAL), batch(FAKE), device)
    _check_separator_loss(divergence, critic, batch(FAKE), device)

    optimiser = torch.optim.Adam(critic.parameters(), lr=learning_rate, betas=(0.5, 0.9))
    for _ in range(train_steps):
        result = divergence.critic_loss(critic, batch(REAL), batch(FAKE))
        optimiser.zero_grad()
        result.loss.backward()
        optimiser.step()

    trained = divergence.critic_loss(critic, batch(REAL), batch(FAKE)).estimate
    _expect(
        float(trained) > 0 and float(trained) > float(untrained),
        f"{name}: after {train_steps} critic steps on different real (mean {REAL}) and fake (mean {FAKE}) batches "
        f"the estimate is {float(trained):.4g} (untrained {float(untrained):.4g}); it must grow and be positive",
    )
    _check_direction(divergence, critic, batch(FAKE))


def _check_critic_loss(
    divergence: Divergence, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, device: torch.device
) -> torch.Tensor:
    name = type(divergence).__name__
    critic.zero_grad()
    result = divergence.critic_loss(critic, real, fake)
    _expect(
        isinstance(result, CriticLoss),
        f"{name}.critic_loss must return sepkit.divergence.CriticLoss, got {type(result).__name__}",
    )
    loss, estimate = result
    for what, value in (("loss", loss), ("estimate", estimate)):
        _expect(
            isinstance(value, torch.Tensor) and value.dim() == 0,
            f"{name}.critic_loss: the {what} must be a scalar tensor, got {_shape(value)}",
        )
        _expect(bool(torch.isfinite(value)), f"{name}.critic_loss: the {what} is not finite ({float(value.detach())})")
        _expect(value.device == device, f"{name}.critic_loss: the {what} is on {value.device}, the inputs on {device}")
    _expect(not estimate.requires_grad, f"{name}.critic_loss: the estimate must be detached (it is only logged)")
    _expect(loss.requires_grad, f"{name}.critic_loss: the loss does not depend on the critic's parameters")
    loss.backward()
    grads = [p.grad for p in critic.parameters() if p.requires_grad]
    _expect(
        all(g is not None and bool(torch.isfinite(g).all()) for g in grads),
        f"{name}.critic_loss: some critic parameters get no or non-finite gradients",
    )
    _expect(any(bool(g.abs().sum() > 0) for g in grads), f"{name}.critic_loss: every critic gradient is zero")
    critic.zero_grad()
    return estimate


def _check_separator_loss(divergence: Divergence, critic: nn.Module, fake: torch.Tensor, device: torch.device) -> None:
    name = type(divergence).__name__
    fake = fake.clone().requires_grad_(True)
    loss = divergence.separator_loss(critic, fake)
    _expect(
        isinstance(loss, torch.Tensor) and loss.dim() == 0,
        f"{name}.separator_loss must return a scalar tensor, got {_shape(loss)}",
    )
    _expect(bool(torch.isfinite(loss)), f"{name}.separator_loss is not finite ({float(loss.detach())})")
    _expect(loss.device == device, f"{name}.separator_loss is on {loss.device}, the inputs on {device}")
    _expect(loss.requires_grad, f"{name}.separator_loss does not depend on the fake examples")
    (grad,) = torch.autograd.grad(loss, fake)
    _expect(bool(torch.isfinite(grad).all()), f"{name}.separator_loss gives non-finite gradients on the fake examples")
    _expect(bool(grad.abs().sum() > 0), f"{name}.separator_loss gives a zero gradient on the fake examples")
    critic.zero_grad()


def _check_direction(divergence: Divergence, critic: nn.Module, fake: torch.Tensor) -> None:
    name = type(divergence).__name__
    fake = fake.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(divergence.separator_loss(critic, fake), fake)
    descent = -grad.flatten(1)
    agreement = descent.sum(dim=1) * (REAL - FAKE) > 0  # the real mean is (REAL - FAKE) * ones away
    share = float(agreement.float().mean())
    _expect(
        share >= 0.9,
        f"{name}.separator_loss: gradient descent moves only {share:.0%} of the fake examples towards the real "
        "ones (expected at least 90%) after training the critic; check the loss's sign",
    )
    critic.zero_grad()


def _shape(value: object) -> object:
    return list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)
