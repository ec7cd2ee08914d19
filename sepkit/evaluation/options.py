"""How to evaluate, checked once where a request comes in (``sepkit evaluate``, ``sepkit run``,
:func:`sepkit.evaluation.evaluate`) and then passed whole.

How to *separate* the tracks is an :class:`~sepkit.separation.engine.EngineOptions` (validated by
it), filled from the recipe's ``[evaluation]`` table by :func:`engine_options`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import SepkitError
from ..model import Model
from ..recipe.schema import Recipe
from ..separation.engine import EngineOptions
from .protocols import PROTOCOLS


class OptionError(SepkitError):
    """A bad option value: ``unknown protocol 'x'; expected ...`` from the library, and
    :meth:`on_command_line` says the same naming the command's option (``--protocol x: expected ...``)."""

    def __init__(self, name: str, value: object, expected: str) -> None:
        super().__init__(f"unknown {name} '{value}'; expected {expected}")
        self.name, self.value, self.expected = name, value, expected

    def on_command_line(self) -> SepkitError:
        return SepkitError(f"--{self.name} {self.value}: expected {self.expected}")


@dataclass(frozen=True)
class EvaluationOptions:
    """``protocol``: ``paper`` or ``bsseval-v4`` (None: the recipe's, else ``paper``); ``fast``: the
    torch metrics (equal to museval) or museval itself; ``jobs``: worker processes, each loading the
    model once and separating and scoring its share of the tracks; ``save_estimates``: also write
    what was scored as WAV; ``device``: where separation and scoring run (None: the model's device
    for separating, CUDA when available for scoring)."""

    protocol: str | None = None
    fast: bool = True
    jobs: int = 1
    save_estimates: bool = False
    device: str | None = None

    def __post_init__(self) -> None:
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise OptionError("protocol", self.protocol, f"one of {', '.join(PROTOCOLS)}")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise SepkitError(f"--jobs must be at least 1, got {self.jobs}")

    @property
    def backend(self) -> str:
        return "fast" if self.fast else "museval"

    def with_default_protocol(self, protocol: str) -> "EvaluationOptions":
        return self if self.protocol is not None else replace(self, protocol=protocol)


def engine_options(model: Model, recipe: Recipe, *, overlap: float | None = None, precision: str | None = None) -> EngineOptions:
    """How the evaluation separates: the recipe's ``evaluation.overlap`` and ``batch_size`` unless
    ``overlap`` is given, ``precision`` (default fp32, so that scores are reproducible); the model
    fills in the rest and :class:`EngineOptions` checks every value."""
    settings = recipe.evaluation
    return model.options(overlap=settings.overlap if overlap is None else overlap, batch_size=settings.batch_size,
                         precision=precision)


__all__ = ["EvaluationOptions", "OptionError", "engine_options"]
