"""``separator.init = PATH``: start a separator from the weights of a sepkit model file (fine-tuning).

Any separator, any plugin: the weights are the model file's separator ``state_dict``, loaded
strictly into the separator the recipe builds. What the weights mean depends on more than their
shapes, so the model file must also agree with the recipe on the separator type, the sources (names
and order: the i-th output is the i-th source), the channels, the sample rate and the
representation (type and settings). Settings that shape no weight, such as a recurrent separator's
window, may differ. The trainer builds the separator, then this loads the weights; a resumed run
loads its own saved state over them, so resuming never depends on the file again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import load_file

from .errors import SepkitError
from .model_file import model_recipe, read_header
from .recipe.resolve import resolve

if TYPE_CHECKING:
    from .recipe.schema import Recipe
    from .separator import Separator


def _fail(path: Path, message: str) -> SepkitError:
    return SepkitError(f"separator.init: {path}: {message}")


def _stored(header: dict[str, str], key: str, path: Path) -> Any:
    try:
        return json.loads(header[key])
    except (KeyError, json.JSONDecodeError):
        raise _fail(path, f"corrupt model file: metadata '{key}' is not JSON") from None


def initialise_separator(separator: "Separator", recipe: "Recipe", path: str | Path) -> None:
    """Load the separator weights of the model file ``path`` into ``separator`` (built from ``recipe``)."""
    path = Path(path).expanduser()
    try:
        header = read_header(path)
    except SepkitError as exc:
        raise SepkitError(f"separator.init: {exc}") from None
    stored = _stored(header, "recipe", path)
    checks = [
        ("separator type", stored.get("separator", {}).get("type"), recipe.separator.type),
        ("sources", stored.get("sources"), list(recipe.sources)),
        ("channels", stored.get("audio", {}).get("channels"), recipe.audio.channels),
        ("sample rate", stored.get("audio", {}).get("sample_rate"), recipe.audio.sample_rate),
    ]
    for what, theirs, wanted in checks:
        if theirs != wanted:
            raise _fail(path, f"{what} {_short(theirs)} in the model file, {_short(wanted)} in this recipe")
    theirs, wanted = _representation(stored, path), resolve(recipe)["representation"]
    if theirs != wanted:
        raise _fail(path, f"representation {_short(theirs)} in the model file, {_short(wanted)} in this recipe")
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own types for damaged files
        raise _fail(path, f"corrupt model file: cannot read the weights: {exc}") from None
    try:
        separator.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise _fail(path, f"the weights do not fit this recipe's separator: {detail[:300]}") from None


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _representation(stored: dict[str, Any], path: Path) -> Any:
    """The model file's representation as this sepkit resolves it (a file written before a default
    was added compares equal to a recipe that states it)."""
    try:
        return resolve(model_recipe(stored, where=str(path)))["representation"]
    except SepkitError:
        return stored.get("representation")
