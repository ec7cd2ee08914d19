"""The rates of a metrics record: updates since the last record and the time they took."""

from __future__ import annotations

import time


class RateWindow:
    """Counts the updates between two metrics records; the record reports their rate."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = time.perf_counter()
        self.updates = 0

    def count(self) -> None:
        self.updates += 1

    def rates(self, examples_per_update: int) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return {
            "examples_per_second": self.updates * examples_per_update / elapsed,
            "updates_per_second": self.updates / elapsed,
        }
