"""The evaluation run: every test track separated and scored, ``DIR/<track>.json`` and ``DIR/summary.json``.

One path for ``sepkit evaluate`` and ``sepkit run`` (:func:`evaluate_recipe`); :func:`evaluate`
is the same run for tracks already in memory and for models that are not model files. The parts:

* :class:`~sepkit.evaluation.job.EvaluationJob`: one track separated, lined up and scored;
* :class:`~sepkit.evaluation.store.ResultStore`: the result files (resume, track keys);
* :class:`~sepkit.evaluation.reporter.Reporter`: progress, warnings and tables;
* :mod:`sepkit.sharding`: where the jobs run: here (``jobs == 1``), in ``jobs`` worker processes
  that each load the model once (at most twice as many tracks in flight, so memory is bounded by a
  few tracks whatever the test set's size), and under torchrun one shard of the tracks per
  process, the first writing the summary of all.

Each result is written as soon as it is ready: an interrupted evaluation keeps what it finished,
and a rerun skips tracks already scored with the same model, protocol and backend. Problems with
one track (a failing separation, references and estimates of different lengths, silent
references, NaN estimates, missing stems) are warnings in that track's JSON and on the console;
they never stop the evaluation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..build import build_datasets
from ..data.loading import LoadedTrack, LoadResult, load_tracks
from ..data.tracks import TrackAudio
from ..dataset import Dataset
from ..errors import SepkitError
from ..model import Model
from ..recipe.schema import Recipe
from ..separation.engine import EngineOptions
from ..sharding import Shard, model_source, pool_or_inline, worker_model
from .job import MIXTURE, EvaluationJob, SeparatingModel, TrackOutcome, TrackTask, write_estimates
from .museval_backend import museval_metrics, museval_version
from .options import EvaluationOptions, engine_options
from .protocols import get_protocol
from .reporter import Reporter
from .store import ResultStore
from .tables import summarize


@dataclass
class TrackSet:
    """The tracks to evaluate, whose audio rows are ``stems`` at ``sample_rate``, and the tracks
    that could not be loaded (``(path, reason)``)."""

    tracks: list[LoadedTrack]
    stems: list[str]
    sample_rate: int
    failed: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, tracks: LoadResult | Iterable[LoadedTrack], model: SeparatingModel, *,
           stems: list[str] | None = None, sample_rate: int | None = None) -> "TrackSet":
        """A loader's result (its stems, rate and failures), or tracks whose stems are ``stems``
        (default ``["mixture", *model.sources]``) at ``sample_rate`` (default the model's)."""
        if isinstance(tracks, LoadResult):
            return cls(list(tracks.tracks), stems or list(tracks.stems), sample_rate or int(tracks.sample_rate),
                       list(tracks.failed))
        return cls(list(tracks), list(stems or [MIXTURE, *model.sources]), int(sample_rate or model.sample_rate))


# -- public API ---------------------------------------------------------------------------------------


def evaluate(
    model: SeparatingModel,
    tracks: LoadResult | Iterable[LoadedTrack],
    *,
    out_dir: str | Path,
    stems: list[str] | None = None,
    sample_rate: int | None = None,
    separate_options: EngineOptions | Mapping[str, Any] | None = None,
    progress: bool = True,
    console: Any = None,
    shard: Shard | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Separate and score every track; write ``out_dir/<track>.json`` and ``out_dir/summary.json``.

    ``tracks``: a :class:`~sepkit.data.loading.LoadResult`, or ``LoadedTrack`` s (see
    :meth:`TrackSet.of` for ``stems`` and ``sample_rate``). ``options``: the fields of
    :class:`EvaluationOptions` (``protocol``, ``fast``, ``jobs``, ``save_estimates``, ``device``).
    ``separate_options``: how to separate (for a sepkit :class:`~sepkit.model.Model` made into
    :class:`EngineOptions` here, once). ``shard``: this process's share under torchrun (default all).
    Returns the summary (also written to ``summary.json``).
    """
    settings = EvaluationOptions(**options).with_default_protocol("paper")
    separation: EngineOptions | Mapping[str, Any] = separate_options or {}
    if isinstance(model, Model) and not isinstance(separation, EngineOptions):
        separation = model.options(**separation)
    track_set = TrackSet.of(tracks, model, stems=stems, sample_rate=sample_rate)
    return run_evaluation(model, track_set, settings, separation, Path(out_dir),
                          Reporter(console=console, enabled=progress), shard or Shard())


def evaluate_recipe(
    model: Model,
    recipe: Recipe,
    out_dir: str | Path,
    options: EvaluationOptions = EvaluationOptions(),
    *,
    datasets: list[Dataset] | None = None,
    engine: EngineOptions | None = None,
    progress: bool = True,
    console: Any = None,
    shard: Shard | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``datasets`` (default: the recipe's ``[[data.test]]`` sets) with the
    recipe's evaluation settings (protocol, unless ``options`` names one; ``engine`` default:
    :func:`engine_options`); ``sepkit run`` and ``sepkit evaluate`` both come here."""
    shard = shard or Shard()
    test_sets = build_datasets(recipe, "test") if datasets is None else datasets
    if not test_sets:
        raise SepkitError("the recipe has no [[data.test]] sets; add some or use --dataset TYPE:ROOT")
    loaded = load_tracks(
        test_sets, stems=[MIXTURE, *model.sources], sample_rate=model.sample_rate, channels=model.channels,
        clip=bool(recipe.audio.clip), progress=progress and shard.is_main,
        lazy=options.jobs > 1 or shard.enabled,  # each track read from the audio cache when its turn comes
    )
    return run_evaluation(
        model, TrackSet.of(loaded, model), options.with_default_protocol(recipe.evaluation.protocol),
        engine or engine_options(model, recipe), Path(out_dir), Reporter(console=console, enabled=progress), shard,
    )


def model_fingerprint(model: SeparatingModel) -> str:
    """``<file name>:<sha256 prefix>`` of a model file (a rerun with a retrained model rescores
    everything), or ``unknown`` for a model that is not a file."""
    path = model.path if isinstance(model, Model) else None
    if path is None or not Path(path).is_file():
        return "unknown"
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{Path(path).name}:{digest.hexdigest()[:16]}"


# -- the run -----------------------------------------------------------------------------------------------


@dataclass
class _Results:
    """What one process scored: records by key, tracks not scored, reused and replaced counts."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped: int = 0
    replaced: int = 0

    def merge(self, other: "_Results") -> None:
        self.records.update(other.records)
        self.failures.update(other.failures)
        self.skipped += other.skipped
        self.replaced += other.replaced


def run_evaluation(
    model: SeparatingModel,
    track_set: TrackSet,
    settings: EvaluationOptions,
    separation: EngineOptions | Mapping[str, Any],
    out: Path,
    reporter: Reporter,
    shard: Shard,
) -> dict[str, Any]:
    """Score this process's shard of ``track_set`` and, in the first process, write the summary of all."""
    protocol = get_protocol(str(settings.protocol))
    if settings.backend == "museval":
        museval_metrics()  # an explicit error now rather than one per track
    sources = list(model.sources)
    identity = {"protocol": protocol.name, "backend": settings.backend, "model": model_fingerprint(model), "sources": sources}
    store = ResultStore(out, identity)
    keyed = [(store.key(t.name, t.subset), t) for t in track_set.tracks]  # every process: the same keys
    job = EvaluationJob(
        protocol=protocol.name, backend=settings.backend,
        score_device=_scoring_device(settings.device) if settings.backend == "fast" else None,
        stems=tuple(track_set.stems), rate=track_set.sample_rate, separation=separation, identity=identity,
        estimates=out if settings.save_estimates else None,
    )
    mine = _run_shard(model, job, store, shard.take(keyed), settings, reporter)
    results = _Results()
    for part in shard.gather(mine):
        results.merge(part)
    order = list(store.keys)
    failures = [{"track": path, "error": reason} for path, reason in track_set.failed]
    failures += [results.failures[key] for key in order if key in results.failures]
    extra: dict[str, Any] = {
        "backend": settings.backend,
        "model": identity["model"],
        "sample_rate": protocol.scoring_rate(int(model.sample_rate), track_set.sample_rate),
        "failed": failures,
    }
    if settings.backend == "museval":
        extra["museval_version"] = museval_version()
    summary = summarize([results.records[k] for k in order if k in results.records], protocol=protocol.name,
                        sources=sources, extra=extra)
    if shard.is_main:
        store.save_summary(summary)
        reporter.finished(summary, folder=out, skipped=results.skipped, replaced=results.replaced,
                          not_loaded=track_set.failed)
    return summary


def _run_shard(
    model: SeparatingModel, job: EvaluationJob, store: ResultStore, keyed: list[tuple[str, LoadedTrack]],
    settings: EvaluationOptions, reporter: Reporter,
) -> _Results:
    """Score ``keyed`` tracks here or in worker processes, saving each record as it comes."""
    results = _Results()
    todo = []
    with reporter.bar(len(keyed)) as advance:
        for key, track in keyed:
            previous = store.previous(key, track.name, track.subset, with_estimates=settings.save_estimates)
            if previous is None:
                todo.append((key, track))
            else:
                results.records[key] = previous
                advance(track.name)
        results.skipped, results.replaced = store.skipped, store.replaced
        devices = [_device_of(model)] * settings.jobs  # each worker loads the model where the caller has it
        pool = pool_or_inline(settings.jobs, len(todo), model, worker_model, (model_source(model),), devices=devices)
        with pool as runner:
            for done in runner.run(job.run, _tasks(todo)):
                outcome = done.result or TrackOutcome(done.item.key, done.item.name, done.item.subset, error=done.error)
                _keep(outcome, store, results, reporter)
                advance(outcome.name)
    return results


def _tasks(todo: list[tuple[str, LoadedTrack]]) -> Iterator[TrackTask]:
    """One task per track, its audio read only when the task is handed out."""
    for key, track in todo:
        audio = track.audio.materialise() if isinstance(track.audio, TrackAudio) else track.audio
        yield TrackTask(key, track.name, track.subset, audio)


def _keep(outcome: TrackOutcome, store: ResultStore, results: _Results, reporter: Reporter) -> None:
    if outcome.record is None:
        results.failures[outcome.key] = {"track": outcome.name, "subset": outcome.subset, "error": str(outcome.error)}
        reporter.warn(outcome.name, f"not scored: {outcome.error}")
        return
    store.save(outcome.key, outcome.record)
    results.records[outcome.key] = outcome.record
    for warning in outcome.warnings:
        reporter.warn(outcome.name, warning)


def _device_of(model: SeparatingModel) -> str:
    return str(model.device) if isinstance(model, Model) else "cpu"


def _scoring_device(device: str | None) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    name = str(device)
    if name.startswith("mps"):
        return "cpu"  # no float64 on MPS
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SepkitError(f"device {name!r} requested but CUDA is not available")
    return name


__all__ = ["TrackSet", "evaluate", "evaluate_recipe", "model_fingerprint", "run_evaluation", "write_estimates"]
