"""Loading a role's datasets into memory: ``[S, C, L]`` float32 per track, stems in a fixed order.

Each file is decoded, channel-mapped and resampled once (and kept in the disk cache, see
:mod:`sepkit.data.cache`); the stems of a track are then assembled as signed sums of files
(:mod:`sepkit.data.derive`), trimmed to a common length and clipped.

Problems with single tracks (an unreadable, truncated or NaN file, a stem that cannot be derived,
stems of very different lengths) are reported in :attr:`LoadResult.failed` and the track is
skipped; a dataset none of whose tracks loads is an error naming its root. Silent stems and stems
recorded at different sample rates are kept and reported in :attr:`LoadResult.warnings`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import AudioError, is_silent
from ..dataset import Dataset, DatasetError, Track
from .cache import AudioCache, FileAudio, default_cache_dir
from .derive import resolve_stems
from .tracks import StemPart, TrackAudio

log = logging.getLogger("sepkit.data")

#: Stems of one track whose lengths (after resampling) differ by at most this much are trimmed to
#: the shortest; larger differences mean the stems do not belong together.
LENGTH_TOLERANCE_SECONDS = 0.1


@dataclass
class LoadedTrack:
    """One track: ``audio`` is float32 ``[S, C, L]`` with stems in the requested order (in memory, or
    a :class:`~sepkit.data.tracks.TrackAudio` reading from the audio cache when loaded lazily)."""

    name: str
    subset: str
    audio: np.ndarray | TrackAudio
    dataset: str = ""

    @property
    def num_samples(self) -> int:
        return int(self.audio.shape[-1])


@dataclass
class LoadResult:
    """Loaded tracks, and what could not be used (``failed``: ``(path, reason)``, one per skipped track)."""

    tracks: list[LoadedTrack]
    stems: list[str]
    sample_rate: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    cache_hits: int = 0
    cache_misses: int = 0

    @property
    def seconds(self) -> float:
        return sum(t.num_samples for t in self.tracks) / self.sample_rate


def load_tracks(
    datasets: Sequence[Dataset],
    *,
    stems: list[str],
    sample_rate: int,
    channels: int,
    clip: bool = True,
    cache_dir: Path | str | None = None,
    use_cache: bool = True,
    progress: bool = False,
    length_tolerance: float = LENGTH_TOLERANCE_SECONDS,
    lazy: bool = False,
) -> LoadResult:
    """Load every track of ``datasets`` with the stems ``stems`` (e.g. ``["mixture", "accompaniment",
    "vocals"]``), at ``sample_rate`` with ``channels`` channels, clipped to [-1, 1] when ``clip``.

    ``cache_dir=None`` uses :func:`~sepkit.data.cache.default_cache_dir`; ``use_cache=False``
    decodes everything and writes nothing. ``lazy=True`` leaves every track's stems in the audio
    cache (:class:`~sepkit.data.tracks.TrackAudio`, read on demand; without a writable cache the
    decoded files stay in memory) instead of assembling them in memory. Tracks come dataset by
    dataset, each in its dataset's order. Raises :class:`DatasetError` for a dataset that cannot be listed or of which no track loads.
    """
    cache = AudioCache((Path(cache_dir) if cache_dir is not None else default_cache_dir()) if use_cache else None)
    result = LoadResult(tracks=[], stems=list(stems), sample_rate=int(sample_rate))
    listed = [(dataset, dataset.tracks()) for dataset in datasets]
    total = sum(len(tracks) for _, tracks in listed)
    with _Progress(total, enabled=progress) as bar:
        for dataset, tracks in listed:
            loaded_before = len(result.tracks)
            first_failure: tuple[str, str] | None = None
            for track in tracks:
                bar.describe(f"{dataset.name}: {track.name}")
                try:
                    audio, warnings = _load_track(
                        track, stems, dataset.sources, cache, sample_rate, channels, clip, length_tolerance, lazy
                    )
                except AudioError as exc:
                    failure = (exc.path, exc.reason)
                except DatasetError as exc:
                    failure = (_track_location(track), str(exc))
                else:
                    result.tracks.append(LoadedTrack(track.name, track.subset or dataset.name, audio, dataset.name))
                    result.warnings += warnings
                    bar.advance()
                    continue
                result.failed.append(failure)
                result.skipped += 1
                first_failure = first_failure or failure
                log.warning("skipping track '%s' of %s: %s: %s", track.name, dataset.name, *failure)
                bar.advance()
            if len(result.tracks) == loaded_before:
                reason = f"; first problem: {first_failure[0]}: {first_failure[1]}" if first_failure else ""
                raise DatasetError(
                    f"dataset '{dataset.name}' at {dataset.location or dataset.name}: none of its {len(tracks)} track(s) could be loaded{reason}"
                )
    for path, reason in result.warnings:
        log.warning("%s: %s", path, reason)
    result.cache_hits, result.cache_misses = cache.hits, cache.misses
    return result


def _track_location(track: Track) -> str:
    if track.metadata.get("path"):
        return track.metadata["path"]
    for files in track.stems.values():
        for stem_file in files:
            return str(Path(stem_file.path).parent)
    return track.name


def _load_track(
    track: Track,
    stems: list[str],
    sources: list[str],
    cache: AudioCache,
    sample_rate: int,
    channels: int,
    clip: bool,
    tolerance_seconds: float,
    lazy: bool = False,
) -> tuple[np.ndarray | TrackAudio, list[tuple[str, str]]]:
    """``[S, C, L]`` for one track (a :class:`TrackAudio` when ``lazy``), plus warnings ``(path, reason)``."""
    plan = resolve_stems(track, stems, sources)
    files: dict[tuple[str, int | None], FileAudio] = {}
    for stem_files in plan.values():
        for stem_file in stem_files:
            key = (str(stem_file.path), stem_file.channel)
            if key not in files:
                files[key] = cache.load(Path(stem_file.path), channel=stem_file.channel, sample_rate=sample_rate, channels=channels)
    if not files:
        raise DatasetError(f"track '{track.name}': none of the stems {stems} has a file")
    warnings = _check_consistency(track, files, channels)
    length = _common_length(track, files, sample_rate, tolerance_seconds)
    audio = TrackAudio(
        [[StemPart(files[(str(f.path), f.channel)].audio, f.gain) for f in plan[stem]] for stem in stems],
        channels=channels, length=length, clip=clip,
    )
    out: np.ndarray | TrackAudio = audio
    if lazy:
        silent = audio.silent_stems()
    else:
        out = audio.materialise()
        silent = [is_silent(out[index]) for index in range(len(stems))]
    for stem, stem_silent in zip(stems, silent):
        stem_files = plan[stem]
        if stem_files and stem_silent:
            where = str(stem_files[0].path) if len(stem_files) == 1 else f"track '{track.name}'"
            warnings.append((where, f"stem '{stem}' is silent"))
    return out, warnings


def _check_consistency(
    track: Track, files: dict[tuple[str, int | None], FileAudio], channels: int
) -> list[tuple[str, str]]:
    """Sample rates may differ between the files of a track (each is resampled: a warning); channel
    counts may not when the models keep several channels (mixture - vocals would mix layouts)."""
    warnings: list[tuple[str, str]] = []
    rates = {key: entry.info.sample_rate for key, entry in files.items()}
    if len(set(rates.values())) > 1:
        first_key = next(iter(rates))
        for key, rate in rates.items():
            if rate != rates[first_key]:
                warnings.append(
                    (key[0], f"recorded at {rate} Hz while {Path(first_key[0]).name} of the same track is at "
                             f"{rates[first_key]} Hz; both were resampled")
                )
    if channels > 1:
        counts = {key: (1 if key[1] is not None else entry.info.channels) for key, entry in files.items()}
        if len(set(counts.values())) > 1:
            first_key = next(iter(counts))
            odd = next(key for key, count in counts.items() if count != counts[first_key])
            raise AudioError(
                odd[0],
                f"has {counts[odd]} channel(s) but {Path(first_key[0]).name} of the same track "
                f"'{track.name}' has {counts[first_key]}; stems of one track must share a channel layout",
            )
    return warnings


def _common_length(
    track: Track, files: dict[tuple[str, int | None], FileAudio], sample_rate: int, tolerance_seconds: float
) -> int:
    lengths = {key: int(entry.audio.shape[-1]) for key, entry in files.items()}
    shortest = min(lengths, key=lengths.__getitem__)
    longest = max(lengths, key=lengths.__getitem__)
    difference = lengths[longest] - lengths[shortest]
    if difference > tolerance_seconds * sample_rate:
        raise AudioError(
            longest[0],
            f"is {difference / sample_rate:.2f} s longer than {Path(shortest[0]).name} of the same track "
            f"'{track.name}' (more than the {tolerance_seconds} s tolerated); the stems do not line up",
        )
    return lengths[shortest]


class _Progress:
    """A rich progress bar when enabled; a no-op otherwise."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.enabled = enabled and total > 0
        self.total = total

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.progress import Progress

            self._progress = Progress(transient=True)
            self._progress.start()
            self._task = self._progress.add_task("loading audio", total=self.total)
        return self

    def describe(self, text: str) -> None:
        if self.enabled:
            self._progress.update(self._task, description=text[:60])

    def advance(self) -> None:
        if self.enabled:
            self._progress.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._progress.stop()


__all__ = ["LENGTH_TOLERANCE_SECONDS", "LoadResult", "LoadedTrack", "load_tracks"]
