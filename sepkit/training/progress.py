"""Training progress: a rich display on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class TrainingProgress:
    """Shows separator and critic steps, current losses, examples/s and time to the epoch's end."""

    def __init__(self, variant: str, updates_per_epoch: int, *, enabled: bool = True, stream: Any = None) -> None:
        self.variant = variant
        self.total = updates_per_epoch
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.interactive = enabled and self.stream.isatty()
        self._progress = None
        self._task = None
        self._last_line = 0.0

    def __enter__(self) -> "TrainingProgress":
        if self.interactive:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
                console=Console(file=self.stream), transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start_epoch(self, epoch: int, completed: int = 0) -> None:
        self._epoch = epoch
        self._started = time.perf_counter()
        self._start_completed = completed
        if self._progress is not None:
            self._task = self._progress.add_task(f"{self.variant} epoch {epoch}", total=self.total, completed=completed, status="")

    def update(self, completed: int, metrics: dict[str, float], critic_steps: int) -> None:
        status = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        if critic_steps:
            status = f"critic steps {critic_steps}  {status}"
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=completed, status=status)
            return
        now = time.perf_counter()
        if self.enabled and (now - self._last_line > 10 or completed == self.total):
            self._last_line = now
            rate = (completed - self._start_completed) / max(now - self._started, 1e-9)
            eta = (self.total - completed) / rate if rate > 0 else float("nan")
            print(
                f"[{self.variant}] epoch {self._epoch} update {completed}/{self.total} "
                f"{status} ({rate:.2f} updates/s, {eta:.0f} s left)",
                file=self.stream, flush=True,
            )

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.console.print(text)
        else:
            print(text, file=self.stream, flush=True)
