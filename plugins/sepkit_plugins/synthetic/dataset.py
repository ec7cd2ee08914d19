"""The ``synthetic`` dataset: generated songs written once to a cache folder, listed as Tracks.

Why files: the Dataset interface lists tracks that point at files, and the loader decodes them like
any other data. The files of one configuration live in a folder named by a hash of everything that
shapes the audio (split, tracks, seconds, sample rate, channels, seed, domain, generator version), so that the
splits of a recipe can share one cache folder and a changed generator never reuses stale audio.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from sepkit.audio import write_wav
from sepkit.component import ConfigValues
from sepkit.dataset import MIXTURE, Dataset, DatasetConfig, Role, StemFile, Track
from sepkit.errors import SepkitError
from sepkit.io import write_bytes

from .generator import GENERATOR_VERSION, INSTRUMENTS, PCM_SCALE, SOURCES, generate_item

PAIRED_SPLITS = ("train", "validation", "test")
#: Items per split when ``tracks`` is not set (16 in every solo pool).
DEFAULT_TRACKS = {"train": 24, "validation": 6, "test": 6, "mixtures": 16, **{source: 16 for source in SOURCES}}
#: The split a role reads when ``split`` is not set (``solo``: the pool of its source).
ROLE_SPLITS: dict[str, str] = {"paired": "train", "validation": "validation", "test": "test", "mixtures": "mixtures"}
CACHE_ENV = "SEPKIT_CACHE_DIR"
MANIFEST = "manifest.json"

Split = Literal["train", "validation", "test", "mixtures", "vocals", "accompaniment", "drums", "bass", "other"]


class SyntheticConfig(DatasetConfig):
    name: str = Field("synthetic", description="Subset label used in result tables.")
    split: Split | None = Field(
        None,
        description=(
            "Which items: train/validation/test hold the mixture and every source; mixtures and the "
            "source pools (vocals, accompaniment, drums, bass, other) are independent unpaired pools "
            "holding only that stem. Default: from the role (paired: train, validation, test, "
            "mixtures; solo: the source's pool)."
        ),
    )
    tracks: PositiveInt | None = Field(
        None, le=10_000, description="Items in the split (default 24 train, 6 validation, 6 test, 16 per pool)."
    )
    seconds: float = Field(8.0, ge=1.0, le=120.0, description="Duration of every item, in seconds.")
    sample_rate: int = Field(8192, ge=4000, le=48000, description="Sample rate of the generated files (Hz).")
    channels: Literal[1, 2] = Field(
        1, description="1: mono files; 2: stereo, every source panned and widened as drawn per item."
    )
    seed: NonNegativeInt = Field(0, description="Base seed; each item's generator is seeded from (seed, domain, split, index).")
    domain: Literal["a", "b"] = Field(
        "a", description="Musical style: 'a' low voice, slower, sustained pads; 'b' higher voice, faster, plucked chords."
    )
    cache_dir: str | None = Field(
        None,
        description=(
            "Folder for the generated files (a sub-folder per configuration). Default: "
            "$SEPKIT_CACHE_DIR/synthetic, else the user cache folder's sepkit/synthetic."
        ),
    )


class SyntheticDataset(Dataset):
    """Procedurally generated songs with ``drums``, ``bass``, ``other``, ``vocals`` and ``accompaniment``
    (the sum of the first three) stems, for demos and tests."""

    Config = SyntheticConfig
    config: SyntheticConfig

    def __init__(self, config: ConfigValues, *, role: Role, sources: list[str]) -> None:
        super().__init__(config, role=role, sources=sources)
        unknown = [s for s in self.sources if s not in SOURCES]
        if unknown or not self.sources:
            raise SepkitError(
                f"synthetic dataset '{self.name}' has sources {', '.join(SOURCES)}; "
                f"the recipe asks for {', '.join(map(repr, unknown or self.sources)) or 'none'}"
            )
        overlapping = [s for s in INSTRUMENTS if s in self.sources]
        if "accompaniment" in self.sources and overlapping:
            raise SepkitError(
                f"synthetic dataset '{self.name}': accompaniment is the sum of drums, bass and other, so it "
                f"cannot be a source beside {', '.join(overlapping)}; use accompaniment and vocals, or "
                "drums, bass, other and vocals"
            )
        self.split: str = self._resolve_split()
        self.track_count = self.config.tracks or DEFAULT_TRACKS[self.split]
        self._tracks: list[Track] | None = None

    def _resolve_split(self) -> str:
        split = self.config.split
        if self.role == "solo":
            source = self.sources[0]
            split = split or source
            if split not in (*PAIRED_SPLITS, source):
                raise SepkitError(
                    f"synthetic dataset '{self.name}': split '{split}' holds no {source} solo recordings; "
                    f"use split '{source}' (or one of {', '.join(PAIRED_SPLITS)})"
                )
            return split
        split = split or ROLE_SPLITS[self.role]
        allowed = (*PAIRED_SPLITS, "mixtures") if self.role == "mixtures" else PAIRED_SPLITS
        if split not in allowed:
            raise SepkitError(
                f"synthetic dataset '{self.name}': split '{split}' cannot serve the {self.role} role "
                f"(it needs {'mixtures' if self.role == 'mixtures' else 'mixtures and every source'}); "
                f"use one of {', '.join(allowed)}"
            )
        return split

    @property
    def parameters(self) -> dict[str, Any]:
        """Everything that shapes the audio: the cache key."""
        return {
            "generator_version": GENERATOR_VERSION,
            "split": self.split,
            "tracks": self.track_count,
            "seconds": self.config.seconds,
            "sample_rate": self.config.sample_rate,
            "channels": self.config.channels,
            "seed": self.config.seed,
            "domain": self.config.domain,
        }

    @property
    def folder(self) -> Path:
        """Where this configuration's files live (see the module docstring)."""
        digest = hashlib.sha256(json.dumps(self.parameters, sort_keys=True).encode()).hexdigest()[:16]
        label = f"{self.config.domain}-{self.split}-{digest}"
        if self.config.cache_dir:
            return Path(self.config.cache_dir).expanduser() / label
        return default_cache_root() / "synthetic" / label

    def tracks(self) -> list[Track]:
        """Items 0..tracks-1 of the split in index order, generated on first use."""
        if self._tracks is None:
            manifest = ensure_generated(self.folder, self.parameters)
            self._tracks = [self._track(entry) for entry in manifest["tracks"]]
        return list(self._tracks)

    def _track(self, entry: dict[str, Any]) -> Track:
        if self.role == "mixtures":
            wanted = [MIXTURE]
        elif self.role == "solo":
            wanted = list(self.sources)
        else:
            wanted = [MIXTURE, *self.sources]
        stems = {stem: (StemFile(self.folder / entry["files"][stem]["path"]),) for stem in wanted}
        return Track(name=entry["name"], stems=stems, subset=self.name, metadata=dict(entry["metadata"]))


def default_cache_root() -> Path:
    """``$SEPKIT_CACHE_DIR``, else the platform's user cache folder for sepkit."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    try:
        import platformdirs
    except ImportError:
        return Path.home() / ".cache" / "sepkit"
    return Path(platformdirs.user_cache_dir("sepkit"))


def stems_of_split(split: str) -> tuple[str, ...]:
    """The files a split stores: paired splits everything, an unpaired pool its own stem."""
    if split in PAIRED_SPLITS:
        return (MIXTURE, *SOURCES)
    return (MIXTURE,) if split == "mixtures" else (split,)


def ensure_generated(folder: Path, parameters: dict[str, Any]) -> dict[str, Any]:
    """Generate the split into ``folder`` unless a complete manifest for ``parameters`` is there.

    The manifest is written last, so its presence (with matching parameters and file sizes) means
    every file is complete; files are written to temporary names and renamed, so a crash or a
    concurrent process never leaves a half-written file under a final name.
    """
    existing = _read_manifest(folder, parameters)
    if existing is not None:
        return existing
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SepkitError(f"cannot create the synthetic data folder {folder}: {exc.strerror or exc}") from None
    split = parameters["split"]
    entries = []
    for index in range(parameters["tracks"]):
        item = generate_item(
            seed=parameters["seed"],
            domain=parameters["domain"],
            split=split,
            index=index,
            seconds=parameters["seconds"],
            sample_rate=parameters["sample_rate"],
            channels=parameters["channels"],
        )
        name = f"{parameters['domain']}-{split}-{index:04d}"
        files = {}
        for stem in stems_of_split(split):
            relative = f"{name}/{stem}.wav"
            _write_pcm16(folder / relative, getattr(item, stem), parameters["sample_rate"])
            files[stem] = {"path": relative, "bytes": (folder / relative).stat().st_size}
        entries.append({"name": name, "files": files, "metadata": item.metadata})
    manifest = {"parameters": parameters, "tracks": entries}
    write_bytes(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return manifest


def _read_manifest(folder: Path, parameters: dict[str, Any]) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("parameters") != parameters:
        return None
    tracks = manifest.get("tracks")
    if not isinstance(tracks, list) or len(tracks) != parameters["tracks"]:
        return None
    for entry in tracks:
        for record in entry.get("files", {}).values():
            path = folder / record["path"]
            if not path.is_file() or path.stat().st_size != record["bytes"]:
                return None
    return manifest


def _write_pcm16(path: Path, samples: Any, sample_rate: int) -> None:
    """Write samples (``[L]`` or ``[C, L]``) that lie on the 16-bit grid as exact 16-bit integers."""
    import numpy as np

    pcm = np.round(np.asarray(samples, dtype=np.float64).T * PCM_SCALE)
    if pcm.min(initial=0) < -32768 or pcm.max(initial=0) > 32767:
        raise SepkitError(f"synthetic sample out of the 16-bit range while writing {path}")
    write_wav(path, pcm.astype(np.int16), sample_rate, subtype="PCM_16")

