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

from .component import Component, ConfigValues, checks_values
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
    ``T_in``/``T_out`` as declared by :attr:`window`. ``forward`` starts with
    ``self.check_input(mixture)``: the base class's check is complete (type, rank, every size,
    dtype, values), so a separator adds only what its own architecture needs.
    """

    def __init__(self, config: ConfigValues, *, num_sources: int, num_channels: int, num_bins: int) -> None:
        nn.Module.__init__(self)
        Component.__init__(self, config)
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
        """Raise a one-line :class:`ShapeError` naming the expected shape and what is wrong.

        Checked: a floating-point tensor ``[batch, num_channels, num_bins, window.input_frames]``,
        and (unless inside :func:`~sepkit.component.trusted_values`) finite values.
        """
        problem = _input_problem(mixture, self.window, self.num_channels, self.num_bins)
        if problem is not None:
            w = self.window
            expected = f"[batch, {self.num_channels}, {self.num_bins}, {w.input_frames}]"
            raise ShapeError(f"{type(self).__name__} expects mixture features {expected}, {problem}")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _input_problem(mixture: object, window: Window, channels: int, bins: int) -> str | None:
    """What is wrong with ``mixture`` as the input of a separator with these sizes (None: nothing)."""
    if not isinstance(mixture, torch.Tensor):
        return f"got a {type(mixture).__name__}, not a tensor"
    shape = list(mixture.shape)
    if mixture.dim() != 4:
        return f"got a {mixture.dim()}-D tensor of shape {shape}"
    if mixture.shape[1] != channels:
        return f"got {mixture.shape[1]} channels (shape {shape})"
    if mixture.shape[2] != bins:
        return f"got {mixture.shape[2]} bins (shape {shape})"
    if mixture.shape[3] != window.input_frames:
        amount = "too few" if mixture.shape[3] < window.input_frames else "too many"
        return (
            f"got {mixture.shape[3]} frames, {amount} (the window is {window.context_before} context + "
            f"{window.output_frames} output + {window.context_after} context frames)"
        )
    if not mixture.is_floating_point():
        return f"got dtype {mixture.dtype}, not a floating-point tensor"
    if checks_values() and not bool(torch.isfinite(mixture).all()):
        return "got NaN or infinite values"
    return None
