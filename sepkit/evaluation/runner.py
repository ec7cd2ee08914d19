"""The evaluation loop: separate every test track, score it, write ``DIR/<track>.json``, summarise.

Separation runs in this process (the model stays on its device); scoring runs here too, or with
``jobs > 1`` in a pool of worker processes, at most ``jobs`` tracks in flight, so memory is bounded
by a few tracks whatever the test set's size. Each result is written atomically as soon as it is
ready: an interrupted evaluation keeps what it finished, and a rerun skips tracks already scored
with the same model, protocol and backend.

Problems with one track (a failing separation, references and estimates of different lengths,
silent references, NaN estimates, missing stems) are warnings in that track's JSON and on the
console; they never stop the evaluation.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import SepkitError
from .protocols import METRICS, Protocol, ScoringInput, TrackScores, get_protocol
from .results import SUMMARY_FILE, is_track_result, read_json, safe_name, write_json
from .tables import print_summary, summarize

if TYPE_CHECKING:
    from ..recipe.schema import Recipe

log = logging.getLogger("sepkit.evaluation")

MIXTURE = "mixture"


@dataclass
class _Job:
    """One track between separation and its result file."""

    key: str
    name: str
    subset: str
    record: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


# -- public API ---------------------------------------------------------------------------------------


def evaluate(
    model: Any,
    tracks: Any,
    *,
    out_dir: str | Path,
    protocol: str = "paper",
    jobs: int = 1,
    save_estimates: bool = False,
    fast: bool = True,
    progress: bool = True,
    stems: list[str] | None = None,
    sample_rate: int | None = None,
    separate_options: dict[str, Any] | None = None,
    device: str | None = None,
    failed: Iterable[tuple[str, str]] = (),
    console: Any = None,
) -> dict[str, Any]:
    """Separate and score every track; write ``out_dir/<track>.json`` and ``out_dir/summary.json``.

    ``tracks``: a :class:`sepkit.data.loading.LoadResult` (its stems and sample rate are used) or
    an iterable of ``LoadedTrack`` (``name``, ``subset``, ``audio`` ``[S, C, L]``) whose stems are
    ``stems`` (default ``["mixture", *model.sources]``) at ``sample_rate`` (default the model's).
    ``model`` needs ``sources``, ``sample_rate`` and ``separate(waveform [C, L], rate, **separate_options)``.
    ``fast`` scores with the torch path (equal to museval, see docs/evaluation.md), else with museval.
    ``device`` is where the fast path computes (default: CUDA when available, else CPU).
    Returns the summary (also written to ``summary.json``).
    """
    scorer_protocol = get_protocol(protocol)
    backend = "fast" if fast else "museval"
    if jobs < 1:
        raise SepkitError(f"--jobs must be at least 1, got {jobs}")
    if backend == "museval":
        from .museval_backend import museval_metrics

        museval_metrics()  # an explicit error now rather than one per track
    failed = list(failed)
    if hasattr(tracks, "tracks") and hasattr(tracks, "stems"):
        stems = stems or list(tracks.stems)
        sample_rate = sample_rate or int(tracks.sample_rate)
        failed += list(getattr(tracks, "failed", []))
        tracks = tracks.tracks
    sources = list(model.sources)
    stems = list(stems or [MIXTURE, *sources])
    rate = int(sample_rate or model.sample_rate)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SepkitError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    score_device = _scoring_device(device) if backend == "fast" else None
    model_id = model_fingerprint(model)
    reporter = _Reporter(console=console, enabled=progress)
    base_record = {
        "protocol": scorer_protocol.name,
        "backend": backend,
        "model": model_id,
        "sources": sources,
    }
    results: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, str]] = [{"track": path, "error": reason} for path, reason in failed]
    used_keys: dict[str, str] = {}
    counts = {"skipped": 0, "replaced": 0}
    track_list = tracks if isinstance(tracks, list) else None
    total = len(track_list) if track_list is not None else None

    def finish(job: _Job, scores: TrackScores | None, error: str | None) -> None:
        if error is not None:
            failures.append({"track": job.name, "subset": job.subset, "error": error})
            reporter.warn(job.name, f"not scored: {error}")
            return
        assert scores is not None
        warnings = job.warnings + [w for w in scores.warnings if w not in job.warnings]
        metrics = {s: {m: float("nan") for m in METRICS} for s in sources}
        for source, values in scores.metrics.items():
            metrics[source] = values
        record = {**job.record, **scores.info, "metrics": metrics, "warnings": warnings}
        if scores.frames is not None:
            record["frames"] = scores.frames
        write_json(out / f"{job.key}.json", record)
        results[job.key] = record
        for warning in warnings:
            reporter.warn(job.name, warning)

    with reporter.bar(total) as advance, _Scorer(jobs, scorer_protocol, backend, score_device, finish) as scorer:
        for track in tracks:
            name, subset = str(track.name), str(getattr(track, "subset", "") or "")
            key = _track_key(name, subset, used_keys)
            existing = read_json(out / f"{key}.json")
            if _is_done(existing, name, subset, base_record) and not (save_estimates and not (out / key).is_dir()):
                results[key] = existing  # type: ignore[assignment]
                counts["skipped"] += 1
                advance(name)
                continue
            if existing is not None:
                counts["replaced"] += 1
            job = _Job(key=key, name=name, subset=subset, record={"track": name, "subset": subset, **base_record})
            try:
                item = _separate_track(model, track, stems, rate, scorer_protocol, separate_options or {}, job.warnings)
            except SepkitError as exc:
                finish(job, None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                advance(name)
                continue
            if save_estimates:
                write_estimates(out / key, item)
            scorer.submit(job, item)
            advance(name)
    if counts["replaced"]:
        reporter.note(f"replaced {counts['replaced']} earlier result(s) of another model, protocol or backend in {out}")
    if counts["skipped"]:
        reporter.note(f"skipped {counts['skipped']} track(s) already scored in {out}")
    ordered = [results[key] for key in used_keys if key in results]
    extra = {
        "backend": backend,
        "model": model_id,
        "sample_rate": scorer_protocol.scoring_rate(int(model.sample_rate), rate),
        "failed": failures,
    }
    if backend == "museval":
        from .museval_backend import museval_version

        extra["museval_version"] = museval_version()
    summary = summarize(ordered, protocol=scorer_protocol.name, sources=sources, extra=extra)
    write_json(out / SUMMARY_FILE, summary)
    if progress:
        print_summary(summary, reporter.console)
        for path, reason in failed:  # tracks the loader could not read (the others were warned about)
            reporter.warn(path, f"not loaded: {reason}")
    return summary


def evaluate_recipe(
    model: Any,
    recipe: "Recipe",
    out_dir: str | Path,
    *,
    jobs: int = 1,
    progress: bool = True,
    protocol: str | None = None,
    fast: bool = True,
    save_estimates: bool = False,
    device: str | None = None,
    console: Any = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on the recipe's ``[[data.test]]`` sets with the recipe's evaluation
    settings (protocol, window overlap, batch size); what ``sepkit run`` calls after each variant."""
    from ..build import build_datasets

    datasets = build_datasets(recipe, "test")
    if not datasets:
        raise SepkitError("the recipe has no [[data.test]] sets to evaluate on")
    return evaluate_datasets(
        model,
        datasets,
        out_dir,
        protocol=protocol or recipe.evaluation.protocol,
        jobs=jobs,
        progress=progress,
        fast=fast,
        save_estimates=save_estimates,
        device=device,
        clip=bool(recipe.audio.clip),
        separate_options={"overlap": recipe.evaluation.overlap, "batch_size": recipe.evaluation.batch_size},
        console=console,
    )


def evaluate_datasets(
    model: Any,
    datasets: list[Any],
    out_dir: str | Path,
    *,
    protocol: str = "paper",
    jobs: int = 1,
    progress: bool = True,
    fast: bool = True,
    save_estimates: bool = False,
    device: str | None = None,
    clip: bool = True,
    separate_options: dict[str, Any] | None = None,
    console: Any = None,
) -> dict[str, Any]:
    """Load the test ``datasets`` at the model's rate and channel count, then :func:`evaluate`."""
    from ..data.loading import load_tracks

    loaded = load_tracks(
        datasets,
        stems=[MIXTURE, *model.sources],
        sample_rate=int(model.sample_rate),
        channels=int(getattr(model, "channels", 1)),
        clip=clip,
        progress=progress,
    )
    return evaluate(
        model,
        loaded,
        out_dir=out_dir,
        protocol=protocol,
        jobs=jobs,
        save_estimates=save_estimates,
        fast=fast,
        progress=progress,
        separate_options=separate_options,
        device=device,
        console=console,
    )


def model_fingerprint(model: Any) -> str:
    """``<file name>:<sha256 prefix>`` of the model file (so that a rerun with a retrained model
    rescoring everything), or ``unknown`` for an in-memory model."""
    path = getattr(model, "path", None)
    if path is None or not Path(path).is_file():
        return str(getattr(model, "fingerprint", "unknown"))
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{Path(path).name}:{digest.hexdigest()[:16]}"


def write_estimates(folder: Path, item: ScoringInput) -> None:
    """``<source>-reference.wav`` and ``<source>-estimate.wav`` exactly as scored (32-bit float)."""
    from ..audio import write_wav

    folder.mkdir(parents=True, exist_ok=True)
    for j, source in enumerate(item.sources):
        for kind, signal in (("reference", item.references[j]), ("estimate", item.estimates[j])):
            data = np.asarray(signal, dtype=np.float32).T
            write_wav(folder / f"{safe_name(source)}-{kind}.wav", data, item.sample_rate)


# -- one track ---------------------------------------------------------------------------------------------


def _separate_track(
    model: Any,
    track: Any,
    stems: list[str],
    rate: int,
    protocol: Protocol,
    separate_options: dict[str, Any],
    warnings: list[str],
) -> ScoringInput:
    """Present the track to the model as the protocol says, separate it, and line the estimates up
    with the references (warnings appended to ``warnings``)."""
    audio = np.asarray(track.audio)
    if audio.ndim != 3 or audio.shape[0] != len(stems):
        raise SepkitError(
            f"track '{track.name}': audio of shape {list(audio.shape)} does not hold the stems {stems} as [stems, channels, samples]"
        )
    index = {stem: i for i, stem in enumerate(stems)}
    sources = list(model.sources)
    present = [s for s in sources if s in index]
    for source in sources:
        if source not in index:
            warnings.append(f"no reference for '{source}': it is not scored")
    if not present:
        raise SepkitError(f"track '{track.name}': none of the model's sources {sources} has a reference")
    references = {s: audio[index[s]] for s in present}
    if MIXTURE in index:
        mixture = audio[index[MIXTURE]]
    else:
        warnings.append("no mixture stem: the sum of the references is separated")
        mixture = np.sum([references[s] for s in present], axis=0)
    target_rate = protocol.scoring_rate(int(model.sample_rate), rate)
    if target_rate != rate:
        from ..audio import resample

        mixture = resample(np.ascontiguousarray(mixture, dtype=np.float32), rate, target_rate)
        references = {s: resample(np.ascontiguousarray(r, dtype=np.float32), rate, target_rate) for s, r in references.items()}
    mixture = np.asarray(mixture, dtype=np.float32)
    model_input = protocol.model_input(mixture, int(getattr(model, "channels", mixture.shape[0])))
    mixture = protocol.scoring_channels(mixture)
    references = {s: protocol.scoring_channels(np.asarray(r, dtype=np.float32)) for s, r in references.items()}

    estimates = model.separate(model_input, target_rate, **separate_options)
    if not isinstance(estimates, dict):
        raise SepkitError(f"track '{track.name}': the model returned {type(estimates).__name__}, not a dict of sources")
    channels = mixture.shape[0]
    aligned: dict[str, np.ndarray] = {}
    for source in present:
        estimate = estimates.get(source)
        if estimate is None:
            warnings.append(f"the model returned no estimate for '{source}': scored as NaN")
            estimate = np.full_like(references[source], np.nan)
        estimate = np.asarray(estimate, dtype=np.float32)
        if estimate.ndim == 1:
            estimate = estimate[None, :]
        estimate = protocol.scoring_channels(estimate)
        if estimate.ndim != 2 or estimate.shape[0] != channels:
            raise SepkitError(
                f"track '{track.name}': the estimate of '{source}' has shape {list(estimate.shape)}; expected "
                f"[{channels}, samples] like the mixture"
            )
        aligned[source] = estimate
    length = min([mixture.shape[-1], *(r.shape[-1] for r in references.values()), *(e.shape[-1] for e in aligned.values())])
    for source in present:
        ref_length, est_length = references[source].shape[-1], aligned[source].shape[-1]
        if ref_length != est_length:
            which = "shorter" if ref_length < est_length else "longer"
            warnings.append(
                f"reference of '{source}' ({ref_length} samples) is {which} than its estimate ({est_length}): "
                f"both trimmed to {length}"
            )
    return ScoringInput(
        name=str(track.name),
        subset=str(getattr(track, "subset", "") or ""),
        sources=present,
        references=np.stack([references[s][:, :length] for s in present]),
        estimates=np.stack([aligned[s][:, :length] for s in present]),
        mixture=mixture[:, :length],
        sample_rate=int(target_rate),
    )


def _track_key(name: str, subset: str, used: dict[str, str]) -> str:
    """The result file's stem: the track name, or ``<subset>__<name>`` when another subset of this
    run already has a track of that name."""
    key = safe_name(name)
    if key in used and used[key] != subset:
        key = safe_name(f"{subset}__{name}")
    counter = 2
    base = key
    while key in used and used[key] != subset:
        key, counter = f"{base}-{counter}", counter + 1
    used[key] = subset
    return key


def _is_done(existing: dict[str, Any] | None, name: str, subset: str, base: dict[str, Any]) -> bool:
    return (
        is_track_result(existing)
        and existing.get("track") == name  # type: ignore[union-attr]
        and (existing.get("subset") or "") == subset  # type: ignore[union-attr]
        and all(existing.get(k) == v for k, v in base.items())  # type: ignore[union-attr]
    )


def _scoring_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    name = str(device)
    if name.startswith("mps"):
        return "cpu"  # no float64 on MPS
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SepkitError(f"device {name!r} requested but CUDA is not available")
    return name


# -- scoring, here or in worker processes -------------------------------------------------------------------


def _score(protocol_name: str, backend: str, device: str | None, item: ScoringInput) -> TrackScores:
    return get_protocol(protocol_name).score(item, backend=backend, device=device)


def _init_worker(threads: int) -> None:
    """Share the cores among workers (set before torch or numpy start their thread pools; the
    library never calls ``torch.set_num_threads``)."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, str(threads))


class _Scorer:
    """Scores tracks inline (``jobs == 1``) or in a spawn-started process pool with at most
    ``jobs`` tracks in flight; ``finish(job, scores, error)`` runs in this process."""

    def __init__(
        self, jobs: int, protocol: Protocol, backend: str, device: str | None,
        finish: Callable[[_Job, TrackScores | None, str | None], None],
    ) -> None:
        self.jobs, self.protocol, self.backend, self.device, self.finish = jobs, protocol, backend, device, finish
        self.pending: dict[Future, _Job] = {}
        self.pool: ProcessPoolExecutor | None = None
        if jobs > 1:
            import multiprocessing

            threads = max(1, (os.cpu_count() or 1) // jobs)
            self.pool = ProcessPoolExecutor(
                max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(threads,)
            )

    def __enter__(self) -> "_Scorer":
        return self

    def submit(self, job: _Job, item: ScoringInput) -> None:
        if self.pool is None:
            try:
                scores = self.protocol.score(item, backend=self.backend, device=self.device)
            except SepkitError as exc:
                self.finish(job, None, str(exc).splitlines()[0])
                return
            except Exception as exc:  # one track's failure must not lose the others
                log.debug("scoring %s failed", job.name, exc_info=True)
                self.finish(job, None, f"scoring failed: {type(exc).__name__}: {exc}")
                return
            self.finish(job, scores, None)
            return
        while len(self.pending) >= self.jobs:
            self._collect(FIRST_COMPLETED)
        future = self.pool.submit(_score, self.protocol.name, self.backend, self.device, item)
        self.pending[future] = job

    def _collect(self, mode: str) -> None:
        done, _ = wait(list(self.pending), return_when=mode)
        for future in done:
            job = self.pending.pop(future)
            try:
                scores = future.result()
            except SepkitError as exc:
                self.finish(job, None, str(exc).splitlines()[0])
            except Exception as exc:  # a worker that died (out of memory...) fails its track only
                self.finish(job, None, f"scoring failed: {type(exc).__name__}: {exc}")
            else:
                self.finish(job, scores, None)

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if self.pool is None:
            return
        try:
            if exc_type is None:
                while self.pending:
                    self._collect(FIRST_COMPLETED)
            else:  # interrupted: keep what is already scored, drop the rest
                for future in [f for f in self.pending if f.done() and not f.cancelled()]:
                    job = self.pending.pop(future)
                    if future.exception() is None:
                        self.finish(job, future.result(), None)
        finally:
            self.pool.shutdown(wait=exc_type is None, cancel_futures=True)


# -- console ------------------------------------------------------------------------------------------------


class _Reporter:
    """A progress bar over tracks and one warning line per problem on stderr (logging when quiet);
    tables go to ``console`` (stdout by default)."""

    def __init__(self, *, console: Any, enabled: bool) -> None:
        from rich.console import Console

        self.enabled = enabled
        self.console = console or Console()
        self.errors = Console(stderr=True)

    def warn(self, track: str, message: str) -> None:
        if self.enabled:
            from rich.markup import escape

            self.errors.print(f"[yellow]warning[/]: {escape(track)}: {escape(message)}", highlight=False)
        else:
            log.warning("%s: %s", track, message)

    def note(self, message: str) -> None:
        if self.enabled:
            self.errors.print(message, highlight=False, markup=False)
        else:
            log.info(message)

    @contextlib.contextmanager
    def bar(self, total: int | None) -> Iterator[Callable[[str], None]]:
        """A transient progress bar over tracks; yields ``advance(track name)``."""
        if not self.enabled:
            yield lambda name: None
            return
        from rich.progress import Progress

        with Progress(console=self.errors, transient=True) as progress:
            task = progress.add_task("evaluating", total=total)
            yield lambda name: progress.update(task, advance=1, description=f"evaluating {name[:40]}")


__all__ = ["evaluate", "evaluate_datasets", "evaluate_recipe", "model_fingerprint", "write_estimates"]
