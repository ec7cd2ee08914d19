"""``sepkit report``: the runs of an experiment folder summarised over seeds.

A run is any folder holding a ``recipe.resolved.toml`` (what ``sepkit run`` writes per variant, or
per variant and seed with ``--seeds``); the runs must all be of one recipe (``experiment.json`` at
the top of a run folder names it). Runs are grouped by variant (the folder name, or its
parent's for ``seed-<n>`` folders); each test score of a run is its mean over tracks, and a
variant's cell is the mean and the sample standard deviation of those over its seeds. Differences
against a reference variant are paired by seed, so that a seed's luck in the data order does not
count twice.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SepkitError
from .experiment import EXPERIMENT, RESOLVED, SEED_FOLDER
from .training.journal import read_jsonl
from .training.selection import RULES

SEED_PATTERN = re.compile("^" + SEED_FOLDER.format(r"(\d+)") + "$")
ALL = "All"


@dataclass
class RunRecord:
    """One trained (and maybe evaluated) run."""

    variant: str
    seed: int
    folder: Path
    epochs: int
    best_epoch: int | None
    train_seconds: float
    validation_seconds: float
    finished: bool
    scores: dict[str, dict[str, dict[str, float]]] | None  # subset -> source -> metric -> mean over tracks
    tracks: dict[str, int] = field(default_factory=dict)
    protocol: str | None = None

    @property
    def wall_seconds(self) -> float:
        return self.train_seconds + self.validation_seconds


def read_run(folder: Path, evaluation: str = "evaluation") -> RunRecord:
    """The record of one run folder (training log, resolved recipe, evaluation summary). ``evaluation``
    names the scores' folder: ``evaluation`` (the selected model) or ``evaluation-<rule>``."""
    try:
        recipe = tomllib.loads((folder / RESOLVED).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SepkitError(f"{folder / RESOLVED}: unreadable ({exc})") from None
    match = SEED_PATTERN.match(folder.name)
    variant = folder.parent.name if match else folder.name
    training = recipe.get("training", {})
    validation = read_jsonl(folder / "validation.jsonl")
    best = [r["epoch"] for r in validation if r.get("best")]
    epochs = max((r["epoch"] for r in validation), default=0)
    max_epochs = int(training.get("max_epochs", 1000))
    stopped = bool(validation) and bool(training.get("early_stopping", True)) and (
        validation[-1].get("bad_epochs", 0) > int(training.get("patience", 6))
    )
    scores, tracks, protocol = None, {}, None
    summary_path = folder / evaluation / "summary.json"
    if summary_path.exists():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            protocol = summary.get("protocol")
            blocks = {ALL: summary["overall"], **summary.get("subsets", {})}
            scores = {name: block["mean"] for name, block in blocks.items()}
            tracks = {name: int(block.get("tracks", 0)) for name, block in blocks.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SepkitError(f"{summary_path}: not an evaluation summary ({type(exc).__name__}: {exc})") from None
    return RunRecord(
        variant=variant,
        seed=int(training.get("seed", 0)),
        folder=folder,
        epochs=epochs,
        best_epoch=best[-1] if best else None,
        train_seconds=float(sum(r.get("seconds", 0.0) for r in validation)),
        validation_seconds=float(sum(r.get("validation_seconds", 0.0) for r in validation)),
        finished=epochs >= max_epochs or stopped,
        scores=scores,
        tracks=tracks,
        protocol=protocol,
    )


def find_runs(root: str | Path, evaluation: str = "evaluation") -> list[RunRecord]:
    """Every run under ``root`` (itself included), sorted by variant order of appearance and seed."""
    root = Path(root)
    if not root.is_dir():
        raise SepkitError(f"{root}: no such run folder")
    folders = sorted({p.parent for p in root.rglob(RESOLVED)})
    if not folders:
        raise SepkitError(f"{root}: holds no runs (no {RESOLVED} below it); train with `sepkit run` first")
    check_one_recipe(root, folders)
    return sorted((read_run(f, evaluation) for f in folders), key=lambda r: (r.variant, r.seed))


def selection_rules(root: str | Path, *, reference: str | None, order: list[str] | None) -> dict[str, dict[str, Any]]:
    """One report per model-selection rule whose models were scored (``evaluation-<rule>/``, written
    by ``sepkit run``): what each rule would have given on the test set."""
    reports = {}
    for rule in RULES:
        runs = [r for r in find_runs(root, f"evaluation-{rule}") if r.scores]
        if runs:
            names = {r.variant for r in runs}
            reports[rule] = aggregate(runs, reference=reference if reference in names else None, order=order)
    return reports


def selection_rows(reports: dict[str, dict[str, Any]], subset: str, metric: str = "SDR") -> tuple[list[str], list[list[str]]]:
    """Variant x rule rows: each source's score (mean ± std over seeds) and its seed-paired difference
    to the reference under the same rule."""
    sources: list[str] = []
    for report in reports.values():
        for entry in report["variants"].values():
            for source in entry["scores"].get(subset, {}):
                if source not in sources:
                    sources.append(source)
    header = ["variant", "selection", *[f"{metric} {s}" for s in sources], *[f"minus reference, {s}" for s in sources]]
    rows = []
    names = list(dict.fromkeys(n for report in reports.values() for n in report["variants"]))
    for name in names:
        for rule, report in reports.items():
            entry = report["variants"].get(name)
            if entry is None:
                continue
            scores = [_cell(entry["scores"].get(subset, {}).get(s, {}).get(metric)) for s in sources]
            diffs = [_cell((entry.get("difference") or {}).get(subset, {}).get(s, {}).get(metric), signed=True) for s in sources]
            rows.append([f"{name} ({len(entry['evaluated_seeds'])})", rule, *scores, *diffs])
    return header, rows


def _recipe_of(folder: Path, root: Path) -> tuple[str, str]:
    """(recipe name, the experiment record it sits under) of one run folder."""
    try:
        name = str(tomllib.loads((folder / RESOLVED).read_text(encoding="utf-8")).get("name", "?"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SepkitError(f"{folder / RESOLVED}: unreadable ({exc})") from None
    for parent in (folder, *folder.parents):
        record = parent / EXPERIMENT
        if record.is_file():
            try:
                return name, json.dumps(json.loads(record.read_text(encoding="utf-8")).get("identity"), sort_keys=True)
            except (OSError, ValueError, AttributeError) as exc:
                raise SepkitError(f"{record}: unreadable ({type(exc).__name__}: {exc})") from None
        if parent == root or root not in parent.parents:
            break
    return name, ""


def check_one_recipe(root: Path, folders: list[Path]) -> None:
    """Averages over runs of different recipes mean nothing: refuse a folder that mixes them."""
    groups: dict[tuple[str, str], list[Path]] = {}
    for folder in folders:
        groups.setdefault(_recipe_of(folder, root), []).append(folder)
    if len(groups) > 1:
        described = "; ".join(
            f"recipe '{name}'{' (another version)' if [n for n, _ in groups].count(name) > 1 else ''}: "
            f"{len(runs)} run(s), e.g. {runs[0]}"
            for (name, _), runs in groups.items()
        )
        raise SepkitError(
            f"{root} holds the runs of {len(groups)} different recipes ({described}); report each recipe's folder on its own"
        )


def _mean_std(values: list[float]) -> tuple[float, float]:
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return math.nan, math.nan
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else math.nan


def aggregate(runs: list[RunRecord], *, reference: str | None = None, order: list[str] | None = None) -> dict[str, Any]:
    """Per variant: seeds, wall time and, for each subset/source/metric, mean and std over seeds; and
    with ``reference``, the seed-paired differences to that variant."""
    variants: dict[str, list[RunRecord]] = {}
    for run in runs:
        variants.setdefault(run.variant, []).append(run)
    names = [v for v in (order or []) if v in variants] + sorted(v for v in variants if v not in (order or []))
    if reference is not None and reference not in variants:
        raise SepkitError(f"reference variant '{reference}' has no runs here; variants: {', '.join(names)}")
    protocols = {r.protocol for r in runs if r.protocol}
    if len(protocols) > 1:
        raise SepkitError(f"runs were evaluated with different protocols: {', '.join(sorted(protocols))}")
    out: dict[str, Any] = {"protocol": protocols.pop() if protocols else None, "reference": reference, "variants": {}}
    for name in names:
        group = variants[name]
        evaluated = [r for r in group if r.scores]
        entry: dict[str, Any] = {
            "seeds": [r.seed for r in group],
            "evaluated_seeds": [r.seed for r in evaluated],
            "unfinished_seeds": [r.seed for r in group if not r.finished],
            "wall_minutes": _mean_std([r.wall_seconds / 60 for r in group]),
            "epochs": _mean_std([float(r.epochs) for r in group]),
            "tracks": evaluated[0].tracks if evaluated else {},
            "scores": _scores(evaluated, lambda run, subset, source, metric: run.scores[subset][source][metric]),
        }
        if reference is not None and name != reference:
            by_seed = {r.seed: r for r in variants[reference] if r.scores}
            paired = [(r, by_seed[r.seed]) for r in evaluated if r.seed in by_seed]
            entry["paired_seeds"] = [r.seed for r, _ in paired]
            entry["difference"] = _scores(
                [r for r, _ in paired],
                lambda run, subset, source, metric: run.scores[subset][source][metric]
                - by_seed[run.seed].scores.get(subset, {}).get(source, {}).get(metric, math.nan),
            )
        out["variants"][name] = entry
    return out


def _scores(runs: list[RunRecord], value) -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
    result: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    if not runs:
        return result
    for subset, sources in runs[0].scores.items():
        for source, metrics in sources.items():
            for metric in metrics:
                values = []
                for run in runs:
                    try:
                        values.append(float(value(run, subset, source, metric)))
                    except (KeyError, TypeError):
                        values.append(math.nan)
                result.setdefault(subset, {}).setdefault(source, {})[metric] = _mean_std(values)
    return result


def _cell(pair: tuple[float, float] | None, signed: bool = False) -> str:
    if pair is None or not math.isfinite(pair[0]):
        return "-"
    mean, std = pair
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return text if not math.isfinite(std) else f"{text} ± {std:.2f}"


def _count(pair: tuple[float, float]) -> str:
    """Epochs: a whole number when every seed ran as many."""
    mean, std = pair
    if not math.isfinite(mean):
        return "-"
    return f"{mean:g}" if not math.isfinite(std) or std == 0 else f"{mean:.1f} ± {std:.1f}"


def table_rows(report: dict[str, Any], subset: str, *, key: str = "scores", metrics: tuple[str, ...] = ("SDR", "SIR", "SAR")) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one subset in the layout of the paper's Table 2 (metric x source rows)."""
    names = [n for n, e in report["variants"].items() if e.get(key)]
    sources: list[str] = []
    for name in names:
        for source in report["variants"][name][key].get(subset, {}):
            if source not in sources:
                sources.append(source)
    header = ["metric", *[f"{name} ({len(report['variants'][name]['evaluated_seeds' if key == 'scores' else 'paired_seeds'])})" for name in names]]
    rows = []
    for metric in metrics:
        for source in sources:
            row = [f"{metric} {source}"]
            for name in names:
                pair = report["variants"][name][key].get(subset, {}).get(source, {}).get(metric)
                row.append(_cell(pair, signed=key == "difference"))
            rows.append(row)
    return header, rows


def subsets(report: dict[str, Any]) -> list[str]:
    """All first, then each test subset; a single subset is shown once, under its own name."""
    found: list[str] = []
    for entry in report["variants"].values():
        for name in entry["scores"]:
            if name not in found:
                found.append(name)
    return [name for name in found if name != ALL] if len(found) == 2 else found


def _has_differences(report: dict[str, Any]) -> bool:
    return any(e.get("difference") for e in report["variants"].values())


def markdown(report: dict[str, Any], *, metrics: tuple[str, ...] = ("SDR", "SIR", "SAR")) -> str:
    """Markdown tables: scores per subset (All first), seed-paired differences, wall time."""
    lines: list[str] = []

    def table(header: list[str], rows: list[list[str]]) -> None:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines.extend("| " + " | ".join(row) + " |" for row in rows)
        lines.append("")

    for subset in subsets(report):
        tracks = next((e["tracks"].get(subset) for e in report["variants"].values() if e["tracks"].get(subset)), "?")
        lines.append(f"**{subset}** ({tracks} tracks; mean over tracks, then mean ± std over seeds, dB; (n) = seeds)")
        lines.append("")
        table(*table_rows(report, subset, metrics=metrics))
        if _has_differences(report):
            lines.append(f"Difference to `{report['reference']}`, paired by seed ({subset}):")
            lines.append("")
            table(*table_rows(report, subset, key="difference", metrics=metrics))
    for subset in subsets(report) if report.get("selection") else []:
        lines.append(f"**Model selection** ({subset}: SDR of the model each rule keeps; mean ± std over seeds, dB, "
                     f"and minus `{report['reference']}` under the same rule, paired by seed)")
        lines.append("")
        table(*selection_rows(report["selection"], subset))
    header = ["variant", "seeds", "epochs", "wall time per seed (min)"]
    rows = [
        [name, ", ".join(map(str, e["seeds"])) + (f" (unfinished: {', '.join(map(str, e['unfinished_seeds']))})" if e["unfinished_seeds"] else ""),
         _count(e["epochs"]), _cell(e["wall_minutes"])]
        for name, e in report["variants"].items()
    ]
    table(header, rows)
    return "\n".join(lines)


def rich_tables(report: dict[str, Any], *, metrics: tuple[str, ...] = ("SDR", "SIR", "SAR")) -> list[Any]:
    from rich.table import Table

    tables = []
    for subset in subsets(report):
        for key, title in (("scores", "mean ± std over seeds (dB)"), ("difference", f"minus {report.get('reference')}, paired by seed (dB)")):
            if key == "difference" and not _has_differences(report):
                continue
            header, rows = table_rows(report, subset, key=key, metrics=metrics)
            table = Table(title=f"{subset}: {title}")
            for i, column in enumerate(header):
                table.add_column(column, justify="left" if i == 0 else "right")
            for row in rows:
                table.add_row(*row)
            tables.append(table)
    for subset in subsets(report) if report.get("selection") else []:
        header, rows = selection_rows(report["selection"], subset)
        table = Table(title=f"{subset}: model selection (SDR of each rule's model, dB)")
        for i, column in enumerate(header):
            table.add_column(column, justify="left" if i < 2 else "right")
        for row in rows:
            table.add_row(*row)
        tables.append(table)
    table = Table(title="runs")
    for column in ("variant", "seeds", "unfinished", "epochs", "wall min/seed"):
        table.add_column(column)
    for name, e in report["variants"].items():
        table.add_row(name, ", ".join(map(str, e["seeds"])), ", ".join(map(str, e["unfinished_seeds"])) or "-",
                      _count(e["epochs"]), _cell(e["wall_minutes"]))
    tables.append(table)
    return tables


def to_json(report: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe: (mean, std) pairs as objects, NaN as null."""

    def clean(value: Any) -> Any:
        if isinstance(value, tuple) and len(value) == 2:
            return {"mean": clean(value[0]), "std": clean(value[1])}
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(report)


__all__ = ["RunRecord", "aggregate", "find_runs", "markdown", "read_run", "rich_tables", "selection_rules", "to_json"]
