"""The Divergence interface: turns a critic into training signals for the critic and the separator."""

from __future__ import annotations

import abc
from typing import ClassVar, NamedTuple

import torch

from .component import Component
from .critic import Critic


class CriticLoss(NamedTuple):
    """What a critic step needs: the loss to minimise, and the divergence estimate to log."""

    loss: torch.Tensor
    estimate: torch.Tensor


class Divergence(Component, abc.ABC):
    """A variational divergence between real source excerpts and the separator's estimates.

    ``critic_loss`` is minimised by the critic; its negation (without regularisers) is the
    divergence estimate that the trainer logs (``CriticLoss.estimate``). ``separator_loss`` is minimised by
    the separator (through ``fake``). Built with ``cls(config)``: :class:`Component`'s constructor.
    """

    #: Critic updates per separator update when the recipe says ``critic_iterations = "auto"``:
    #: Wasserstein critics must be near-optimal for their gradient to mean anything (WGAN: 5);
    #: GAN-style divergences usually alternate one for one (TTUR practice).
    default_critic_iterations: ClassVar[int] = 5

    @abc.abstractmethod
    def critic_loss(
        self, critic: Critic, real: torch.Tensor, fake: torch.Tensor
    ) -> CriticLoss:
        """The critic's loss and the divergence estimate (without regularisers, detached)."""

    @abc.abstractmethod
    def separator_loss(self, critic: Critic, fake: torch.Tensor) -> torch.Tensor:
        """Loss whose gradient moves ``fake`` towards the real distribution."""
