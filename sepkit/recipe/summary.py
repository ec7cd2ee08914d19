"""What a recipe's networks are: representation settings, windows and parameter counts per variant."""

from __future__ import annotations

from typing import Any

from ..build import build_critics, build_representation, build_separator
from .load import LoadedRecipe


def summarise(loaded: LoadedRecipe) -> dict[str, Any]:
    """Build every variant's networks (on the CPU, no data) and describe them."""
    variants: dict[str, Any] = {}
    for name, recipe in loaded.variants.items():
        representation = build_representation(recipe)
        separator = build_separator(recipe, representation, initialise=False)  # sizes only: no init file read
        window = separator.window
        fps = representation.frames_per_second
        critics = build_critics(recipe, separator)
        variants[name] = {
            "representation": {"type": recipe.representation.type, **representation.describe()},
            "separator": {
                "type": recipe.separator.type,
                "parameters": separator.num_parameters(),
                "input_shape": [window.input_bins, window.input_frames],
                "output_shape": [window.output_bins, window.output_frames],
                "input_seconds": window.input_frames / fps,
                "output_seconds": window.output_frames / fps,
                "context_frames": [window.context_before, window.context_after],
            },
            "critics": {
                source: {
                    "type": recipe.critics[source].type,
                    "parameters": critic.num_parameters(),
                    "input_shape": list(critic.input_shape),
                }
                for source, critic in critics.items()
            },
            "divergence": {"type": recipe.divergence.type, **recipe.divergence.config.model_dump()},
        }
    return {"recipe": loaded.base.name, "variants": variants}


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"recipe '{summary['recipe']}'")
    for column in ("variant", "separator", "params", "window in (bins x frames)", "out", "critics", "divergence"):
        table.add_column(column)
    for name, v in summary["variants"].items():
        sep = v["separator"]
        critics = ", ".join(f"{s}: {c['type']} ({c['parameters'] / 1e6:.2f} M)" for s, c in v["critics"].items()) or "none"
        table.add_row(
            name,
            sep["type"],
            f"{sep['parameters'] / 1e6:.2f} M",
            f"{sep['input_shape'][0]} x {sep['input_shape'][1]} ({sep['input_seconds']:.2f} s)",
            f"{sep['output_shape'][0]} x {sep['output_shape'][1]} ({sep['output_seconds']:.2f} s)",
            critics,
            v["divergence"]["type"] if v["critics"] else "-",
        )
    Console().print(table)
