"""``sepkit report --plot``: the variants of an experiment folder side by side over training.

One figure, one panel per quantity against separator updates: validation loss, the validation's
simple SDR of each source (in the recipe's source order), and every critic's divergence estimate
(smoothed), in two columns when there are more than three (a four-stem recipe with two critics has
seven). One line per variant, the mean over its seeds, with the seeds' range shaded, so that a gain
that one lucky seed makes is visible as such.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .report import RESOLVED, RunRecord
from .training.plots import save_figure

VALIDATION_LOSS = "validation loss"
SDR_PREFIX = "validation SDR "
#: Points averaged in the (noisy, per-update) divergence curves.
DIVERGENCE_SMOOTHING = 5


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _curves(runs: list[RunRecord]) -> dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]]:
    """variant -> curve name -> one (steps, values) per seed."""
    out: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {}
    for run in runs:
        curves = out.setdefault(run.variant, {})
        validation = [r for r in _read(run.folder / "validation.jsonl") if r.get("loss") is not None]
        if validation:
            steps = np.array([r["step"] for r in validation], dtype=float)
            curves.setdefault(VALIDATION_LOSS, []).append((steps, np.array([r["loss"] for r in validation], dtype=float)))
            for source in validation[0].get("sdr", {}):
                values = np.array([r["sdr"].get(source, np.nan) for r in validation], dtype=float)
                curves.setdefault(f"{SDR_PREFIX}{source} (dB)", []).append((steps, values))
        metrics = [m for m in _read(run.folder / "metrics.jsonl") if "event" not in m]
        divergence = _divergence_type(run.folder)  # estimates of different divergences share no scale
        for key in sorted({k for m in metrics for k in m if k.startswith("divergence.")}):
            points = [(m["step"], m[key]) for m in metrics if isinstance(m.get(key), (int, float))]
            if points:
                steps, values = (np.array(v, dtype=float) for v in zip(*points))
                name = f"{divergence} estimate, {key.removeprefix('divergence.')} critic"
                curves.setdefault(name, []).append((steps, values))
    return out


def _divergence_type(folder: Path) -> str:
    import tomllib

    try:
        recipe = tomllib.loads((folder / RESOLVED).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return "divergence"
    return str(recipe.get("divergence", {}).get("type", "divergence"))


def _panel_group(name: str) -> int:
    """Validation loss first, then the SDRs, then the divergences (each group in order of appearance)."""
    return 0 if name == VALIDATION_LOSS else 1 if name.startswith(SDR_PREFIX) else 2


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or values.size < width:
        return values
    kernel = np.ones(width) / width
    padded = np.concatenate([np.full(width - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def plot_report(runs: list[RunRecord], path: Path, *, order: list[str] | None = None, title: str = "") -> None:
    """Write the PNG (atomically: a temporary file, then a rename)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = _curves(runs)
    names = [v for v in (order or []) if v in curves] + sorted(v for v in curves if v not in (order or []))
    # every panel is one quantity: validation loss, an SDR, or one divergence's estimates; the sort
    # is stable, so the sources keep the recipe's order
    panels = sorted(dict.fromkeys(name for variant in names for name in curves[variant]), key=_panel_group)
    if not panels:
        from .errors import SepkitError

        raise SepkitError("nothing to plot: no run has a validation.jsonl or metrics.jsonl yet")
    columns = 1 if len(panels) <= 3 else 2
    rows = math.ceil(len(panels) / columns)
    fig, grid = plt.subplots(rows, columns, figsize=(9 if columns == 1 else 14, 2.8 * rows), squeeze=False, sharex=True)
    axes = list(grid.flat)
    for unused in axes[len(panels):]:
        unused.set_visible(False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes, panels):
        for i, variant in enumerate(names):
            series = curves[variant].get(panel)
            if not series:
                continue
            smooth = DIVERGENCE_SMOOTHING if _panel_group(panel) == 2 else 1
            length = min(len(s) for s, _ in series)
            steps = series[0][0][:length]
            stack = np.stack([_smooth(v[:length], smooth) for _, v in series])
            colour = colours[i % len(colours)]
            ax.plot(steps, np.nanmean(stack, axis=0), color=colour, label=f"{variant} ({len(series)})")
            if len(series) > 1:
                ax.fill_between(steps, np.nanmin(stack, axis=0), np.nanmax(stack, axis=0), color=colour, alpha=0.15)
        ax.set_ylabel(panel, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    for ax in axes[len(panels) - columns : len(panels)]:  # the lowest panel of each column
        ax.set_xlabel("separator updates")
        ax.xaxis.set_tick_params(labelbottom=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


__all__ = ["plot_report"]
