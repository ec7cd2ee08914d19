"""The paper's reproducible splits: contiguous parts of a dataset's tracks in sorted-name order.

Datasets list their tracks sorted by name (Python string order), so a split depends only on the
track names present, never on the file system's listing order or on a random seed.

* thirds (MedleyDB, ccMixter, iKala in the paper): with ``n`` tracks and ``k = n // 3``, the first
  ``k`` tracks are ``unpaired``, the next ``k`` ``validation``, the remaining ``n - 2k`` ``test``
  (the remainder goes to the test part, as in the authors' code).
* halves (DSD100's 50 test songs in the paper): the first ``n // 2`` tracks and the rest.
"""

from __future__ import annotations

from typing import Literal, Sequence, TypeVar

T = TypeVar("T")

ThirdsSplit = Literal["all", "unpaired", "validation", "test"]
THIRDS: tuple[str, ...] = ("unpaired", "validation", "test")


def thirds(items: Sequence[T], part: str) -> list[T]:
    """One of the three contiguous parts of ``items`` (``"all"``: every item)."""
    if part == "all":
        return list(items)
    if part not in THIRDS:
        raise ValueError(f"unknown thirds split {part!r}; expected one of all, {', '.join(THIRDS)}")
    k = len(items) // 3
    start, stop = {"unpaired": (0, k), "validation": (k, 2 * k), "test": (2 * k, len(items))}[part]
    return list(items[start:stop])


def halves(items: Sequence[T], part: Literal["first", "second"]) -> list[T]:
    """The first ``n // 2`` items, or the rest."""
    k = len(items) // 2
    if part == "first":
        return list(items[:k])
    if part == "second":
        return list(items[k:])
    raise ValueError(f"unknown half {part!r}; expected 'first' or 'second'")
