"""The evaluation job: one track presented to the model as the protocol says, separated, lined up
with its references, scored, and made into the record of ``DIR/<track>.json``.

:class:`EvaluationJob` holds everything but the model and the track, so that the same job runs in
this process or in a worker process (:mod:`sepkit.sharding`) and gives the same record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol as TypingProtocol, runtime_checkable

import numpy as np

from ..audio import resample, write_wav
from ..errors import SepkitError
from ..separation.engine import EngineOptions
from .protocols import METRICS, Protocol, ScoringInput, TrackScores, get_protocol
from .results import safe_name

log = logging.getLogger("sepkit.evaluation")

MIXTURE = "mixture"


@runtime_checkable
class SeparatingModel(TypingProtocol):
    """What the evaluation needs of a model: a :class:`sepkit.model.Model`, or any object with these
    (a baseline, a stand-in in tests). ``separate`` gets the job's separation options: an
    :class:`EngineOptions` as ``options=`` for a sepkit model, else the mapping as keywords."""

    @property
    def sources(self) -> Sequence[str]: ...

    @property
    def sample_rate(self) -> int: ...

    @property
    def channels(self) -> int: ...

    def separate(self, waveform: np.ndarray, sample_rate: int, **options: Any) -> Mapping[str, np.ndarray]: ...


@dataclass
class TrackTask:
    """One track to evaluate: its result key, name, subset and audio ``[stems, channels, samples]``."""

    key: str
    name: str
    subset: str
    audio: np.ndarray


@dataclass
class TrackOutcome:
    """The record of a scored track, or the one-line reason it was not scored, and its warnings."""

    key: str
    name: str
    subset: str
    record: dict[str, Any] | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EvaluationJob:
    """Separate and score tracks: ``stems`` name the rows of each track's audio at ``rate``;
    ``identity`` (protocol, backend, model, sources) starts every record; ``estimates`` is the
    folder for ``--save-estimates`` (None: not saved)."""

    protocol: str
    backend: str
    score_device: str | None
    stems: tuple[str, ...]
    rate: int
    separation: EngineOptions | Mapping[str, Any]
    identity: Mapping[str, Any]
    estimates: Path | None = None

    def run(self, model: SeparatingModel, task: TrackTask) -> TrackOutcome:
        """The outcome of one track; a failing separation or scoring fails this track only."""
        outcome = TrackOutcome(task.key, task.name, task.subset)
        protocol = get_protocol(self.protocol)
        try:
            item = self.separate(model, task, protocol, outcome.warnings)
        except SepkitError as exc:
            outcome.error = _first_line(exc)
            return outcome
        if self.estimates is not None:
            write_estimates(self.estimates / task.key, item)
        try:
            scores = protocol.score(item, backend=self.backend, device=self.score_device)
        except SepkitError as exc:
            outcome.error = _first_line(exc)
            return outcome
        except Exception as exc:  # one track's failure must not lose the others
            log.debug("scoring %s failed", task.name, exc_info=True)
            outcome.error = f"scoring failed: {type(exc).__name__}: {exc}"
            return outcome
        outcome.warnings += [w for w in scores.warnings if w not in outcome.warnings]
        outcome.record = self.record(task, scores, outcome.warnings, list(model.sources))
        return outcome

    def record(self, task: TrackTask, scores: TrackScores, warnings: list[str], sources: list[str]) -> dict[str, Any]:
        metrics = {s: {m: float("nan") for m in METRICS} for s in sources}
        metrics.update(scores.metrics)
        record = {"track": task.name, "subset": task.subset, **self.identity, **scores.info,
                  "metrics": metrics, "warnings": list(warnings)}
        if scores.frames is not None:
            record["frames"] = scores.frames
        return record

    def separate(self, model: SeparatingModel, task: TrackTask, protocol: Protocol, warnings: list[str]) -> ScoringInput:
        """Present the track to the model as the protocol says, separate it, and line the estimates
        up with the references (problems appended to ``warnings``)."""
        mixture, references = _stems(task, self.stems, list(model.sources), warnings)
        rate = protocol.scoring_rate(int(model.sample_rate), self.rate)
        if rate != self.rate:
            mixture = resample(np.ascontiguousarray(mixture, dtype=np.float32), self.rate, rate)
            references = {s: resample(np.ascontiguousarray(r, dtype=np.float32), self.rate, rate) for s, r in references.items()}
        mixture = np.asarray(mixture, dtype=np.float32)
        model_input = protocol.model_input(mixture, int(model.channels))
        mixture = protocol.scoring_channels(mixture)
        references = {s: protocol.scoring_channels(np.asarray(r, dtype=np.float32)) for s, r in references.items()}
        if isinstance(self.separation, EngineOptions):
            estimates = model.separate(model_input, rate, options=self.separation)
        else:
            estimates = model.separate(model_input, rate, **self.separation)
        if not isinstance(estimates, Mapping):
            raise SepkitError(f"track '{task.name}': the model returned {type(estimates).__name__}, not a dict of sources")
        aligned = _aligned(task.name, estimates, references, protocol, mixture.shape[0], warnings)
        return _trimmed(task, mixture, references, aligned, rate, warnings)


def _stems(
    task: TrackTask, stems: Sequence[str], sources: list[str], warnings: list[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The track's mixture and the references of the model's sources it has."""
    audio = np.asarray(task.audio)
    if audio.ndim != 3 or audio.shape[0] != len(stems):
        raise SepkitError(
            f"track '{task.name}': audio of shape {list(audio.shape)} does not hold the stems {list(stems)} "
            "as [stems, channels, samples]"
        )
    index = {stem: i for i, stem in enumerate(stems)}
    present = [s for s in sources if s in index]
    warnings += [f"no reference for '{s}': it is not scored" for s in sources if s not in index]
    if not present:
        raise SepkitError(f"track '{task.name}': none of the model's sources {sources} has a reference")
    references = {s: audio[index[s]] for s in present}
    if MIXTURE in index:
        return audio[index[MIXTURE]], references
    warnings.append("no mixture stem: the sum of the references is separated")
    return np.sum([references[s] for s in present], axis=0), references


def _aligned(
    name: str, estimates: Mapping[str, Any], references: dict[str, np.ndarray], protocol: Protocol, channels: int,
    warnings: list[str],
) -> dict[str, np.ndarray]:
    """Each referenced source's estimate as ``[channels, samples]`` float32 (NaN where the model gave none)."""
    aligned: dict[str, np.ndarray] = {}
    for source, reference in references.items():
        estimate = estimates.get(source)
        if estimate is None:
            warnings.append(f"the model returned no estimate for '{source}': scored as NaN")
            estimate = np.full_like(reference, np.nan)
        estimate = np.asarray(estimate, dtype=np.float32)
        if estimate.ndim == 1:
            estimate = estimate[None, :]
        estimate = protocol.scoring_channels(estimate)
        if estimate.ndim != 2 or estimate.shape[0] != channels:
            raise SepkitError(
                f"track '{name}': the estimate of '{source}' has shape {list(estimate.shape)}; expected "
                f"[{channels}, samples] like the mixture"
            )
        aligned[source] = estimate
    return aligned


def _trimmed(
    task: TrackTask, mixture: np.ndarray, references: dict[str, np.ndarray], estimates: dict[str, np.ndarray],
    rate: int, warnings: list[str],
) -> ScoringInput:
    """Everything cut to the shortest length (a warning for each reference that differs from its estimate)."""
    present = list(references)
    length = min([mixture.shape[-1], *(r.shape[-1] for r in references.values()), *(e.shape[-1] for e in estimates.values())])
    for source in present:
        ref_length, est_length = references[source].shape[-1], estimates[source].shape[-1]
        if ref_length != est_length:
            which = "shorter" if ref_length < est_length else "longer"
            warnings.append(
                f"reference of '{source}' ({ref_length} samples) is {which} than its estimate ({est_length}): "
                f"both trimmed to {length}"
            )
    return ScoringInput(
        name=task.name,
        subset=task.subset,
        sources=present,
        references=np.stack([references[s][:, :length] for s in present]),
        estimates=np.stack([estimates[s][:, :length] for s in present]),
        mixture=mixture[:, :length],
        sample_rate=int(rate),
    )


def write_estimates(folder: Path, item: ScoringInput) -> None:
    """``<source>-reference.wav`` and ``<source>-estimate.wav`` exactly as scored (32-bit float)."""
    folder.mkdir(parents=True, exist_ok=True)
    for j, source in enumerate(item.sources):
        for kind, signal in (("reference", item.references[j]), ("estimate", item.estimates[j])):
            write_wav(folder / f"{safe_name(source)}-{kind}.wav", np.asarray(signal, dtype=np.float32).T, item.sample_rate)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


__all__ = ["MIXTURE", "EvaluationJob", "SeparatingModel", "TrackOutcome", "TrackTask", "write_estimates"]
