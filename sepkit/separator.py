"""The Separator interface: mixture features -> source features, with declared window arithmetic.

A separator with valid convolutions returns fewer frames (and possibly bins) than it is given. It
declares that arithmetic in a :class:`Window`, so that the trainer and the separation engine cut
excerpts with real context on both sides without knowing the architecture.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from .component import Component, ComponentConfig
from .errors import ShapeError

if TYPE_CHECKING:
    from .representation import Representation


@dataclass(frozen=True)
class Window:
    """How many frames a separator takes and returns, and where the output sits in the input.

    ``input_frames`` frames in give ``output_frames`` frames out, which correspond to input frames
    ``[context_before, input_frames - context_after)``. ``input_bins``/``output_bins`` are the
    network's own (padded) sizes, reported for summaries; the separator's ``forward`` always takes and
    returns the representation's ``num_bins``.
    """

    input_frames: int
    output_frames: int
    context_before: int
    context_after: int
    input_bins: int
    output_bins: int

    def __post_init__(self) -> None:
        if self.context_before + self.output_frames + self.context_after != self.input_frames:
            raise ValueError(
                f"inconsistent window: {self.context_before} + {self.output_frames} + "
                f"{self.context_after} != {self.input_frames} input frames"
            )


class Separator(Component, nn.Module, abc.ABC):
    """``[B, C, F, T_in]`` mixture features -> ``[B, N, C, F, T_out]`` source features.

    ``N = num_sources``, ``C = num_channels``, ``F = num_bins`` (the representation's), and
    ``T_in``/``T_out`` as declared by :attr:`window`.
    """

    def __init__(
        self, config: ComponentConfig, *, num_sources: int, num_channels: int, num_bins: int
    ) -> None:
        nn.Module.__init__(self)
        self.config = config
        self.num_sources = int(num_sources)
        self.num_channels = int(num_channels)
        self.num_bins = int(num_bins)

    @property
    @abc.abstractmethod
    def window(self) -> Window:
        """The training/inference window; see :class:`Window`."""

    def bind_representation(self, representation: "Representation") -> None:
        """Called once by the builder, after construction, with the recipe's representation.

        Separators whose output depends on how features map to linear magnitudes (e.g. masks that
        must sum to the mixture) keep ``representation.to_linear``/``from_linear`` here; the default
        needs nothing.
        """

    def check_input(self, mixture: torch.Tensor) -> None:
        """Raise a :class:`ShapeError` naming the expected shape when ``mixture`` does not fit."""
        w = self.window
        expected = f"[batch, {self.num_channels}, {self.num_bins}, {w.input_frames}]"
        if mixture.dim() != 4:
            raise ShapeError(f"separator expects mixture features {expected}, got {list(mixture.shape)}")
        _, c, f, t = mixture.shape
        if c != self.num_channels or f != self.num_bins or t != w.input_frames:
            raise ShapeError(f"separator expects mixture features {expected}, got {list(mixture.shape)}")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
