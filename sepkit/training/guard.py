"""The non-finite guard: skipped updates in a row, and rollbacks to the last good state."""

from __future__ import annotations

import copy
from typing import Any

from ..errors import SepkitError


class NonFiniteError(SepkitError):
    """Training diverged beyond recovery."""


class NonFiniteGuard:
    """An update whose loss or gradient was not finite changes nothing and is counted; after
    ``limit`` of them in a row training goes back to the last good state (kept at each epoch's
    start) and samples on with fresh batches; after ``limit`` rollbacks it gives up."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0  # non-finite updates in a row
        self.rollbacks = 0
        self._good: dict[str, Any] | None = None

    @property
    def has_good_state(self) -> bool:
        return self._good is not None

    def keep(self, snapshot: dict[str, Any]) -> None:
        """Keep a copy of ``snapshot`` (the networks, optimisers and stabilisers) as the good state."""
        self._good = copy.deepcopy(snapshot)

    def passed(self) -> None:
        """A finite update: the count in a row starts again."""
        self.count = 0

    def failed(self) -> int:
        """Count one non-finite update; returns the count in a row."""
        self.count += 1
        return self.count

    def must_roll_back(self) -> bool:
        """Whether the count has reached the limit (a :class:`NonFiniteError` once rolling back did not help)."""
        if self.count < self.limit:
            return False
        if self.rollbacks >= self.limit:
            raise NonFiniteError(
                f"training diverged: {self.rollbacks} rollbacks did not help; "
                "lower the learning rates or alpha (see docs/training.md)"
            )
        return True

    def roll_back(self) -> dict[str, Any]:
        """The good state to load (the caller loads it); counts the rollback."""
        if self._good is None:
            raise NonFiniteError("training diverged (non-finite losses) before any good state was kept")
        self.rollbacks += 1
        self.count = 0
        return self._good
