"""``jsonl``: metrics.jsonl and validation.jsonl, one JSON object a line (the default logger).

These two files are what ``sepkit report``, ``sepkit report --plot`` and the run's
training-curves.png read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sepkit.training.journal import METRICS_FILE, VALIDATION_FILE, Journal
from sepkit.training.loggers import RunInfo, TrainingLogger


class JsonlLogger(TrainingLogger):
    """Appends each record as one line (one ``write``: a kill leaves at most a torn last line)."""

    def __init__(self) -> None:
        self.metrics: Journal | None = None
        self.validation: Journal | None = None

    def start(self, run: RunInfo) -> None:
        self.metrics = Journal(run.folder / METRICS_FILE)
        self.validation = Journal(run.folder / VALIDATION_FILE)
        if run.resumed_at is not None:  # the interrupted run's records after its state are logged again
            self.metrics.truncate_after(run.resumed_at)
            self.validation.truncate_after(run.resumed_at)

    def log_metrics(self, record: Mapping[str, Any]) -> None:
        assert self.metrics is not None, "log_metrics before start"
        self.metrics.write(dict(record))

    def log_validation(self, record: Mapping[str, Any]) -> None:
        assert self.validation is not None, "log_validation before start"
        self.validation.write(dict(record))
