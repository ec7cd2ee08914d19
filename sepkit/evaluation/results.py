"""Result files: one JSON per track and ``summary.json``, written atomically (temp file + rename), so
an interrupted evaluation leaves only whole files and a rerun can skip what is done.

JSON has no NaN or infinity: non-finite numbers are written as ``null`` (the track's ``warnings``
say why) and read back as NaN.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..io import write_text

SUMMARY_FILE = "summary.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_name(name: str) -> str:
    """A track name usable as one file name (no folders, no control characters)."""
    cleaned = _UNSAFE.sub("_", name).strip(" .") or "track"
    return cleaned[:200]


def json_value(value: Any) -> Any:
    """Numbers and containers as JSON data; NaN and infinities become ``None``."""
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically."""
    write_text(path, json.dumps(json_value(data), indent=2, allow_nan=False) + "\n")


def read_json(path: Path) -> dict[str, Any] | None:
    """A result file, or ``None`` when it is missing or not a complete JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def number(value: Any) -> float:
    """A stored metric as a float (``null`` -> NaN)."""
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def is_track_result(data: dict[str, Any] | None) -> bool:
    return bool(data) and isinstance(data.get("track"), str) and isinstance(data.get("metrics"), dict)


__all__ = ["SUMMARY_FILE", "is_track_result", "json_value", "number", "read_json", "safe_name", "write_json"]
