"""Contract suite for training logger plugins (:class:`sepkit.training.loggers.TrainingLogger`).

    from sepkit.testing import check_logger

    def test_my_logger_keeps_the_contract(tmp_path):
        check_logger(MyLogger, tmp_path)

It drives the logger as the trainer does (built with no arguments; closed without a start, as when
another logger's start failed; a run with metrics, event and validation records holding NaN and
infinities; a resumed run) and checks that it raises nothing, leaves the records as they were and
writes nowhere but the run folder. What the files hold is the plugin's own tests' business.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from sepkit.training.loggers import RunInfo, TrainingLogger

METRICS: list[dict[str, Any]] = [
    {"step": 1, "epoch": 1, "examples_per_second": 120.5, "updates_per_second": 2.5, "learning_rate": 5e-5,
     "loss.supervised": 0.25, "loss.adversarial": -0.5, "loss.adversarial.vocals": -0.5, "divergence.vocals": 0.125,
     "grad_norm.separator": 1.5},
    {"step": 2, "epoch": 1, "event": "nonfinite", "count": 1},
    {"step": 2, "epoch": 1, "examples_per_second": 119.0, "updates_per_second": 2.4, "learning_rate": 5e-5,
     "loss.supervised": math.nan, "loss.adversarial": math.inf, "loss.adversarial.vocals": -math.inf,
     "divergence.vocals": 0.0, "grad_norm.separator": 0.0},
    {"step": 2, "epoch": 1, "event": "rollback", "rollbacks": 1},
]
VALIDATION: list[dict[str, Any]] = [
    {"epoch": 1, "step": 2, "seconds": 3.5, "loss": 0.5, "sdr": {"accompaniment": 4.5, "vocals": math.nan},
     "subsets": {"field": {"loss": 0.5, "sdr": {"accompaniment": 4.5, "vocals": 1.0}}}, "validation_seconds": 0.25,
     "best": True, "bad_epochs": 0, "best_by": ["validation-loss", "last"]},
    {"epoch": 2, "step": 4, "seconds": 3.0},  # no validation data
]


def _run(cls: type[TrainingLogger], folder: Path, resumed_at: int | None, steps: range) -> None:
    logger = cls()
    logger.start(RunInfo(folder=folder, variant="contract", resumed_at=resumed_at, recipe=None))
    metrics = [{**r, "step": r["step"] + steps.start} for r in METRICS]
    validation = [{**r, "step": r["step"] + steps.start} for r in VALIDATION]
    sent = copy.deepcopy((metrics, validation))
    for record in metrics:
        logger.log_metrics(record)
    logger.log_validation(validation[0])
    logger.log_validation(validation[1])
    logger.close()
    assert _same(sent, (metrics, validation)), f"{cls.__name__} changed the records it was given"


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def check_logger(cls: type[TrainingLogger], folder: Path) -> Path:
    """Check ``cls`` against the logger contract, writing in ``folder/run``; returns that folder."""
    assert isinstance(cls, type) and issubclass(cls, TrainingLogger), f"{cls!r} is not a TrainingLogger subclass"
    folder = Path(folder)
    run = folder / "run"
    run.mkdir(parents=True, exist_ok=True)
    outside = sorted(p.name for p in folder.iterdir())
    cls().close()  # closed without a start: another logger's start failed
    _run(cls, run, None, range(0, 4))
    _run(cls, run, 2, range(2, 6))  # resumed after update 2: the records after it come again
    assert sorted(p.name for p in folder.iterdir()) == outside, f"{cls.__name__} wrote outside the run folder"
    return run
