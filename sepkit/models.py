"""Named models: what ``--model NAME`` and ``sepkit.load_model(NAME)`` find, and where the file is.

Packages register named models through the ``register_models(register)`` hook (see
:func:`sepkit.hookspecs.register_models`); sepkit's own default model is registered that way by
``sepkit_plugins.default_model``, so the core names no package. A model is a sepkit model file
shipped inside the package or published at a URL with its sha256 (downloaded once into
``<cache>/models``, see :mod:`sepkit.download`), or checkpoints in a foreign format with a
``convert`` function whose result is cached too.

:func:`resolve_model` turns what a user typed (a name, a path, a ``file://``/``https://`` URL) into
a local model file; :func:`load_model` loads it. Nothing here imports torch until a model is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import urllib.parse
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .download import DownloadError, Progress, cached_path, check_sha256, fetch, file_name, file_sha256, is_url, split_hash
from .errors import PluginError, SepkitError
from .io import write_with
from .plugins import NAME_PATTERN, PluginSystem, Provider, plugin_system
from .userdirs import cache_root

if TYPE_CHECKING:
    import torch

    from .model import Model

__all__ = [
    "DEFAULT_MODEL", "ModelFile", "NamedModel", "ModelRegistry", "ResolvedModel", "list_models",
    "load_model", "model_registry", "models_dir", "resolve_model",
]

#: The name ``sepkit separate`` and ``sepkit.separate`` use when no model is given.
DEFAULT_MODEL = "default"
NO_DEFAULT_MODEL = (
    "no default model is installed (no plugin registers a model named 'default'); train one with "
    "`sepkit run recipes/demo.toml` and pass --model runs/demo/<variant>/model.safetensors"
)

#: ``convert(files, target)``: foreign checkpoints ``{key: Path}`` -> a sepkit model file at ``target``.
Converter = Callable[[dict[str, Path], Path], None]


def models_dir() -> Path:
    """Where downloaded and converted models are kept: ``<sepkit cache>/models``."""
    return cache_root() / "models"


@dataclass(frozen=True)
class ModelFile:
    """One file of a named model: a local path or a URL, with its sha256 (required for http(s))."""

    key: str
    location: str
    sha256: str | None = None

    @property
    def remote(self) -> bool:
        """Fetched into the cache (an http(s) URL, or a ``file://`` URL with a hash)."""
        return is_url(self.location) and (self.sha256 is not None or not self.location.startswith("file:"))

    def local_path(self) -> Path | None:
        """Where the file is on this machine now (None: not downloaded yet)."""
        if not self.remote:
            return _url_path(self.location) if is_url(self.location) else Path(self.location)
        assert self.sha256 is not None
        path = cached_path(models_dir(), self.location, self.sha256)
        return path if path.is_file() else None

    def get(self, progress: Progress | None = None) -> Path:
        """The local file, fetched and verified first if needed."""
        if self.remote:
            assert self.sha256 is not None
            return fetch(self.location, models_dir(), sha256=self.sha256, progress=progress)
        path = self.local_path()
        assert path is not None
        if not path.is_file():
            raise SepkitError(f"{path}: no such model file")
        if self.sha256 is not None and file_sha256(path) != self.sha256:
            raise DownloadError(f"{path}: sha256 mismatch (expected {self.sha256}): the model file is corrupt")
        return path


@dataclass(frozen=True)
class NamedModel:
    """A registered model: its name, files, who provides it and what is known before downloading."""

    name: str
    files: tuple[ModelFile, ...]
    provider: Provider
    description: str = ""
    convert: Converter | None = None
    sample_rate: int | None = None
    sources: tuple[str, ...] | None = None
    size: int | None = None
    license: str | None = None

    @property
    def source_text(self) -> str:
        first = self.files[0].location
        return first if len(self.files) == 1 else f"{first} (+{len(self.files) - 1} more)"

    def converted_path(self) -> Path:
        """Where the result of ``convert`` is cached (keyed by the name and the inputs' hashes)."""
        digest = hashlib.sha256(self.name.encode())
        for item in self.files:
            digest.update(f"\0{item.key}\0{item.sha256 or _local_stamp(item)}".encode())
        return models_dir() / "converted" / f"{self.name}-{digest.hexdigest()[:16]}.safetensors"

    def local_path(self) -> Path | None:
        """The model file if it is on this machine already (packaged, cached or converted)."""
        if self.convert is not None:
            path = self.converted_path()
            return path if path.is_file() else None
        path = self.files[0].local_path()
        return path if path is not None and path.is_file() else None

    def status(self) -> str:
        """``local`` (a file shipped or given as a path), ``cached`` (downloaded), or ``remote``."""
        if self.local_path() is None:
            return "remote"
        return "cached" if any(f.remote for f in self.files) or self.convert is not None else "local"

    def get(self, progress: Progress | None = None) -> Path:
        """The sepkit model file: fetched, verified and converted first where needed."""
        if self.convert is None:
            return self.files[0].get(progress)
        target = self.converted_path()
        if target.is_file():
            return target
        inputs = {item.key: item.get(progress) for item in self.files}
        convert = self.convert

        def write(temporary: Path) -> None:
            try:
                convert(inputs, temporary)
            except SepkitError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"{self.provider} cannot convert model '{self.name}': {type(exc).__name__}: {exc}"
                ) from exc
            if not temporary.is_file() or temporary.stat().st_size == 0:
                raise PluginError(f"{self.provider}: converting model '{self.name}' wrote no file")

        return write_with(target, write)


def _local_stamp(item: ModelFile) -> str:
    path = item.local_path()
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        stat = None
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}" if stat else str(path)


def _url_path(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))


class ModelRegistry:
    """Every named model, by name (built once per plugin system from the ``register_models`` hook)."""

    def __init__(self) -> None:
        self._entries: dict[str, NamedModel] = {}

    def register_for(self, provider: Provider) -> Callable[..., None]:
        """The ``register`` callback handed to one plugin's ``register_models``."""

        def register(
            name: str,
            source: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]],
            *,
            sha256: str | Mapping[str, str] | None = None,
            description: str = "",
            convert: Converter | None = None,
            sample_rate: int | None = None,
            sources: Sequence[str] | None = None,
            size: int | None = None,
            license: str | None = None,
        ) -> None:
            self.add(NamedModel(
                name=_check_name(name, provider),
                files=_files(name, source, sha256, convert, provider),
                provider=provider,
                description=str(description),
                convert=convert,
                sample_rate=int(sample_rate) if sample_rate else None,
                sources=tuple(sources) if sources else None,
                size=int(size) if size else None,
                license=license,
            ))

        return register

    def add(self, model: NamedModel) -> None:
        if model.name in self._entries:
            first = self._entries[model.name].provider
            raise PluginError(f"model '{model.name}' is registered twice: by {first} and by {model.provider}")
        self._entries[model.name] = model

    def get(self, name: str) -> NamedModel:
        try:
            return self._entries[name]
        except KeyError:
            raise SepkitError(f"unknown model '{name}'; named models: {', '.join(self.names()) or '(none)'}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[NamedModel]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def _check_name(name: object, provider: Provider) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PluginError(
            f"{provider} registers model {name!r}: names are lowercase words joined by hyphens (e.g. 'umxhq')"
        )
    return name


def _files(
    name: str, source: Any, sha256: Any, convert: Any, provider: Provider
) -> tuple[ModelFile, ...]:
    where = f"{provider} registers model '{name}'"
    if convert is not None and not callable(convert):
        raise PluginError(f"{where}: convert must be a function (files, target)")
    if isinstance(source, Mapping):
        if not source:
            raise PluginError(f"{where}: an empty mapping of files")
        if convert is None:
            raise PluginError(f"{where}: a model of several files needs convert= to make one sepkit model file")
        if sha256 is not None and not isinstance(sha256, Mapping):
            raise PluginError(f"{where}: several files need sha256 as a mapping with the same keys")
        hashes = dict(sha256 or {})
        extra = set(hashes) - set(source)
        if extra:
            raise PluginError(f"{where}: sha256 for unknown file(s) {', '.join(sorted(extra))}")
        items = [(str(k), v, hashes.get(k)) for k, v in source.items()]
    else:
        if isinstance(sha256, Mapping):
            raise PluginError(f"{where}: one file needs sha256 as a string")
        items = [(None, source, sha256)]
    files = []
    for key, location, digest in items:
        if not isinstance(location, (str, os.PathLike)):
            raise PluginError(f"{where}: the source {location!r} is neither a path nor a URL")
        location = str(location) if is_url(str(location)) else os.fspath(location)
        scheme = urllib.parse.urlsplit(location).scheme if is_url(location) else ""
        if digest is None and scheme in ("http", "https"):
            raise PluginError(f"{where}: {location} needs its sha256 (sepkit verifies every download)")
        try:
            digest = None if digest is None else check_sha256(str(digest), f"{where}: {location}")
        except DownloadError as exc:
            raise PluginError(str(exc)) from None
        files.append(ModelFile(key or file_name(location), location, digest))
    return tuple(files)


_registries: "weakref.WeakKeyDictionary[PluginSystem, ModelRegistry]" = weakref.WeakKeyDictionary()


def model_registry() -> ModelRegistry:
    """The named models of the current plugin system (built on first use)."""
    system = plugin_system()
    registry = _registries.get(system)
    if registry is None:
        registry = ModelRegistry()
        system.call_each("register_models", registry.register_for)
        _registries[system] = registry
    return registry


# -- resolving what the user typed --------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedModel:
    """A local sepkit model file and how it was asked for (``name`` for a registered model)."""

    path: Path
    label: str
    name: str | None = None
    info: NamedModel | None = field(default=None, compare=False)


def find_model(model: str | os.PathLike[str] | None = None) -> NamedModel | ModelFile:
    """What ``model`` refers to, without fetching anything: a registered name, a URL or a path.

    A bare word that is registered is a name (even if a file of that name exists: write ``./NAME``
    for the file); ``URL#sha256=HEX`` pins a URL's hash.
    """
    if model is None:
        registry = model_registry()
        if DEFAULT_MODEL not in registry:
            raise SepkitError(NO_DEFAULT_MODEL)
        return registry.get(DEFAULT_MODEL)
    text = os.fspath(model)
    if not isinstance(model, os.PathLike) and is_url(text):
        url, digest = split_hash(text)
        if digest is None and not url.startswith("file:"):
            raise DownloadError(
                f"{url}: sepkit verifies every download; give the file's sha256 as {url}#sha256=<64 hex digits>"
            )
        return ModelFile(file_name(url), url, digest)
    if not isinstance(model, os.PathLike) and NAME_PATTERN.match(text):
        registry = model_registry()
        if text in registry:
            return registry.get(text)
        if not Path(text).exists():
            raise SepkitError(
                f"unknown model '{text}': no model of that name is registered (named models: "
                f"{', '.join(registry.names()) or '(none)'}) and there is no such file"
            )
    return ModelFile(Path(text).name, text)


def resolve_model(model: str | os.PathLike[str] | None = None, *, progress: Progress | None = None) -> ResolvedModel:
    """A local model file for a name, a path or a URL (``None``: the default model), downloading,
    verifying and converting it first if needed. Errors are one-line :class:`SepkitError`."""
    found = find_model(model)
    if isinstance(found, NamedModel):
        return ResolvedModel(found.get(progress), f"{found.name}", found.name, found)
    path = found.get(progress)
    return ResolvedModel(path, found.location if found.remote else str(path))


def load_model(
    model: "str | os.PathLike[str] | Model | None" = DEFAULT_MODEL,
    *,
    device: "str | torch.device" = "cpu",
    progress: Progress | None = None,
) -> "Model":
    """Load a model by name (``sepkit models`` lists them), path or URL (``URL#sha256=HEX``).

    ``device``: ``cpu``, ``cuda``, ``mps`` or ``auto``. A name's file is downloaded and verified on
    first use (``$SEPKIT_CACHE_DIR/models``). A :class:`~sepkit.model.Model` is returned as it is.
    """
    from .model import Model, load_model as load_file

    if isinstance(model, Model):
        return model
    return load_file(resolve_model(model, progress=progress).path, device=device)


# -- listing ------------------------------------------------------------------------------------


def peek_header(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file, read without safetensors or torch (fast listing)."""
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100_000_000:
                return {}
            header = json.loads(handle.read(length))
    except (OSError, struct.error, ValueError):
        return {}
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def describe(model: NamedModel) -> dict[str, Any]:
    """What ``sepkit models`` shows of one model (reads the header of a local file, downloads nothing)."""
    path = model.local_path()
    sample_rate, sources, size = model.sample_rate, list(model.sources or []) or None, model.size
    if path is not None:
        header = peek_header(path)
        try:
            sample_rate = int(header["sample_rate"])
            sources = json.loads(header["sources"])
        except (KeyError, ValueError):
            pass
        size = path.stat().st_size
    return {
        "name": model.name,
        "description": model.description,
        "source": model.source_text,
        "sample_rate": sample_rate,
        "sources": sources,
        "size_bytes": size,
        "provider": str(model.provider),
        "distribution": model.provider.distribution,
        "status": model.status(),
        "path": None if path is None else str(path),
        "license": model.license,
    }


def list_models() -> list[dict[str, Any]]:
    """Every named model: name, description, source, sample rate, sources, size, provider, status
    (``local``, ``cached`` or ``remote``: not downloaded yet)."""
    return [describe(model) for model in model_registry().entries()]
