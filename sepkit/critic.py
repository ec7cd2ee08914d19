"""The Critic interface: features of one source -> one score per example."""

from __future__ import annotations

import torch
from torch import nn

from .component import Component, ConfigValues
from .errors import ShapeError


class Critic(Component, nn.Module):
    """``[B, C, F, T]`` features of one source -> ``[B]`` scores.

    ``input_shape`` is ``(C, F, T)``: the separator's output for one source. A critic may crop it
    (the paper's DCGAN looks at a 256 x 64 centre crop); that is its own business.
    """

    def __init__(self, config: ConfigValues, *, input_shape: tuple[int, int, int]) -> None:
        nn.Module.__init__(self)
        Component.__init__(self, config)
        self.input_shape = tuple(int(s) for s in input_shape)

    def check_input(self, features: torch.Tensor) -> None:
        """Raise a one-line :class:`ShapeError` unless ``features`` is ``[batch, *input_shape]``."""
        if features.dim() != 4 or tuple(features.shape[1:]) != self.input_shape:
            c, f, t = self.input_shape
            raise ShapeError(
                f"critic expects source features [batch, {c}, {f}, {t}], got {list(features.shape)}"
            )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
