"""Summaries and tables: mean and median over tracks per test subset and over all, in the layout of
the paper's Table 2 (rows metric x source, columns subsets), and several evaluations side by side.

Statistics use the finite values only (a NaN track, e.g. a silent reference, is left out of that
cell, and ``count`` says how many tracks each cell holds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ..errors import SepkitError
from .results import SUMMARY_FILE, is_track_result, number, read_json

ALL = "All"
STATISTICS = ("mean", "median")


def table_metrics(protocol: str) -> tuple[str, ...]:
    """The rows of a protocol's tables, in order."""
    return ("SDR", "ISR", "SIR", "SAR", "NSDR") if protocol == "bsseval-v4" else ("SDR", "SIR", "SAR", "NSDR")


def summarize(results: Sequence[dict[str, Any]], *, protocol: str, sources: Sequence[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary of track results (the per-track JSON objects): ``subsets[name]`` and ``overall``,
    each with ``tracks``, ``mean``, ``median`` and ``count`` as ``[source][metric]``."""
    metrics = table_metrics(protocol)
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault(str(result.get("subset") or ""), []).append(result)

    def block(items: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"tracks": len(items), "mean": {}, "median": {}, "count": {}}
        for source in sources:
            for key in ("mean", "median", "count"):
                out[key][source] = {}
            for metric in metrics:
                values = np.array([number(r["metrics"].get(source, {}).get(metric)) for r in items], dtype=np.float64)
                finite = values[np.isfinite(values)]
                out["mean"][source][metric] = float(finite.mean()) if finite.size else float("nan")
                out["median"][source][metric] = float(np.median(finite)) if finite.size else float("nan")
                out["count"][source][metric] = int(finite.size)
        return out

    summary: dict[str, Any] = {
        "protocol": protocol,
        "sources": list(sources),
        "metrics": list(metrics),
        "tracks": len(results),
        "subsets": {name: block(items) for name, items in groups.items()},
        "overall": block(list(results)),
    }
    if extra:
        summary.update(extra)
    return summary


def _columns(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``All`` first, then each subset in the order met (a single subset is shown once)."""
    subsets = list(summary.get("subsets", {}).items())
    if len(subsets) == 1:
        return [(subsets[0][0] or ALL, subsets[0][1])]
    return [(ALL, summary["overall"]), *subsets]


def _cell(value: Any) -> str:
    value = number(value)
    if np.isnan(value):
        return "-"
    return f"{value:.2f}"


def summary_table(summary: dict[str, Any], statistic: str = "mean", *, title: str | None = None):
    """A rich Table: rows metric x source, columns All and each subset."""
    if statistic not in STATISTICS:
        raise SepkitError(f"unknown statistic '{statistic}'; use mean or median")
    columns = _columns(summary)
    tracks = ", ".join(f"{name} {block['tracks']}" for name, block in columns)
    table = Table(
        title=title or f"{summary.get('protocol', '?')} protocol, {statistic} over tracks (dB)",
        caption=f"tracks: {tracks}",
    )
    table.add_column("metric")
    table.add_column("source")
    for name, _ in columns:
        table.add_column(name, justify="right")
    for metric in summary.get("metrics", table_metrics(summary.get("protocol", "paper"))):
        for source in summary.get("sources", []):
            row = [metric, source]
            for _, block in columns:
                row.append(_cell(block[statistic].get(source, {}).get(metric)))
            table.add_row(*row)
        table.add_section()
    return table


def print_summary(summary: dict[str, Any], console: Any = None) -> None:
    """Mean and median tables of one evaluation."""
    console = console or Console()
    for statistic in STATISTICS:
        console.print(summary_table(summary, statistic))


# -- several evaluations side by side -------------------------------------------------------------------


def load_summary(folder: str | Path) -> dict[str, Any]:
    """The summary of an evaluation folder: its ``summary.json``, or one rebuilt from its track
    JSON files when the summary is missing (an interrupted run)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SepkitError(f"{folder}: no such evaluation folder")
    summary = read_json(folder / SUMMARY_FILE)
    if summary and "overall" in summary:
        return summary
    results = [r for r in (read_json(p) for p in sorted(folder.glob("*.json"))) if is_track_result(r)]
    if not results:
        raise SepkitError(f"{folder}: no {SUMMARY_FILE} and no track results (run `sepkit evaluate` first)")
    protocols = {r.get("protocol") for r in results}
    if len(protocols) > 1:
        raise SepkitError(f"{folder}: track results of several protocols ({', '.join(sorted(map(str, protocols)))})")
    sources = list(dict.fromkeys(s for r in results for s in r["metrics"]))
    return summarize(results, protocol=str(protocols.pop()), sources=sources)


def labels_for(folders: Sequence[Path]) -> list[str]:
    """Short distinct labels: the folder name, or its parent's for folders named ``evaluation``."""
    labels = []
    for folder in folders:
        folder = Path(folder).resolve()
        label = folder.parent.name if folder.name.startswith("evaluation") and folder.parent.name else folder.name
        labels.append(label)
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if labels.count(label) == 1 else f"{label}#{seen[label]}")
    return unique


def comparison_table(summaries: Sequence[dict[str, Any]], labels: Sequence[str], statistic: str = "mean"):
    """Rows metric x source; for each subset (All first) one column per evaluation, like the
    paper's Table 2 (baseline, V, VA under each test set)."""
    if statistic not in STATISTICS:
        raise SepkitError(f"unknown statistic '{statistic}'; use mean or median")
    protocols = {s.get("protocol") for s in summaries}
    if len(protocols) > 1:
        raise SepkitError(
            "cannot compare evaluations of different protocols: "
            + ", ".join(f"{label}: {s.get('protocol')}" for label, s in zip(labels, summaries))
        )
    protocol = protocols.pop() if protocols else "paper"
    subset_names: list[str] = []
    for summary in summaries:
        for name, _ in _columns(summary):
            if name not in subset_names:
                subset_names.append(name)
    sources = list(dict.fromkeys(s for summary in summaries for s in summary.get("sources", [])))
    table = Table(title=f"{protocol} protocol, {statistic} over tracks (dB)")
    table.add_column("metric")
    table.add_column("source")
    for subset in subset_names:
        for label in labels:
            table.add_column(f"{subset}\n{label}", justify="right")
    for metric in table_metrics(str(protocol)):
        for source in sources:
            row = [metric, source]
            for subset in subset_names:
                for summary in summaries:
                    block = dict(_columns(summary)).get(subset)
                    row.append(_cell(block[statistic].get(source, {}).get(metric)) if block else "")
            table.add_row(*row)
        table.add_section()
    return table


def compare(folders: Iterable[str | Path], *, statistic: str = "mean", console: Any = None) -> list[dict[str, Any]]:
    """Print several evaluations side by side; returns their summaries."""
    folders = [Path(f) for f in folders]
    if not folders:
        raise SepkitError("--compare needs at least one evaluation folder")
    summaries = [load_summary(folder) for folder in folders]
    labels = labels_for(folders)
    (console or Console()).print(comparison_table(summaries, labels, statistic))
    return [{"label": label, "folder": str(folder), **summary} for label, folder, summary in zip(labels, folders, summaries)]


__all__ = [
    "ALL",
    "compare",
    "comparison_table",
    "labels_for",
    "load_summary",
    "print_summary",
    "summarize",
    "summary_table",
    "table_metrics",
]
