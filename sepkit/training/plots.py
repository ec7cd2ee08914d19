"""PNG plots of training curves (matplotlib's object API: no display, no global backend change)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from ..io import AtomicFile


def plot_training_curves(metrics: list[dict[str, Any]], validation: list[dict[str, Any]], path: Path, *, title: str = "") -> None:
    """Loss terms, critics' divergence estimates and validation, one panel each."""
    steps = [m for m in metrics if "event" not in m]
    divergence_keys = sorted({k for m in steps for k in m if k.startswith("divergence.")})
    panels = 1 + bool(divergence_keys) + bool(validation)
    fig = Figure(figsize=(8, 3 * panels))
    axes = list(fig.subplots(panels, 1, squeeze=False)[:, 0])
    x = [m["step"] for m in steps]
    _loss_panel(axes[0], x, steps)
    if divergence_keys:
        _divergence_panel(axes[1], x, steps, divergence_keys)
    if validation:
        _validation_panel(axes[-1], validation)
    axes[-1].set_xlabel("separator updates")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _loss_panel(ax: Any, x: list[int], steps: list[dict[str, Any]]) -> None:
    """The separator's loss terms; the adversarial term has its own scale and sign (a critic's
    score): its own axis, on the right, so that it does not flatten the supervised loss and the
    additive penalty."""
    loss_keys = sorted({k for m in steps for k in m if k.startswith("loss.") and k.count(".") == 1})
    signed = [k for k in loss_keys if k == "loss.adversarial"]
    positive = [k for k in loss_keys if k not in signed]
    for key in positive:
        ax.plot(x, [m.get(key) for m in steps], label=key.removeprefix("loss."))
    ax.set_yscale("log" if all((m.get(k) or 1) > 0 for m in steps for k in positive) else "linear")
    ax.set_ylabel("separator loss terms")
    handles, labels = ax.get_legend_handles_labels()
    if signed:
        right = ax.twinx()
        for key in signed:
            (line,) = right.plot(x, [m.get(key) for m in steps], color="tab:gray", alpha=0.6, linewidth=0.8)
            handles.append(line)
            labels.append(f"{key.removeprefix('loss.')} (right axis)")
        right.set_ylabel("adversarial term")
    ax.legend(handles, labels, fontsize=8)


def _divergence_panel(ax: Any, x: list[int], steps: list[dict[str, Any]], keys: list[str]) -> None:
    """The critics' divergence estimates, and what alpha effectively was (balanced weighting,
    warm-up) on its own axis."""
    for key in keys:
        ax.plot(x, [m.get(key) for m in steps], label=key.removeprefix("divergence."))
    ax.set_ylabel("divergence estimate")
    handles, labels = ax.get_legend_handles_labels()
    if any("adversarial_weight" in m for m in steps):
        right = ax.twinx()
        (line,) = right.plot(x, [m.get("adversarial_weight") for m in steps], ":", color="black", linewidth=1)
        right.set_yscale("log" if all((m.get("adversarial_weight") or 1) > 0 for m in steps) else "linear")
        right.set_ylabel("adversarial weight")
        handles.append(line)
        labels.append("adversarial weight (right axis)")
    ax.legend(handles, labels, fontsize=8)


def _validation_panel(ax: Any, validation: list[dict[str, Any]]) -> None:
    """Validation loss (left) and every source's simple SDR (right), in the recipe's order, in
    colours after the loss's so that no source shares its colour."""
    scored = [v for v in validation if "loss" in v]
    vx = [v["step"] for v in scored]
    ax.plot(vx, [v["loss"] for v in scored], "o-", label="validation loss")
    ax.set_ylabel("validation loss")
    twin = ax.twinx()
    sources = list(dict.fromkeys(s for v in validation for s in (v.get("sdr") or {})))
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, source in enumerate(sources):
        twin.plot(vx, [(v.get("sdr") or {}).get(source) for v in scored], "--",
                  color=colours[(i + 1) % len(colours)], label=f"SDR {source}")
    twin.set_ylabel("simple SDR (dB)")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8)


def save_figure(fig: Any, path: Path, *, dpi: int) -> None:
    """Write a matplotlib figure as PNG atomically (a temporary file, then a rename), then close it:
    a plot being rewritten at every epoch end is never seen half-written."""
    try:
        with AtomicFile(path) as handle:
            fig.savefig(handle, dpi=dpi, format="png")
    finally:
        if fig.canvas.manager is not None:  # a pyplot figure: pyplot holds it until it is closed
            import matplotlib.pyplot as plt  # already imported by whoever made the figure

            plt.close(fig)
