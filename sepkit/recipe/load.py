"""Reading a recipe: TOML -> command-line overrides -> ${path} substitution -> validation -> variants.

Every error is a :class:`~sepkit.errors.RecipeError` whose one-line message starts with the TOML
path of the bad key. TOML is data: nothing in it is ever executed.
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import PluginError, RecipeError, SepkitError
from ..plugins import registry
from ..training.loggers import check_logger_names
from .schema import Recipe

PATH_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_-]+)\}")
DEFAULT_VARIANT = "default"


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe file: its base recipe and every variant, each fully validated."""

    path: Path | None
    base: Recipe
    variants: dict[str, Recipe]
    raw: dict[str, Any]

    def select(self, name: str | None) -> dict[str, Recipe]:
        if name is None:
            return dict(self.variants)
        if name not in self.variants:
            raise RecipeError(f"unknown variant '{name}'; this recipe has: {', '.join(self.variants)}")
        return {name: self.variants[name]}


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: malformed TOML: {exc}") from None


def load_recipe(
    path: str | Path, overrides: list[str] | tuple[str, ...] = (), *, check_data: bool = True
) -> LoadedRecipe:
    """Read, override and validate a recipe file and all its variants."""
    raw = read_toml(path)
    return recipe_from_dict(raw, overrides, base_dir=Path(path).resolve().parent, path=Path(path), check_data=check_data)


def recipe_from_dict(
    raw: dict[str, Any],
    overrides: list[str] | tuple[str, ...] = (),
    *,
    base_dir: Path | None = None,
    path: Path | None = None,
    check_data: bool = True,
) -> LoadedRecipe:
    raw = copy.deepcopy(raw)
    for item in overrides:
        apply_override(raw, item)
    base = validate(raw, base_dir=base_dir, where="")
    variants: dict[str, Recipe] = {}
    variant_tables = raw.get("variants") or {}
    if not variant_tables:
        variants[DEFAULT_VARIANT] = base
    for name, table in variant_tables.items():
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
            raise RecipeError(f"variants.{name}: variant names are letters, digits, '-', '_' and '.'")
        merged = {k: v for k, v in raw.items() if k != "variants"}
        merged = deep_merge(merged, table)
        for item in _base_overrides_for(name, overrides):  # the command line has the last word
            apply_override(merged, item)
        variants[name] = validate(merged, base_dir=base_dir, where=f"variants.{name}")
    if check_data:
        for name, recipe in variants.items():
            check_roles(recipe, where="" if name == DEFAULT_VARIANT else f"variants.{name}")
    return LoadedRecipe(path=path, base=base, variants=variants, raw=raw)


def _key(item: str) -> str:
    return item.partition("=")[0].strip()


def _base_overrides_for(variant: str, overrides: list[str] | tuple[str, ...]) -> list[str]:
    """The ``--set`` items on base keys, to apply again over ``variant``'s own table: ``--set
    training.alpha=0.4`` means alpha 0.4 in every variant, also one whose table sets alpha (else the
    override would silently do nothing there). An item for that variant's own key
    (``--set variants.NAME.training.alpha=...``) wins over the base item."""
    prefix = f"variants.{variant}."
    own = {_key(item)[len(prefix):] for item in overrides if _key(item).startswith(prefix)}
    return [item for item in overrides if not _key(item).startswith("variants.") and _key(item) not in own]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` merged into a copy of ``base``: tables merge key by key, anything else replaces.

    A table that names another ``type`` (a variant swapping ``divergence.type = "js"`` for the base's
    ``wasserstein-gp``) replaces the base's table whole: the old component's options mean nothing to
    the new one.
    """
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and _same_type(out[key], value):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _same_type(base: dict[str, Any], override: dict[str, Any]) -> bool:
    return "type" not in override or override.get("type") == base.get("type")


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply ``key.path=value`` (value parsed as a TOML value, else taken as a string)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"--set {item!r}: expected KEY=VALUE, e.g. training.batch_size=16")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        here = ".".join(parts[: i + 1])
        if isinstance(node, list):
            node = _list_item(node, part, here, item)
        else:
            if not isinstance(node, dict):
                raise RecipeError(f"--set {item!r}: '{here}' is not a table")
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        index = _index(last, key, item, len(node))
        node[index] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise RecipeError(f"--set {item!r}: '{'.'.join(parts[:-1])}' is not a table")


def _index(part: str, here: str, item: str, length: int) -> int:
    if not part.isdigit() or int(part) >= length:
        raise RecipeError(f"--set {item!r}: '{here}' needs an index below {length}")
    return int(part)


def _list_item(node: list[Any], part: str, here: str, item: str) -> Any:
    return node[_index(part, here, item, len(node))]


def substitute_paths(value: Any, paths: dict[str, str], where: str = "") -> Any:
    """Replace ``${name}`` in every string with ``paths[name]``."""
    if isinstance(value, dict):
        return {k: substitute_paths(v, paths, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_paths(v, paths, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in paths:
                known = ", ".join(sorted(paths)) or "none"
                raise RecipeError(f"{where}: unknown path ${{{name}}} (the [paths] table defines: {known})")
            return str(paths[name])

        return PATH_REFERENCE.sub(replace, value)
    return value


def _resolve_roots(data: Any, base_dir: Path) -> Any:
    """Make every dataset ``root`` absolute, relative to the recipe file's folder."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key == "root" and isinstance(value, str):
                root = Path(value).expanduser()
                out[key] = str(root if root.is_absolute() else (base_dir / root).resolve())
            else:
                out[key] = _resolve_roots(value, base_dir)
        return out
    if isinstance(data, list):
        return [_resolve_roots(v, base_dir) for v in data]
    return data


def validate(raw: dict[str, Any], *, base_dir: Path | None = None, where: str = "") -> Recipe:
    """Validate one recipe (no variants merged in) completely, component configs included."""
    prefix = f"{where}." if where else ""
    body = {k: v for k, v in raw.items() if k != "variants"} if where else dict(raw)
    paths = body.get("paths") or {}
    if not isinstance(paths, dict) or not all(isinstance(v, str) for v in paths.values()):
        raise RecipeError(f"{prefix}paths: a table of strings, e.g. corpus = \"data/corpus\"")
    paths = {k: substitute_paths(v, {kk: vv for kk, vv in paths.items() if kk != k}, f"paths.{k}") for k, v in paths.items()}
    body = {k: (v if k == "paths" else substitute_paths(v, paths, k)) for k, v in body.items()}
    if base_dir is not None and isinstance(body.get("data"), dict):
        body["data"] = _resolve_roots(body["data"], base_dir)
    init = body.get("separator", {}).get("init") if isinstance(body.get("separator"), dict) else None
    if base_dir is not None and isinstance(init, str):  # separator.init: relative to the recipe too
        body["separator"] = {**body["separator"], "init": str((base_dir / Path(init).expanduser()).resolve())}
    try:
        recipe = Recipe.model_validate(body)
    except ValidationError as exc:
        raise RecipeError(prefix + format_validation_error(exc)) from None
    validate_components(recipe, prefix)
    return recipe


def validate_components(recipe: Recipe, prefix: str = "") -> None:
    """Bind every component table to its registered class's Config, and check the logger names."""
    for location, spec in recipe.component_specs():
        try:
            entry = registry(spec.kind).get(spec.type)
        except PluginError as exc:
            if str(exc).startswith("unknown"):
                raise RecipeError(f"{prefix}{location}.type: {exc}") from None
            raise
        try:
            spec.bind(entry.cls)
        except ValidationError as exc:
            raise RecipeError(
                f"{prefix}{location}.{format_validation_error(exc)} ({spec.kind} '{spec.type}')"
            ) from None
    if "loggers" in recipe.training.model_fields_set:  # names the recipe wrote (the default is built in)
        try:
            check_logger_names(recipe.training.loggers)
        except SepkitError as exc:
            raise RecipeError(f"{prefix}{exc}") from None


def format_validation_error(exc: ValidationError) -> str:
    """The first error of ``exc`` as ``toml.path: message`` (and how many more there are)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = _toml_path(first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required key is missing"
    else:
        message = first["msg"]
        if kind.endswith("_type") or kind.endswith("_parsing"):
            message += f" (got {first.get('input')!r})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{path}: {message}{more}" if path else f"{message}{more}"


def _toml_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def check_roles(recipe: Recipe, where: str = "") -> None:
    """Refuse a recipe whose data roles cannot feed its training (before any audio is read)."""
    prefix = f"{where}: " if where else ""
    data = recipe.data
    for source in recipe.critics:
        if not data.solo.get(source):
            raise RecipeError(
                f"{prefix}critics.{source}: no solo recordings of '{source}' to train its critic "
                f"(add [[data.solo.{source}]])"
            )
    if recipe.critics and not data.mixtures:
        raise RecipeError(f"{prefix}critics: critics need unpaired mixtures (add [[data.mixtures]])")
    if not data.paired and not recipe.critics:
        raise RecipeError(
            f"{prefix}data.paired: nothing to train on: no paired data and no critics"
        )
    if recipe.training.early_stopping and not data.validation:
        raise RecipeError(
            f"{prefix}data.validation: early stopping needs a validation set "
            "(add [[data.validation]] or set training.early_stopping = false)"
        )
