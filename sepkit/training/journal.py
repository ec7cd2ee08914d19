"""Append-only JSON-lines logs (metrics.jsonl, validation.jsonl), one ``write`` per line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import SepkitError
from ..io import append_line, write_text

#: The run folder's logs, written by the ``jsonl`` logger and read by ``sepkit report`` and the plots.
METRICS_FILE = "metrics.jsonl"
VALIDATION_FILE = "validation.jsonl"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


class Journal:
    """One JSON-lines log: append a record, read them all, drop those after a step."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        append_line(self.path, json.dumps(_clean(record)))

    def read(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path)

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (a resumed run replays them) and a torn last line."""
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log. A last line cut short (a kill or a full disk during the
    append) is left out; damage anywhere else is an error naming the file and the line."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SepkitError(f"{path}: unreadable ({exc.strerror or exc})") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            if number == len(lines):
                break  # torn by an interrupted append
            raise SepkitError(f"{path}: line {number} is not a log record ({exc}); the log is damaged") from None
        records.append(record)
    return records
