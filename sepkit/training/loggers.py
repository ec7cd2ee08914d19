"""Training loggers: where a run's metrics and validation records go.

The trainer never writes a log file itself: it hands every record to the loggers the recipe names
(``training.loggers``, default ``["jsonl"]``), which plugins register through the
``register_loggers`` hook, as the built-ins ``jsonl``, ``csv`` and ``tensorboard`` are
(docs/components/loggers.md). Only the first process of a distributed run logs.

A logger's life, in the order the trainer calls it (see :class:`TrainingLogger`):

1. ``cls()``: built with no arguments when the trainer is built, before any data is loaded, so that
   a missing package is an error at once, not after the data has been decoded;
2. ``start(run)``: once, when training starts (or resumes);
3. ``log_metrics(record)`` and ``log_validation(record)``, in the order of their ``step``;
4. ``close()``: once, at the end, also when training stopped on an error or an interrupt (and when
   another logger's ``start`` failed: ``close`` must cope with a logger that never started).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PluginError, SepkitError
from ..plugins import registry

if TYPE_CHECKING:  # the recipe package checks logger names with this module: no import back
    from ..recipe.schema import Recipe

DEFAULT_LOGGERS = ("jsonl",)


@dataclass(frozen=True)
class RunInfo:
    """What a logger is told when training starts.

    ``folder``: the run folder (write here, nowhere else). ``variant``: the run's label (``baseline``,
    ``baseline/seed-1``). ``resumed_at``: for a resumed run the update count of the training state
    it continues from; records with a larger ``step`` were logged by the interrupted run after that
    state and are logged again, so a logger that keeps files drops them. ``None`` for a fresh run.
    ``recipe``: the run's recipe (the variant's, validated; None in the contract kit).
    """

    folder: Path
    variant: str
    resumed_at: int | None
    recipe: Recipe | None


class TrainingLogger(abc.ABC):
    """Receives one training run's records. Subclasses implement :meth:`log_metrics` and
    :meth:`log_validation`; :meth:`start` and :meth:`close` do nothing unless overridden.

    Records are plain dicts of JSON types, read-only for the logger (copy what you keep):

    * metrics, every ``training.log_every`` updates and at each epoch's end: ``step`` (separator
      updates so far), ``epoch`` (1-based, the epoch being trained), ``examples_per_second``,
      ``updates_per_second``, ``learning_rate`` and the update's floats (``loss.supervised``,
      ``loss.adversarial.<source>``, ``divergence.<source>``, ``grad_norm.separator``...; see
      docs/training.md). An *event* record instead has an ``event`` key: ``{"step", "epoch",
      "event": "nonfinite", "count"}`` for a skipped update, ``{"step", "epoch", "event":
      "rollback", "rollbacks"}`` for a rollback to the last good state.
    * validation, at each epoch's end: ``epoch``, ``step``, ``seconds`` and, with validation data,
      ``loss``, ``sdr`` (``{source: dB}``), ``subsets`` (``{subset: {"loss", "sdr"}}``),
      ``validation_seconds``, ``best``, ``bad_epochs``, ``best_by`` (a list of rule names).

    Floats may be NaN or infinite. An exception a logger raises stops training (a
    :class:`~sepkit.errors.SepkitError` as it is; any other named as the logger's failure): a run
    whose log cannot be written is not quietly continued.
    """

    def start(self, run: RunInfo) -> None:
        """Training starts (or resumes, ``run.resumed_at``): open files, writers, connections."""

    @abc.abstractmethod
    def log_metrics(self, record: Mapping[str, Any]) -> None:
        """One metrics (or event) record."""

    @abc.abstractmethod
    def log_validation(self, record: Mapping[str, Any]) -> None:
        """One epoch end's validation record."""

    def close(self) -> None:
        """Training ended (finished, stopped, interrupted or failed): flush and release."""


def flatten(record: Mapping[str, Any], separator: str = ".") -> dict[str, Any]:
    """A record's nested tables as flat keys: ``{"sdr": {"vocals": 3.1}}`` becomes
    ``{"sdr.vocals": 3.1}`` (``separator`` between the parts), for loggers that keep flat columns."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            for inner, leaf in flatten(value, separator).items():
                flat[f"{key}{separator}{inner}"] = leaf
        else:
            flat[str(key)] = value
    return flat


def check_logger_names(names: Iterable[str]) -> list[str]:
    """The names of ``training.loggers``, each registered and named once (a one-line error otherwise)."""
    names = list(names)
    known = registry("logger")
    for index, name in enumerate(names):
        if name in names[:index]:
            raise SepkitError(f"training.loggers names {name!r} twice")
        if name not in known:
            raise SepkitError(f"training.loggers: unknown logger {name!r}; registered: {known.names_text()}")
    return names


class Loggers:
    """The run's loggers as one: each call goes to every logger, in the recipe's order. A logger
    that fails with anything but a :class:`SepkitError` is named in a one-line :class:`PluginError`."""

    def __init__(self, names: Iterable[str]) -> None:
        names = check_logger_names(names)
        entries = [registry("logger").get(name) for name in names]
        self._loggers: list[tuple[str, Any, TrainingLogger]] = []
        for entry in entries:
            logger = self._call(entry.name, entry.provider, "__init__", entry.cls)
            self._loggers.append((entry.name, entry.provider, logger))

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self._loggers]

    def start(self, run: RunInfo) -> None:
        for name, provider, logger in self._loggers:
            self._call(name, provider, "start", logger.start, run)

    def log_metrics(self, record: Mapping[str, Any]) -> None:
        for name, provider, logger in self._loggers:
            self._call(name, provider, "log_metrics", logger.log_metrics, record)

    def log_validation(self, record: Mapping[str, Any]) -> None:
        for name, provider, logger in self._loggers:
            self._call(name, provider, "log_validation", logger.log_validation, record)

    @contextlib.contextmanager
    def running(self, run: RunInfo) -> Iterator[Loggers]:
        """``start`` the loggers for the block and ``close`` them after, also when it fails (then a
        logger's own failure to close does not hide the block's error)."""
        try:
            self.start(run)
            yield self
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise
        self.close()

    def close(self) -> None:
        """Close every logger, even when one fails (the first failure is raised after)."""
        failure: BaseException | None = None
        for name, provider, logger in self._loggers:
            try:
                self._call(name, provider, "close", logger.close)
            except SepkitError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    @staticmethod
    def _call(name: str, provider: Any, what: str, function: Any, *arguments: Any) -> Any:
        try:
            return function(*arguments)
        except SepkitError:
            raise
        except Exception as exc:
            raise PluginError(f"logger '{name}' of {provider} failed in {what}: {type(exc).__name__}: {exc}") from exc


class NoLoggers(Loggers):
    """What every process but the first has: the names are checked as there, nothing is logged."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        check_logger_names(names)
        self._loggers = []
