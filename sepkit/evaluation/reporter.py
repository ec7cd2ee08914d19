"""What an evaluation shows: a progress bar over tracks and one warning line per problem on stderr
(logging when quiet), the summary tables on ``console`` (stdout by default)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from .tables import print_summary

log = logging.getLogger("sepkit.evaluation")


class Reporter:
    """``enabled=False``: nothing on the console, warnings and notes go to logging."""

    def __init__(self, *, console: Any = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.console = console or Console()
        self.errors = Console(stderr=True)

    def warn(self, track: str, message: str) -> None:
        if self.enabled:
            self.errors.print(f"[yellow]warning[/]: {escape(track)}: {escape(message)}", highlight=False)
        else:
            log.warning("%s: %s", track, message)

    def note(self, message: str) -> None:
        if self.enabled:
            self.errors.print(message, highlight=False, markup=False)
        else:
            log.info(message)

    @contextlib.contextmanager
    def bar(self, total: int | None) -> Iterator[Callable[[str], None]]:
        """A transient progress bar over tracks; yields ``advance(track name)``."""
        if not self.enabled:
            yield lambda name: None
            return
        with Progress(console=self.errors, transient=True) as progress:
            task = progress.add_task("evaluating", total=total)
            yield lambda name: progress.update(task, advance=1, description=f"evaluating {name[:40]}")

    def finished(self, summary: dict[str, Any], *, folder: Any, skipped: int, replaced: int,
                 not_loaded: Sequence[tuple[str, str]]) -> None:
        """The end of a run: what was reused or replaced, the tables, the tracks that did not load."""
        if replaced:
            self.note(f"replaced {replaced} earlier result(s) of another model, protocol or backend in {folder}")
        if skipped:
            self.note(f"skipped {skipped} track(s) already scored in {folder}")
        if self.enabled:
            print_summary(summary, self.console)
            for path, reason in not_loaded:  # tracks the loader could not read (the others were warned about)
                self.warn(path, f"not loaded: {reason}")


__all__ = ["Reporter"]
