"""What keeps adversarial training steady: the adversarial weight (fixed or balanced, with a warm-up)
and a Polyak average of the separator's weights.

Both keep their state in tensors on the training device (no host synchronisation per update) and
offer ``state_dict`` / ``load_state_dict`` so that a resumed run continues bit for bit.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import nn

from ..recipe.schema import TrainingConfig


class AdversarialWeight:
    """The factor in front of the adversarial term.

    ``fixed`` (the paper): ``alpha``. ``balanced``: ``alpha * |g_sup| / |g_adv|``, where ``g_sup`` is
    the supervised term's gradient at the separator's output on the paired batch and ``g_adv`` the
    adversarial term's at its output on the unpaired batch, both norms smoothed by an EMA. The
    adversarial push then stays a fixed fraction ``alpha`` of the supervised one while the critics
    sharpen and the supervised error falls (cf. the adaptive weight of VQGAN and EnCodec's loss
    balancer, which balance at the decoder's last layer or output). Output-space gradients need no
    knowledge of the architecture or the representation. Either way ``alpha`` ramps up linearly over
    ``alpha_warmup_updates``. ``combine`` turns this process's two norms into the global batch's
    (data-parallel training, :mod:`sepkit.training.distributed`); by default they are used as they are.
    """

    def __init__(
        self, config: TrainingConfig, device: torch.device, combine: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> None:
        self.config = config
        self.combine = combine
        self.balanced = config.adversarial_weighting == "balanced"
        #: smoothed [|g_sup|, |g_adv|]; zeros until the first balanced update
        self.norms = torch.zeros(2, device=device, dtype=torch.float64)
        self.seen = torch.zeros((), device=device, dtype=torch.bool)

    def ramp(self, update: int) -> float:
        warmup = self.config.alpha_warmup_updates
        return 1.0 if warmup == 0 else min(1.0, (update + 1) / warmup)

    def __call__(
        self, update: int, supervised: tuple[torch.Tensor, torch.Tensor] | None,
        adversarial: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """The weight for this update. ``supervised`` and ``adversarial`` are (loss, output) pairs."""
        alpha = self.config.alpha * self.ramp(update)
        device = self.norms.device
        if not self.balanced or supervised is None:
            return torch.tensor(alpha, device=device)
        current = torch.stack([_output_gradient_norm(*supervised), _output_gradient_norm(*adversarial)]).double()
        if self.combine is not None:
            current = self.combine(current)
        decay = self.config.balance_smoothing
        self.norms = torch.where(self.seen, decay * self.norms + (1 - decay) * current, current)
        self.seen = torch.ones_like(self.seen)
        ratio = self.norms[0] / self.norms[1].clamp(min=1e-12)
        return (alpha * ratio).float()

    def state_dict(self) -> dict[str, Any]:
        return {"norms": self.norms.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.norms = state["norms"].to(self.norms)
        self.seen = state["seen"].to(self.seen)


def _output_gradient_norm(loss: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """``|d loss / d output|`` without touching any parameter's ``.grad``."""
    (gradient,) = torch.autograd.grad(loss, output, retain_graph=True)
    return gradient.detach().float().norm()


class WeightAverage:
    """An exponential moving average of a network's parameters (Polyak averaging).

    The decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (as TensorFlow's
    ExponentialMovingAverage with ``num_updates``), so a short run is not dominated by the
    initial weights. Buffers are copied, not averaged.
    """

    def __init__(self, network: nn.Module, decay: float) -> None:
        self.decay = decay
        self.average = copy.deepcopy(network).requires_grad_(False)
        self.average.eval()

    @torch.no_grad()
    def update(self, network: nn.Module, update: int) -> None:
        weight = 1.0 - min(self.decay, (1 + update) / (10 + update))
        for mean, current in zip(self.average.parameters(), network.parameters()):
            mean.lerp_(current.detach(), weight)
        for mean, current in zip(self.average.buffers(), network.buffers()):
            mean.copy_(current)

    def state_dict(self) -> dict[str, Any]:
        return self.average.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average.load_state_dict(state)
