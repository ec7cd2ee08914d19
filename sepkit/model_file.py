"""The model file format: a separator's weights in safetensors, with what is needed to rebuild it.

A model file is a plain safetensors file: the separator's ``state_dict`` plus string metadata (the
resolved recipe as JSON, the registered name and providing distribution of each component, sources,
sample rate, channels, format version and the caller's metadata such as training metrics). This
module writes and reads that format and checks it; it never unpickles anything and builds nothing
(:func:`sepkit.model.load_model` rebuilds the components through the registries). See
docs/model-files.md.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.torch import save

from . import __version__
from .errors import SepkitError
from .io import write_bytes
from .plugins import registry
from .recipe.load import format_validation_error
from .recipe.resolve import resolve
from .recipe.schema import Recipe

if TYPE_CHECKING:
    from .representation import Representation
    from .separator import Separator

#: Written as the ``format`` metadata key; a safetensors file without it is not a sepkit model.
FORMAT = "sepkit-model"
#: Bumped when the layout of the metadata changes incompatibly.
FORMAT_VERSION = 1
#: The component kinds a model file needs to be rebuilt (critics, divergences and datasets are
#: training-only: they are kept in the stored recipe as provenance but not needed to load).
MODEL_KINDS = ("representation", "separator")


# -- saving ----------------------------------------------------------------------------------------


def storable_recipe(recipe: "Recipe") -> dict[str, Any]:
    """The recipe as a model file stores it: resolved (every default written out, so that a plugin
    changing a default later does not change a saved model), without variants, and without
    ``separator.init`` (a path on the training machine, and loading must never read another file)."""
    data = {**resolve(recipe), "variants": {}}
    data["separator"] = {k: v for k, v in data["separator"].items() if k != "init"}
    return data


def model_header(
    recipe: "Recipe", representation: "Representation", separator: "Separator", metadata: dict[str, Any] | None = None
) -> dict[str, str]:
    """The safetensors metadata of a model file (all values are strings)."""
    components = {}
    for kind, obj in (("representation", representation), ("separator", separator)):
        name = getattr(recipe, kind).type
        entry = registry(kind).get(name)
        if type(obj) is not entry.cls:
            raise SepkitError(
                f"save_model: the {kind} is a {type(obj).__name__}, but the recipe's {kind} '{name}' is "
                f"{entry.cls.__name__}"
            )
        components[kind] = {
            "name": name,
            "distribution": entry.provider.distribution,
            "version": entry.provider.version,
            "plugin": entry.provider.plugin,
        }
    if separator.num_sources != len(recipe.sources) or separator.num_channels != recipe.audio.channels:
        raise SepkitError(
            f"save_model: the separator has {separator.num_sources} sources and {separator.num_channels} "
            f"channels; the recipe says {len(recipe.sources)} and {recipe.audio.channels}"
        )
    if representation.sample_rate != recipe.audio.sample_rate:
        raise SepkitError(
            f"save_model: the representation works at {representation.sample_rate} Hz; the recipe says "
            f"{recipe.audio.sample_rate} Hz"
        )
    try:
        user = json.dumps(metadata or {}, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise SepkitError(f"save_model: metadata must be JSON data: {exc}") from None
    return {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "sepkit_version": __version__,
        "recipe": json.dumps(storable_recipe(recipe), sort_keys=True),
        "components": json.dumps(components, sort_keys=True),
        "sources": json.dumps(list(recipe.sources)),
        "sample_rate": str(recipe.audio.sample_rate),
        "channels": str(recipe.audio.channels),
        "metadata": user,
    }


def save_model(
    path: str | os.PathLike[str],
    *,
    recipe: "Recipe",
    representation: "Representation",
    separator: "Separator",
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the separator's weights and the metadata to ``path`` atomically (temp file + rename).

    ``metadata`` is any JSON data (e.g. training metrics); the key ``channel_mode`` (``per-channel``
    or ``downmix``) sets how a mono model treats multichannel input by default.
    """
    path = Path(path)
    header = model_header(recipe, representation, separator, metadata)
    tensors: dict[str, torch.Tensor] = {}
    for name, value in separator.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise SepkitError(f"save_model: state entry '{name}' is a {type(value).__name__}; only tensors can be saved")
        # clone: no shared storage (safetensors refuses it); contiguous: channels-last weights too
        tensors[name] = value.detach().to("cpu").clone().contiguous()

    return write_bytes(path, save(tensors, metadata=header))


# -- loading ---------------------------------------------------------------------------------------


def read_header(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of a model file, checked to be a sepkit model (no tensor is read)."""
    path = Path(path)
    if not path.exists():
        raise SepkitError(f"{path}: no such model file")
    if path.is_dir():
        raise SepkitError(f"{path}: is a folder, not a model file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for every malformed file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SepkitError(
            f"{path}: not a safetensors model file ({reason}); sepkit reads model weights with "
            "safetensors only and never unpickles"
        ) from None
    if header.get("format") != FORMAT:
        raise SepkitError(f"{path}: a safetensors file, but not a sepkit model (no format={FORMAT!r} metadata)")
    try:
        version = int(header.get("format_version", ""))
    except ValueError:
        raise SepkitError(f"{path}: corrupt model file: format_version {header.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise SepkitError(
            f"{path}: model file format {version} is newer than this sepkit supports ({FORMAT_VERSION}); upgrade sepkit"
        )
    missing = [k for k in ("recipe", "components", "sources", "sample_rate", "channels") if k not in header]
    if missing:
        raise SepkitError(f"{path}: corrupt model file: metadata lacks {', '.join(missing)}")
    return header


def stored_json(header: dict[str, str], key: str, path: Path) -> Any:
    try:
        return json.loads(header[key]) if key in header else {}
    except json.JSONDecodeError as exc:
        raise SepkitError(f"{path}: corrupt model file: metadata '{key}' is not JSON ({exc})") from None


def _missing_component(kind: str, name: str, provenance: dict[str, Any]) -> SepkitError:
    distribution = provenance.get("distribution", "unknown")
    version = provenance.get("version", "unknown")
    try:
        installed = importlib.metadata.version(distribution)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        installed = None
    if installed is None:
        known = distribution not in ("unknown", "-") and not distribution.startswith("(")
        hint = f" (pip install '{distribution}=={version}')" if known and version not in ("unknown", "-") else ""
        return SepkitError(
            f"model needs {kind} '{name}' from distribution '{distribution}' {version}, which is not installed{hint}"
        )
    return SepkitError(
        f"model needs {kind} '{name}' from distribution '{distribution}' {version}; '{distribution}' "
        f"{installed} is installed but registers no {kind} '{name}'"
    )


def model_recipe(data: dict[str, Any], *, components: dict[str, Any] | None = None, where: str = "model") -> "Recipe":
    """A recipe for rebuilding a model: the schema checked, and the representation and separator
    validated by their installed plugins. Training-only components (critics, divergence, datasets)
    are not looked up, so a model loads without the plugins it was trained with.

    ``components`` (the provenance stored in a model file) lets the error for a missing plugin name
    the distribution and version that provided it.
    """
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise SepkitError(f"{where}: the stored recipe is not valid for this sepkit: {format_validation_error(exc)}") from None
    components = components if isinstance(components, dict) else {}
    for kind in MODEL_KINDS:
        spec = getattr(recipe, kind)
        provenance = components.get(kind) if isinstance(components.get(kind), dict) else {}
        if spec.type not in registry(kind):
            raise _missing_component(kind, spec.type, provenance)
        entry = registry(kind).get(spec.type)
        try:
            spec.bind(entry.cls)
        except ValidationError as exc:
            raise SepkitError(
                f"{where}: the stored {kind} '{spec.type}' settings do not fit the installed {entry.provider} "
                f"(saved with {provenance.get('distribution', '?')} {provenance.get('version', '?')}): "
                f"{format_validation_error(exc)}"
            ) from None
    return recipe


def check_header(header: dict[str, str], recipe: "Recipe", path: Path) -> None:
    """The header's sample_rate, channels and sources must say what the stored recipe says: a file
    whose two descriptions disagree was edited or damaged, and neither can be trusted."""
    stated = {"sample_rate": header.get("sample_rate"), "channels": header.get("channels")}
    expected = {"sample_rate": str(recipe.audio.sample_rate), "channels": str(recipe.audio.channels)}
    wrong = [f"{key} {stated[key]!r} (the recipe says {expected[key]})" for key in stated if stated[key] != expected[key]]
    sources = stored_json(header, "sources", path)
    if sources != list(recipe.sources):
        wrong.append(f"sources {sources!r} (the recipe says {list(recipe.sources)!r})")
    if wrong:
        raise SepkitError(f"{path}: inconsistent model file: its header says {'; '.join(wrong)}; refusing to load it")


def check_finite(state: dict[str, "torch.Tensor"], path: Path) -> None:
    """NaN or infinite weights (a diverged run, a damaged file) are refused when the model loads,
    not discovered as NaN stems."""
    bad = {name: int((~torch.isfinite(t)).sum()) for name, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()}
    if bad:
        count = sum(bad.values())
        names = ", ".join(list(bad)[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise SepkitError(
            f"{path}: the model file holds non-finite weights ({count} NaN or infinite value(s) in {names}); "
            "it cannot separate anything (was it saved from a diverged run?)"
        )
