"""Everything the trainer draws from: one excerpt sampler per role, and the validation tracks."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data import load_role
from ..data.sampler import ExcerptSampler
from ..data.streaming import StreamingSampler
from ..errors import SepkitError
from ..recipe.schema import Recipe
from ..representation import Representation
from ..separator import Window
from .residency import choose_residency, feature_bytes, human_bytes, memory_budget

#: Seed offsets, so that each role's sampler draws an independent stream from one recipe seed.
SEED_OFFSETS = {"paired": 1, "mixtures": 2, "solo": 3}


def rank_seed(seed: int, rank: int) -> int:
    """Process ``rank``'s seed derived from ``seed``: ``seed`` itself on rank 0 (a one-process run
    draws exactly what it always drew), a hash of both on the others (independent streams)."""
    if rank == 0:
        return int(seed)
    digest = hashlib.sha256(f"sepkit-rank-seed/{int(seed)}/{int(rank)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


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
    #: Each sampler's seed (by the keys of :meth:`samplers`) and residency ("features" or "stream").
    seeds: dict[str, int] = field(default_factory=dict)
    residency: dict[str, str] = field(default_factory=dict)

    def samplers(self) -> dict[str, Any]:
        out = {"paired": self.paired, "mixtures": self.mixtures}
        out.update({f"solo.{k}": v for k, v in self.solo.items()})
        return {k: v for k, v in out.items() if v is not None}


def _load(recipe: Recipe, role: str, source: str | None = None, cache_dir: Path | None = None, progress: bool = False,
          lazy: bool = False):
    """Decode a role's tracks (once per run, cached on disk); an empty role is an error."""
    result = load_role(recipe, role, source, cache_dir=cache_dir, progress=progress, lazy=lazy)  # type: ignore[arg-type]
    for path, reason in result.failed:
        print(f"warning: skipped {path}: {reason}")
    if not result.tracks:
        where = f"data.{role}" + (f".{source}" if source else "")
        raise SepkitError(f"{where}: no usable tracks")
    return result.tracks


#: A pool of tracks for one sampler: the tracks, its seed offset, whether loudness augmentation applies.
Pool = tuple[list[Any], int, bool]


def prepare_data(
    recipe: Recipe,
    representation: Representation,
    window: Window,
    device: torch.device,
    *,
    cache_dir: Path | None = None,
    progress: bool = False,
    rank: int = 0,
    validation: bool = True,
) -> TrainingData:
    """One sampler per role, resident or streaming as ``data.residency`` decides (docs/scaling.md),
    and the validation tracks encoded on the device (``validation=False``: none, for processes
    other than the first of a distributed run). ``rank`` derives the samplers' seeds."""
    data = TrainingData()
    pools = _load_pools(recipe, cache_dir, progress)
    sizes = {name: feature_bytes([t.audio.shape for t in tracks], representation, window) for name, (tracks, _, _) in pools.items()}
    budget = memory_budget(recipe.data, device) if recipe.data.residency == "auto" else 0
    data.residency = choose_residency(recipe.data.residency, sizes, budget)
    _add_samplers(data, recipe, pools, representation, window, device, rank)
    if progress:
        _report_streamed(recipe, data.residency, sizes, budget)
    if recipe.data.validation and validation:
        data.validation = _validation_tracks(recipe, representation, device, cache_dir, progress)
    return data


def _load_pools(recipe: Recipe, cache_dir: Path | None, progress: bool) -> dict[str, Pool]:
    """Every role's tracks, loaded lazily (decoded into the audio cache, nothing assembled in
    memory), so that their features' size is known before anything is encoded."""
    sources = list(recipe.sources)
    pools: dict[str, Pool] = {}
    if recipe.data.paired:
        pools["paired"] = (_load(recipe, "paired", cache_dir=cache_dir, progress=progress, lazy=True), SEED_OFFSETS["paired"], False)
    if recipe.uses_unpaired:
        pools["mixtures"] = (_load(recipe, "mixtures", cache_dir=cache_dir, progress=progress, lazy=True), SEED_OFFSETS["mixtures"], True)
        for source in recipe.critics:
            tracks = _load(recipe, "solo", source, cache_dir=cache_dir, progress=progress, lazy=True)
            pools[f"solo.{source}"] = (tracks, SEED_OFFSETS["solo"] + 10 * (sources.index(source) + 1), True)
    return pools


def _add_samplers(
    data: TrainingData, recipe: Recipe, pools: dict[str, Pool], representation: Representation, window: Window,
    device: torch.device, rank: int,
) -> None:
    """One sampler per pool, of the kind its residency says, with its rank-derived seed."""
    loudness = recipe.training.loudness_augmentation
    for name, (tracks, offset, augment) in pools.items():
        data.seeds[name] = rank_seed(recipe.training.seed * 1000 + offset, rank)
        kind = StreamingSampler if data.residency[name] == "stream" else ExcerptSampler
        sampler = kind.from_loaded(
            tracks, representation, window, device=device, seed=data.seeds[name], loudness=loudness if augment else None
        )
        if name == "paired":
            data.paired = sampler
        elif name == "mixtures":
            data.mixtures = sampler
        else:
            data.solo[name.split(".", 1)[1]] = sampler


def _report_streamed(recipe: Recipe, residency: dict[str, str], sizes: dict[str, int], budget: int) -> None:
    """One line saying which pools stream from the audio cache and why (nothing when none does)."""
    streamed = [name for name, kind in residency.items() if kind == "stream"]
    if not streamed:
        return
    why = (f"{human_bytes(sum(sizes[n] for n in streamed))} of features beyond data.memory_budget "
           f"{human_bytes(budget)}" if recipe.data.residency == "auto" else 'data.residency = "stream"')
    print(f"data: {', '.join(streamed)} streamed from the audio cache ({why}); resident: "
          f"{', '.join(n for n in residency if n not in streamed) or 'none'}", file=sys.stderr, flush=True)


def _validation_tracks(
    recipe: Recipe, representation: Representation, device: torch.device, cache_dir: Path | None, progress: bool
) -> list[ValidationTrack]:
    """The validation tracks encoded on the device: mixture features, targets, reference waveforms."""
    tracks = []
    for track in _load(recipe, "validation", cache_dir=cache_dir, progress=progress):
        audio = torch.as_tensor(track.audio, device=device)
        features, context = representation.encode(audio[:1])  # [1, C, F, T]
        targets, _ = representation.encode(audio[1:])  # [N, C, F, T]
        tracks.append(ValidationTrack(track.name, track.subset, features[0], targets, context, audio[1:], audio.shape[-1]))
    return tracks
