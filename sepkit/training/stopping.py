"""When training stops: early stopping on the validation, and the signals that ask for a stop."""

from __future__ import annotations

import contextlib
import signal
from dataclasses import dataclass
from typing import Any, Callable, Iterator


@dataclass
class EarlyStopping:
    """Stop once the selection's stopping rule has gone more than ``patience`` epochs without a new
    best. :class:`~.selection.Selection` counts those epochs (it knows which rule improved, and the
    count resumes with it); this decides. Off without validation data or ``early_stopping = false``."""

    patience: int
    enabled: bool
    bad_epochs: int = 0

    def step(self, bad_epochs: int) -> bool:
        """One epoch's count of epochs without improvement; returns whether to stop."""
        self.bad_epochs = int(bad_epochs)
        return self.should_stop

    @property
    def should_stop(self) -> bool:
        return self.enabled and self.bad_epochs > self.patience


@contextlib.contextmanager
def stop_signals(handler: Callable[..., Any], *, sigterm: bool) -> Iterator[None]:
    """``handler`` for Ctrl-C (SIGINT) during the block, and for SIGTERM too with ``sigterm`` (how
    torchrun passes a Ctrl-C on, and how a scheduler such as SLURM preempts); the previous handlers
    come back after. Outside the main thread no handler can be set: the block runs without."""
    handled = (signal.SIGINT, signal.SIGTERM) if sigterm else (signal.SIGINT,)
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in handled}
    try:
        for sig in handled:
            signal.signal(sig, handler)
    except ValueError:  # not the main thread
        previous = {}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
