"""Scoring protocols: what is scored (rate, channels, which sources together) and with which metric.

* ``paper`` (Stoller et al. 2018): the whole track at the model's rate, in mono, every source at
  once with BSS Eval v3 ``bss_eval_sources`` (SDR, SIR, SAR), plus the normalised SDR
  ``NSDR = SDR(estimate) - SDR(mixture used as the estimate)``.
* ``bsseval-v4`` (SiSEC 2018 / MUSDB18 tables): museval's BSS Eval v4 image metrics on 1 s
  windows with a 1 s hop, filters fitted on the whole track; a track's value is the median over
  its windows (NaN windows ignored), as museval's ``TrackStore`` reports. Sources are grouped as
  ``museval.eval_mus_track`` groups them (vocals/accompaniment as their own pair).

Both run on the fast torch path (:mod:`sepkit.evaluation.bss_eval`, equal to museval, see
docs/evaluation.md) or on museval itself (``backend="museval"``).

Bad input never stops an evaluation: a silent reference is left out of the reference set (it spans
nothing, so the other sources' numbers are unchanged) and its scores are NaN; a silent or non-finite
estimate is scored NaN (museval refuses both), each with a warning.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import SepkitError
from .bss_eval import bss_eval_images_framewise, bss_eval_sources
from .museval_backend import museval_bss_eval_sources, museval_bss_eval_v4

#: The per-source numbers every protocol reports (NaN where undefined).
METRICS: tuple[str, ...] = ("SDR", "SIR", "SAR", "NSDR")
BACKENDS: tuple[str, ...] = ("fast", "museval")


@dataclass
class ScoringInput:
    """One track exactly as it is scored: ``references`` and ``estimates`` ``[J, C, N]`` (sources
    in ``sources`` order), the ``mixture`` ``[C, N]``, at ``sample_rate``."""

    name: str
    subset: str
    sources: list[str]
    references: np.ndarray
    estimates: np.ndarray
    mixture: np.ndarray
    sample_rate: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class TrackScores:
    """``metrics[source][metric]`` (float, NaN where undefined); ``frames[source][metric]`` the
    per-window values of framewise protocols; ``warnings`` one line each."""

    metrics: dict[str, dict[str, float]]
    frames: dict[str, dict[str, list[float]]] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Protocol(abc.ABC):
    """How tracks are presented to the model and scored."""

    name: ClassVar[str]
    summary: ClassVar[str]
    #: Extra per-source numbers the protocol reports besides :data:`METRICS`.
    extra_metrics: ClassVar[tuple[str, ...]] = ()

    def scoring_rate(self, model_rate: int, track_rate: int) -> int:
        """The rate tracks are scored (and separated) at."""
        return track_rate

    def model_input(self, mixture: np.ndarray, model_channels: int) -> np.ndarray:
        """The mixture ``[C, L]`` as the model separates it."""
        return mixture

    def scoring_channels(self, audio: np.ndarray) -> np.ndarray:
        """``[..., C, L]`` -> the channels that are scored."""
        return audio

    def score(self, item: ScoringInput, *, backend: str = "fast", device: str | None = None) -> TrackScores:
        """Score one track; problems with single sources become warnings and NaN, never errors."""
        if backend not in BACKENDS:
            raise SepkitError(f"unknown scoring backend '{backend}'; expected one of {', '.join(BACKENDS)}")
        warnings = list(item.warnings)
        refs = np.asarray(item.references, dtype=np.float64)
        ests = np.asarray(item.estimates, dtype=np.float64)
        mixture = np.asarray(item.mixture, dtype=np.float64)
        if refs.shape != ests.shape or refs.ndim != 3 or mixture.shape != refs.shape[1:]:
            raise SepkitError(
                f"track '{item.name}': references {list(refs.shape)}, estimates {list(ests.shape)} and mixture "
                f"{list(mixture.shape)} do not line up (expected [sources, channels, samples] and [channels, samples])"
            )
        names = list(item.sources)
        usable_ref = np.ones(len(names), dtype=bool)
        usable_est = np.ones(len(names), dtype=bool)
        for j, source in enumerate(names):
            if not np.isfinite(refs[j]).all():
                warnings.append(f"reference '{source}' holds NaN or infinite samples: its scores are NaN")
                usable_ref[j] = False
            elif _silent(refs[j]):
                warnings.append(
                    f"reference '{source}' is silent: its scores are NaN (BSS Eval is undefined) and it is "
                    "left out of the reference set"
                )
                usable_ref[j] = False
            if not np.isfinite(ests[j]).all():
                warnings.append(f"estimate of '{source}' holds NaN or infinite samples: scored as NaN")
                usable_est[j] = False
            elif _silent(ests[j]):
                warnings.append(f"estimate of '{source}' is silent: scored as NaN (BSS Eval is undefined for it)")
                usable_est[j] = False
        mixture_ok = bool(np.isfinite(mixture).all()) and not _silent(mixture)
        if not mixture_ok:
            warnings.append("the mixture is silent or not finite: NSDR is NaN")
        metrics = {source: {m: float("nan") for m in (*METRICS, *self.extra_metrics)} for source in names}
        kept = [j for j in range(len(names)) if usable_ref[j]]
        frames = None
        if kept:
            # an unusable estimate is replaced by its reference (a harmless placeholder: each
            # estimate is scored on its own given the references) and its numbers dropped afterwards
            kept_refs = refs[kept]
            kept_ests = np.stack([ests[j] if usable_est[j] else refs[j] for j in kept])
            values, frames = self._score(
                [names[j] for j in kept], kept_refs, kept_ests, mixture if mixture_ok else None,
                item.sample_rate, backend=backend, device=device,
            )
            for j in kept:
                source = names[j]
                if usable_est[j]:
                    metrics[source].update(values[source])
                elif "mixture_SDR" in values[source]:
                    metrics[source]["mixture_SDR"] = values[source]["mixture_SDR"]
                if not usable_est[j] and frames is not None and source in frames:
                    frames[source] = {m: [float("nan")] * len(v) for m, v in frames[source].items()}
        return TrackScores(metrics=metrics, frames=frames, info=self.info(item), warnings=warnings)

    def info(self, item: ScoringInput) -> dict[str, Any]:
        return {
            "sample_rate": int(item.sample_rate),
            "channels": int(item.references.shape[1]),
            "samples": int(item.references.shape[2]),
        }

    @abc.abstractmethod
    def _score(
        self, sources: list[str], refs: np.ndarray, ests: np.ndarray, mixture: np.ndarray | None, rate: int,
        *, backend: str, device: str | None,
    ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, list[float]]] | None]:
        """Scores of clean input: non-silent, finite references and estimates."""


class PaperProtocol(Protocol):
    name = "paper"
    summary = "whole-track bss_eval_sources (v3) at the model rate in mono, all sources at once, plus NSDR"
    extra_metrics = ("mixture_SDR",)

    def scoring_rate(self, model_rate: int, track_rate: int) -> int:
        return model_rate

    def model_input(self, mixture: np.ndarray, model_channels: int) -> np.ndarray:
        """A mono model separates the mono mixture, as in the paper; a multichannel model gets
        its channels (and is scored on the downmix)."""
        return self.scoring_channels(mixture) if model_channels == 1 else mixture

    def scoring_channels(self, audio: np.ndarray) -> np.ndarray:
        return audio if audio.shape[-2] == 1 else audio.mean(axis=-2, keepdims=True, dtype=np.float64).astype(audio.dtype)

    def _score(self, sources, refs, ests, mixture, rate, *, backend, device):
        if backend == "museval":
            sdr, sir, sar = museval_bss_eval_sources(refs, ests)
            mix_sdr = (
                museval_bss_eval_sources(refs, np.broadcast_to(mixture, refs.shape).copy())[0]
                if mixture is not None else np.full(len(sources), np.nan)
            )
        else:
            result = bss_eval_sources(refs, ests, mixture=mixture, device=device)
            sdr, sir, sar = (v.cpu().numpy() for v in (result.sdr, result.sir, result.sar))
            mix_sdr = result.mixture_sdr.cpu().numpy() if result.mixture_sdr is not None else np.full(len(sources), np.nan)
        values = {
            source: {
                "SDR": float(sdr[j]),
                "SIR": float(sir[j]),
                "SAR": float(sar[j]),
                "NSDR": float(sdr[j] - mix_sdr[j]),
                "mixture_SDR": float(mix_sdr[j]),
            }
            for j, source in enumerate(sources)
        }
        return values, None


class BssEvalV4Protocol(Protocol):
    name = "bsseval-v4"
    summary = "museval BSS Eval v4: image metrics on 1 s windows (hop 1 s), median over windows"
    extra_metrics = ("ISR", "mixture_SDR")
    window_seconds: ClassVar[float] = 1.0
    hop_seconds: ClassVar[float] = 1.0

    def info(self, item: ScoringInput) -> dict[str, Any]:
        return {**super().info(item), "window_seconds": self.window_seconds, "hop_seconds": self.hop_seconds}

    def _score(self, sources, refs, ests, mixture, rate, *, backend, device):
        window, hop = int(self.window_seconds * rate), int(self.hop_seconds * rate)
        values: dict[str, dict[str, float]] = {}
        frames: dict[str, dict[str, list[float]]] = {}
        for group, reported in museval_groups(sources):
            index = [sources.index(s) for s in group]
            framewise = _v4_framewise(refs[index], ests[index], mixture, window, hop, backend=backend, device=device)
            for position, source in enumerate(group):
                if source not in reported:
                    continue
                per_metric = {name: framewise[name][position] for name in ("SDR", "ISR", "SIR", "SAR", "mixture_SDR")}
                frames[source] = {k: [float(x) for x in v] for k, v in per_metric.items()}
                medians = {k: _nanmedian(v) for k, v in per_metric.items()}
                values[source] = {**medians, "NSDR": medians["SDR"] - medians["mixture_SDR"]}
        return values, frames


def _v4_framewise(
    refs: np.ndarray, ests: np.ndarray, mixture: np.ndarray | None, window: int, hop: int, *, backend: str, device: str | None
) -> dict[str, np.ndarray]:
    """``{metric: [J, windows]}`` of museval's v4 for one group of sources (and the mixture's SDR)."""
    if backend == "museval":
        sdr, isr, sir, sar = museval_bss_eval_v4(refs, ests, window=window, hop=hop)
        if mixture is not None:
            mix_sdr = museval_bss_eval_v4(refs, np.broadcast_to(mixture, refs.shape).copy(), window=window, hop=hop)[0]
        else:
            mix_sdr = np.full_like(sdr, np.nan)
        return {"SDR": sdr, "ISR": isr, "SIR": sir, "SAR": sar, "mixture_SDR": mix_sdr}
    result = bss_eval_images_framewise(refs, ests, window=window, hop=hop, mixture=mixture, device=device)
    out = {name.upper(): getattr(result, name).cpu().numpy() for name in ("sdr", "isr", "sir", "sar")}
    out["mixture_SDR"] = result.mixture_sdr.cpu().numpy() if result.mixture_sdr is not None else np.full_like(out["SDR"], np.nan)
    return out


def museval_groups(sources: list[str]) -> list[tuple[list[str], set[str]]]:
    """How ``museval.eval_mus_track`` groups targets: every target but accompaniment together, and
    vocals/accompaniment as their own pair (vocals reported from the pair). Returns
    ``(sources scored together, sources reported from that group)``."""
    targets = list(sources)
    pair = "vocals" in targets and "accompaniment" in targets
    groups: list[tuple[list[str], set[str]]] = []
    if pair:
        targets.remove("accompaniment")
    if len(targets) >= 2 or (not pair and targets):
        groups.append((targets, {t for t in targets if not (pair and t == "vocals")}))
    if pair:
        groups.append((["vocals", "accompaniment"], {"vocals", "accompaniment"}))
    return [g for g in groups if g[1]]


def _nanmedian(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    finite_or_inf = values[~np.isnan(values)]
    return float(np.median(finite_or_inf)) if finite_or_inf.size else float("nan")


def _silent(signal: np.ndarray) -> bool:
    """museval's test: every sample, summed over channels, is exactly zero."""
    return bool(np.all(np.sum(signal, axis=0) == 0))


PROTOCOLS: dict[str, type[Protocol]] = {cls.name: cls for cls in (PaperProtocol, BssEvalV4Protocol)}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]()
    except KeyError:
        raise SepkitError(f"unknown protocol '{name}'; expected one of {', '.join(PROTOCOLS)}") from None


__all__ = [
    "BACKENDS",
    "METRICS",
    "BssEvalV4Protocol",
    "PROTOCOLS",
    "PaperProtocol",
    "Protocol",
    "ScoringInput",
    "TrackScores",
    "get_protocol",
    "museval_groups",
]
