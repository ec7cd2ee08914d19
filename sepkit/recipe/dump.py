"""Writing a resolved recipe (:func:`sepkit.recipe.resolve.resolve`) as TOML, for run folders."""

from __future__ import annotations

import json
import math
from typing import Any


def _value(value: Any) -> str:
    if value is None:  # TOML has no null: optional settings (crop, loudness_augmentation) read false as None
        return "false"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else json.dumps(key)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def dumps_toml(data: dict[str, Any], _prefix: str = "") -> str:
    """Write nested dicts/lists of scalars as TOML (tables and arrays of tables where needed)."""
    lines: list[str] = []
    nested: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) or _is_table_array(value):
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in nested:
        name = f"{_prefix}{_key(key)}"
        if isinstance(value, dict):
            body = dumps_toml(value, f"{name}.")
            scalars = [v for v in value.values() if not (isinstance(v, dict) or _is_table_array(v))]
            if scalars or not value:
                out += f"\n[{name}]\n"
            out += body
        else:
            for item in value:
                out += f"\n[[{name}]]\n" + dumps_toml(item, f"{name}.")
    return out
