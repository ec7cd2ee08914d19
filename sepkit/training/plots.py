"""PNG plots of training curves (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_training_curves(metrics: list[dict[str, Any]], validation: list[dict[str, Any]], path: Path, *, title: str = "") -> None:
    """Loss terms, critics' divergence estimates and validation, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [m for m in metrics if "event" not in m]
    loss_keys = sorted({k for m in steps for k in m if k.startswith("loss.") and k.count(".") == 1})
    divergence_keys = sorted({k for m in steps for k in m if k.startswith("divergence.")})
    panels = 1 + bool(divergence_keys) + bool(validation)
    fig, axes = plt.subplots(panels, 1, figsize=(8, 3 * panels), squeeze=False)
    axes = axes[:, 0]
    x = [m["step"] for m in steps]
    ax = axes[0]
    # The adversarial term has its own scale and sign (a critic's score): its own axis, on the right,
    # so that it does not flatten the supervised loss and the additive penalty.
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
    index = 1
    if divergence_keys:
        ax = axes[index]
        index += 1
        for key in divergence_keys:
            ax.plot(x, [m.get(key) for m in steps], label=key.removeprefix("divergence."))
        ax.set_ylabel("divergence estimate")
        handles, labels = ax.get_legend_handles_labels()
        if any("adversarial_weight" in m for m in steps):
            # what alpha effectively was (balanced weighting, warm-up): on its own axis
            right = ax.twinx()
            (line,) = right.plot(x, [m.get("adversarial_weight") for m in steps], ":", color="black", linewidth=1)
            right.set_yscale("log" if all((m.get("adversarial_weight") or 1) > 0 for m in steps) else "linear")
            right.set_ylabel("adversarial weight")
            handles.append(line)
            labels.append("adversarial weight (right axis)")
        ax.legend(handles, labels, fontsize=8)
    if validation:
        ax = axes[index]
        vx = [v["step"] for v in validation if "loss" in v]
        ax.plot(vx, [v["loss"] for v in validation if "loss" in v], "o-", label="validation loss")
        ax.set_ylabel("validation loss")
        twin = ax.twinx()
        # every source, in the recipe's order; colours after the loss's, so no source shares its colour
        sources = list(dict.fromkeys(s for v in validation for s in (v.get("sdr") or {})))
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, source in enumerate(sources):
            twin.plot(vx, [(v.get("sdr") or {}).get(source) for v in validation if "loss" in v], "--",
                      color=colours[(i + 1) % len(colours)], label=f"SDR {source}")
        twin.set_ylabel("simple SDR (dB)")
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8)
    axes[-1].set_xlabel("separator updates")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def save_figure(fig: Any, path: Path, *, dpi: int) -> None:
    """Write a matplotlib figure as PNG atomically (a temporary file, then a rename), then close it:
    a plot being rewritten at every epoch end is never seen half-written."""
    import matplotlib.pyplot as plt

    from ..io import AtomicFile

    try:
        with AtomicFile(path) as handle:
            fig.savefig(handle, dpi=dpi, format="png")
    finally:
        plt.close(fig)
