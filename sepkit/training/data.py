"""Everything the trainer draws from: one excerpt sampler per role, and the validation tracks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..build import build_datasets
from ..errors import SepkitError
from ..recipe.schema import Recipe
from ..representation import Representation
from ..separator import Window

#: Seed offsets, so that each role's sampler draws an independent stream from one recipe seed.
SEED_OFFSETS = {"paired": 1, "mixtures": 2, "solo": 3}


@dataclass
class ValidationTrack:
    name: str
    subset: str
    mixture: torch.Tensor  # [C, F, T] features
    targets: torch.Tensor  # [N, C, F, T] features
    context: Any  # representation context of the mixture, for decoding
    references: torch.Tensor  # [N, C, L] waveforms
    length: int


@dataclass
class TrainingData:
    paired: Any | None = None  # ExcerptSampler
    mixtures: Any | None = None
    solo: dict[str, Any] = field(default_factory=dict)
    validation: list[ValidationTrack] = field(default_factory=list)

    def samplers(self) -> dict[str, Any]:
        out = {"paired": self.paired, "mixtures": self.mixtures}
        out.update({f"solo.{k}": v for k, v in self.solo.items()})
        return {k: v for k, v in out.items() if v is not None}


def _load(recipe: Recipe, role: str, source: str | None = None, cache_dir: Path | None = None, progress: bool = False):
    """Decode a role's tracks (once per run, cached on disk); an empty role is an error."""
    from ..data import load_role

    result = load_role(recipe, role, source, cache_dir=cache_dir, progress=progress)  # type: ignore[arg-type]
    for path, reason in result.failed:
        print(f"warning: skipped {path}: {reason}")
    if not result.tracks:
        where = f"data.{role}" + (f".{source}" if source else "")
        raise SepkitError(f"{where}: no usable tracks")
    return result.tracks


def prepare_data(
    recipe: Recipe,
    representation: Representation,
    window: Window,
    device: torch.device,
    *,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> TrainingData:
    """Decode, resample and encode every file once; keep features on the device."""
    from ..data.sampler import ExcerptSampler

    seed = recipe.training.seed
    loudness = recipe.training.loudness_augmentation
    sources = list(recipe.sources)
    data = TrainingData()

    def sampler(tracks, role_seed: int, augment: bool):
        return ExcerptSampler.from_loaded(
            tracks, representation, window, device=device, seed=role_seed, loudness=loudness if augment else None
        )

    if recipe.data.paired:
        tracks = _load(recipe, "paired", cache_dir=cache_dir, progress=progress)
        data.paired = sampler(tracks, seed * 1000 + SEED_OFFSETS["paired"], augment=False)
    if recipe.uses_unpaired:
        tracks = _load(recipe, "mixtures", cache_dir=cache_dir, progress=progress)
        data.mixtures = sampler(tracks, seed * 1000 + SEED_OFFSETS["mixtures"], augment=True)
        for source in recipe.critics:
            tracks = _load(recipe, "solo", source, cache_dir=cache_dir, progress=progress)
            offset = SEED_OFFSETS["solo"] + 10 * (sources.index(source) + 1)
            data.solo[source] = sampler(tracks, seed * 1000 + offset, augment=True)
    if recipe.data.validation:
        for track in _load(recipe, "validation", cache_dir=cache_dir, progress=progress):
            audio = torch.as_tensor(track.audio, device=device)
            features, context = representation.encode(audio[:1])  # [1, C, F, T]
            targets, _ = representation.encode(audio[1:])  # [N, C, F, T]
            data.validation.append(
                ValidationTrack(track.name, track.subset, features[0], targets, context, audio[1:], audio.shape[-1])
            )
    return data
