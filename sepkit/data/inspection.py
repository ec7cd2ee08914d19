"""What a recipe's data roles hold, from file headers (fast) or by decoding (``decode=True``).

For every role and dataset: usable tracks, total duration, sample rates and channel counts found,
and every file or track that cannot be used, with the reason. A dataset that cannot be listed at
all (missing root, empty folder, unknown source) is reported with ``error`` instead of stopping.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..audio import AudioError, AudioInfo, audio_info
from ..dataset import Dataset, Track
from ..errors import SepkitError
from .derive import resolve_stems, role_stems
from .loading import LENGTH_TOLERANCE_SECONDS, load_tracks

if TYPE_CHECKING:
    from ..recipe.schema import DatasetSpec, Recipe


@dataclass
class DatasetReport:
    role: str
    dataset: str
    type: str
    root: str
    tracks: int = 0
    seconds: float = 0.0
    sample_rates: list[int] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.error is None and self.tracks > 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def role_entries(recipe: "Recipe") -> list[tuple[str, str, "DatasetSpec", list[str], str | None]]:
    """``(role label, role, spec, role sources, solo source)`` for every dataset of the recipe."""
    entries = []
    data = recipe.data
    for role in ("paired", "mixtures"):
        entries += [(role, role, spec, list(recipe.sources), None) for spec in getattr(data, role)]
    for source, specs in data.solo.items():
        entries += [(f"solo.{source}", "solo", spec, [source], source) for spec in specs]
    for role in ("validation", "test"):
        entries += [(role, role, spec, list(recipe.sources), None) for spec in getattr(data, role)]
    return entries


def inspect_recipe(recipe: "Recipe", *, decode: bool = False, cache_dir: Path | None = None) -> list[DatasetReport]:
    from ..plugins import registry

    reports = []
    audio = recipe.audio
    for label, role, spec, sources, source in role_entries(recipe):
        report = DatasetReport(role=label, dataset=spec.config.name or spec.type, type=spec.type, root="")
        reports.append(report)
        try:
            dataset = registry("dataset").get(spec.type).cls(spec.config, role=role, sources=sources)
            report.dataset, report.root = dataset.name, dataset.location
            tracks = dataset.tracks()
        except SepkitError as exc:
            report.error = str(exc)
            continue
        stems = role_stems(role, sources, source)
        _inspect_headers(report, dataset, tracks, stems, audio.channels)
        if decode and report.tracks:
            try:
                result = load_tracks([dataset], stems=stems, sample_rate=audio.sample_rate, channels=audio.channels,
                                     clip=audio.clip, cache_dir=cache_dir)
            except SepkitError as exc:
                report.tracks, report.seconds, report.error = 0, 0.0, str(exc)
                continue
            report.tracks, report.seconds = len(result.tracks), round(result.seconds, 3)
            report.failed = [{"path": p, "reason": r} for p, r in result.failed]
            report.warnings = [{"path": p, "reason": r} for p, r in result.warnings]
    return reports


def _inspect_headers(
    report: DatasetReport, dataset: Dataset, tracks: list[Track], stems: list[str], channels: int
) -> None:
    """Header checks the loader would fail on: unreadable/empty/truncated files, underivable stems,
    stems of different lengths or (for multichannel models) different channel layouts."""
    infos: dict[str, AudioInfo | AudioError] = {}
    rates: set[int] = set()
    counts: set[int] = set()
    for track in tracks:
        try:
            plan = resolve_stems(track, stems, dataset.sources)
        except SepkitError as exc:
            report.failed.append({"path": track.metadata.get("path", track.name), "reason": str(exc)})
            continue
        selected = {str(f.path): f.channel for files in plan.values() for f in files}
        paths = sorted(selected)
        problems = []
        lengths = []
        layouts = set()
        for path in paths:
            if path not in infos:
                try:
                    infos[path] = audio_info(path)
                except AudioError as exc:
                    infos[path] = exc
            info = infos[path]
            if isinstance(info, AudioError):
                problems.append({"path": info.path, "reason": info.reason})
            else:
                rates.add(info.sample_rate)
                counts.add(info.channels)
                lengths.append(info.seconds)
                layouts.add(1 if selected[path] is not None else info.channels)
        if not problems and not lengths:
            problems.append({"path": track.metadata.get("path", track.name), "reason": f"track '{track.name}' has no files"})
        if not problems and max(lengths) - min(lengths) > LENGTH_TOLERANCE_SECONDS:
            problems.append({
                "path": track.metadata.get("path", track.name),
                "reason": f"track '{track.name}': stems differ in length by {max(lengths) - min(lengths):.2f} s",
            })
        if not problems and channels > 1 and len(layouts) > 1:
            problems.append({
                "path": track.metadata.get("path", track.name),
                "reason": f"track '{track.name}': stems with different channel counts {sorted(layouts)}",
            })
        if problems:
            report.failed += problems
            continue
        report.tracks += 1
        report.seconds += min(lengths)
    report.seconds = round(report.seconds, 3)
    report.sample_rates = sorted(rates)
    report.channels = sorted(counts)
