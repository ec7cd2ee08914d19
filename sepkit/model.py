"""Model files: a separator's weights in safetensors, with what is needed to rebuild it as metadata.

A model file is a plain safetensors file: the separator's ``state_dict`` plus string metadata (the
resolved recipe as JSON, the registered name and providing distribution of each component, sources,
sample rate, channels, format version and the caller's metadata such as training metrics). Loading
never unpickles anything: the components are rebuilt through the plugin registries from the stored
recipe and the weights are read with safetensors. See docs/model-files.md.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.torch import load_file, save

from . import __version__
from .build import build_representation, build_separator
from .device import resolve_device
from .errors import PluginError, SepkitError
from .io import write_bytes
from .plugins import registry
from .recipe.load import format_validation_error
from .recipe.resolve import resolve
from .recipe.schema import Recipe
from .separation.defaults import DEFAULT_PRECISION
from .separation.engine import BLOCK_SECONDS, DEFAULT_CHUNK_SECONDS, EngineOptions, PipelineSpec, output_names, run_pipeline
from .separation.windows import DEFAULT_OVERLAP

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


def _json(header: dict[str, str], key: str, path: Path) -> Any:
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
    sources = _json(header, "sources", path)
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


def load_model(path: str | os.PathLike[str], *, device: "str | torch.device" = "cpu") -> "Model":
    """Read a model file and rebuild its representation and separator through the registries.

    Every problem (missing file, not safetensors, not a sepkit model, a component whose plugin is
    not installed, weights that do not fit) is a one-line :class:`SepkitError` naming the file.
    """
    path = Path(path)
    target = resolve_device(device)  # an unavailable device fails before any work
    header = read_header(path)
    components = _json(header, "components", path)
    components = components if isinstance(components, dict) else {}
    recipe = model_recipe(_json(header, "recipe", path), components=components, where=str(path))
    check_header(header, recipe, path)
    metadata = _json(header, "metadata", path)
    try:
        representation = build_representation(recipe)
        separator = build_separator(recipe, representation)
    except (PluginError, SepkitError) as exc:
        raise SepkitError(f"{path}: cannot rebuild the model: {exc}") from None
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise SepkitError(f"{path}: corrupt model file: cannot read the weights: {exc}") from None
    check_finite(state, path)
    try:
        separator.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise SepkitError(
            f"{path}: the weights do not fit separator '{recipe.separator.type}': {detail[:300]}"
        ) from None
    separator.eval()
    model = Model(
        recipe=recipe,
        representation=representation,
        separator=separator,
        components=components,
        metadata=metadata if isinstance(metadata, dict) else {},
        path=path,
    )
    return model.to(target)


# -- the model -------------------------------------------------------------------------------------


class Model:
    """A loaded separator with its representation: ``separate(waveform, sample_rate)`` -> stems.

    ``metadata`` is the caller's metadata stored at save time (training metrics...); ``components``
    names each component and the distribution that provided it; ``recipe`` is the resolved recipe.
    """
    def __init__(
        self,
        *,
        recipe: "Recipe",
        representation: "Representation",
        separator: "Separator",
        components: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> None:
        self.recipe = recipe
        self.representation = representation
        self.separator = separator
        self.components = dict(components or {})
        self.metadata = dict(metadata or {})
        self.path = path

    @property
    def sources(self) -> list[str]:
        return list(self.recipe.sources)

    @property
    def sample_rate(self) -> int:
        return int(self.recipe.audio.sample_rate)

    @property
    def channels(self) -> int:
        return int(self.recipe.audio.channels)

    @property
    def channel_mode(self) -> str:
        """How a mono model treats multichannel input by default: ``per-channel`` or ``downmix``."""
        mode = self.metadata.get("channel_mode", "per-channel")
        return mode if mode in ("per-channel", "downmix") else "per-channel"

    @property
    def device(self) -> "torch.device":
        from .separation.engine import _device_of

        return _device_of(self.separator)

    def to(self, device: "str | torch.device") -> "Model":
        """Move the separator to ``device`` (``auto`` picks CUDA, MPS or CPU); returns self.

        On the CPU the separator's weights are stored channels-last, which makes 2-D convolutions
        about twice as fast there; results are unchanged up to float rounding.
        """
        device = resolve_device(device)
        self.separator.to(device)
        if device.type == "cpu":
            self.separator.to(memory_format=torch.channels_last)
        else:
            self.separator.to(memory_format=torch.contiguous_format)
        return self

    def options(
        self,
        *,
        overlap: float | None = None,
        batch_size: int | None = None,
        wiener: bool = False,
        channel_mode: str | None = None,
        chunk_seconds: float | None = None,
        precision: str | None = None,
        **after: Any,
    ) -> "EngineOptions":
        """Engine options with this model's defaults filled in (batch size from the recipe's evaluation).

        ``after``: the other fields of :class:`~sepkit.separation.engine.EngineOptions`
        (``high_band``, ``two_stems``, ``silence_db``, ``shifts``, ``seed``).
        """
        known = {f.name for f in dataclasses.fields(EngineOptions)}
        unknown = sorted(set(after) - known)
        if unknown:
            raise SepkitError(f"unknown separation option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return EngineOptions(
            overlap=DEFAULT_OVERLAP if overlap is None else overlap,
            batch_size=batch_size or self.recipe.evaluation.batch_size,
            wiener=wiener,
            channel_mode=channel_mode or self.channel_mode,  # type: ignore[arg-type]
            chunk_seconds=chunk_seconds or DEFAULT_CHUNK_SECONDS,
            precision=precision or DEFAULT_PRECISION,
            **after,
        )

    def pipeline_spec(self) -> "PipelineSpec":

        return PipelineSpec(
            representation=self.representation,
            separator=self.separator,
            sources=tuple(self.sources),
            sample_rate=self.sample_rate,
            channels=self.channels,
            clip=bool(self.recipe.audio.clip),
            channel_mode=self.channel_mode,
        )

    def separate(
        self,
        waveform: "np.ndarray | torch.Tensor",
        sample_rate: int,
        *,
        overlap: float | None = None,
        batch_size: int | None = None,
        wiener: bool = False,
        channel_mode: str | None = None,
        chunk_seconds: float | None = None,
        precision: str | None = None,
        **after: Any,
    ) -> dict[str, "np.ndarray"]:
        """``[C, L]`` (or ``[L]``) audio at ``sample_rate`` -> ``{source: float32 [C, L]}`` (or ``[L]``)
        at the input's own rate and channel count.

        ``overlap`` defaults to :data:`~sepkit.separation.windows.DEFAULT_OVERLAP` (0 gives the
        paper's non-overlapping windows); the other options are those of
        :class:`~sepkit.separation.engine.EngineOptions`. This is the model's own estimate
        (``high_band="drop"``); :func:`sepkit.separate` returns stems that add up to the input.
        """
        if isinstance(waveform, torch.Tensor):
            waveform = waveform.detach().to("cpu").numpy()
        audio = np.asarray(waveform)
        if audio.ndim not in (1, 2):
            raise SepkitError(f"separate expects a waveform [channels, samples] or [samples], got shape {list(audio.shape)}")
        if not np.issubdtype(audio.dtype, np.floating):
            raise SepkitError(
                f"separate expects floating-point samples in [-1, 1], got {audio.dtype} "
                "(convert integer PCM first, e.g. x / 32768 for int16)"
            )
        if int(sample_rate) <= 0:
            raise SepkitError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
        frames_first = audio.reshape(1, -1).T if audio.ndim == 1 else audio.T  # [L, C] view
        length, channels = frames_first.shape
        if length == 0 or channels == 0:
            raise SepkitError(f"separate: the waveform {list(audio.shape)} has no samples")
        block = max(1, int(BLOCK_SECONDS * sample_rate))
        options = self.options(
            overlap=overlap, batch_size=batch_size, wiener=wiener, channel_mode=channel_mode,
            chunk_seconds=chunk_seconds, precision=precision, **after,
        )
        names = output_names(self.sources, options)
        outputs = {s: np.empty((channels, length), dtype=np.float32) for s in names}
        position = 0

        def sink(stems: np.ndarray) -> None:
            nonlocal position
            n = stems.shape[-1]
            for source, stem in zip(names, stems):
                outputs[source][:, position : position + n] = stem
            position += n

        run_pipeline(
            self.pipeline_spec(),
            (frames_first[i : i + block] for i in range(0, length, block)),
            sample_rate=int(sample_rate),
            channels=channels,
            sink=sink,
            options=options,
        )
        if audio.ndim == 1:
            return {s: v[0] for s, v in outputs.items()}
        return outputs

    def __repr__(self) -> str:
        return (
            f"Model({self.recipe.representation.type} -> {self.recipe.separator.type}, sources={self.sources}, "
            f"{self.sample_rate} Hz, {self.channels} channel(s), device={self.device})"
        )
