"""A resolved recipe as plain data and as TOML (every default filled in), for run folders and models."""

from __future__ import annotations

import json
import math
from typing import Any

from .schema import ComponentSpec, Recipe


def resolved_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe with each component table expanded to its full validated config (no variants)."""

    def spec(s: ComponentSpec) -> dict[str, Any]:
        values = s.config.model_dump(mode="json")
        fields = type(s.config).model_fields
        # None whose default is None is left out (TOML has no null); other Nones are written false.
        values = {k: v for k, v in values.items() if not (v is None and fields[k].default is None)}
        return {"type": s.type, **values}

    data = recipe.model_dump(mode="json", exclude={"variants", "representation", "separator", "critics", "divergence", "data"})
    data["representation"] = spec(recipe.representation)
    data["separator"] = spec(recipe.separator)
    if recipe.separator.init is not None:  # where training started from (model files do not keep it)
        data["separator"]["init"] = recipe.separator.init
    data["divergence"] = spec(recipe.divergence)
    data["critics"] = {k: spec(v) for k, v in recipe.critics.items()}
    d = recipe.data
    data["data"] = {
        "paired": [spec(s) for s in d.paired],
        "mixtures": [spec(s) for s in d.mixtures],
        "solo": {k: [spec(s) for s in v] for k, v in d.solo.items()},
        "validation": [spec(s) for s in d.validation],
        "test": [spec(s) for s in d.test],
        "residency": d.residency,
    }
    if d.memory_budget is not None:
        data["data"]["memory_budget"] = d.memory_budget
    return data


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
