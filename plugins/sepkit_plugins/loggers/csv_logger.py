"""``csv``: metrics.csv and validation.csv, one row a record, nested values as flat columns
(``sdr.vocals``, ``subsets.field.loss``), for spreadsheets and ``pandas.read_csv``."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sepkit.errors import SepkitError
from sepkit.io import append_line, write_text
from sepkit.training.loggers import RunInfo, TrainingLogger, flatten

METRICS_FILE = "metrics.csv"
VALIDATION_FILE = "validation.csv"


def cell(value: Any) -> str:
    """One value as text: floats in full precision (``nan``, ``inf``), lists joined by ``;``,
    booleans ``true``/``false``, nothing for ``None``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ";".join(cell(v) for v in value)
    return str(value)


def line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


class CsvTable:
    """One CSV file with a header: columns in the order they first appear; a record with a new
    column rewrites the file once with the wider header (older rows get empty cells there)."""

    def __init__(self, path: Path, resumed_at: int | None) -> None:
        self.path = path
        self.columns: list[str] = []
        rows, changed = self._read()
        if resumed_at is not None:
            kept = [r for r in rows if _step(r) <= resumed_at]
            changed = changed or len(kept) != len(rows)
            rows = kept
        if changed:
            self._write(rows)

    def append(self, record: Mapping[str, Any]) -> None:
        flat = flatten(record)
        new = [k for k in flat if k not in self.columns]
        if new:
            rows, _ = self._read()
            self.columns += new
            self._write(rows)
        append_line(self.path, line([cell(flat.get(c)) for c in self.columns]))

    def _read(self) -> tuple[list[dict[str, str]], bool]:
        """The rows on disk, and whether a torn last line (a kill during an append) was left out."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return [], False
        except OSError as exc:
            raise SepkitError(f"{self.path}: unreadable ({exc.strerror or exc})") from None
        torn = bool(text) and not text.endswith("\n")
        if torn:
            text = text[: text.rfind("\n") + 1]
        table = list(csv.reader(io.StringIO(text)))
        if not table:
            return [], torn
        self.columns = self.columns or table[0]
        return [dict(zip(table[0], row)) for row in table[1:]], torn

    def _write(self, rows: list[dict[str, str]]) -> None:
        body = "".join(line([row.get(c, "") for c in self.columns]) for row in rows)
        write_text(self.path, line(self.columns) + body if self.columns else "")


def _step(row: Mapping[str, str]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


class CsvLogger(TrainingLogger):
    """metrics.csv (event rows have an ``event`` column) and validation.csv in the run folder."""

    def __init__(self) -> None:
        self.tables: dict[str, CsvTable] = {}

    def start(self, run: RunInfo) -> None:
        self.tables = {
            "metrics": CsvTable(run.folder / METRICS_FILE, run.resumed_at),
            "validation": CsvTable(run.folder / VALIDATION_FILE, run.resumed_at),
        }

    def log_metrics(self, record: Mapping[str, Any]) -> None:
        self.tables["metrics"].append(record)

    def log_validation(self, record: Mapping[str, Any]) -> None:
        self.tables["validation"].append(record)
