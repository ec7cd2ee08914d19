"""``sepkit models``: the named models ``--model NAME`` accepts, who provides them, what is downloaded."""

from __future__ import annotations

import json

import typer

HELP = (
    "List the named models: what `sepkit separate --model NAME` and `sepkit.separate(..., model=NAME)` accept.\n\n"
    "Packages add models through the register_models hook (docs/plugins.md). A model published at a URL is "
    "downloaded on first use into $SEPKIT_CACHE_DIR/models (default ~/.cache/sepkit/models) and verified by "
    "its sha256; status says local (shipped in a package), cached (downloaded) or remote (not downloaded yet)."
)


def register(app: typer.Typer) -> None:
    @app.command("models", help=HELP)
    def models(
        as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    ) -> None:
        from ..models import list_models

        rows = list_models()
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="sepkit models")
        for column, justify in (
            ("name", "left"), ("description", "left"), ("sources", "left"), ("rate", "right"), ("size", "right"),
            ("status", "left"), ("provider", "left"), ("source", "left"),
        ):
            table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for row in rows:
            table.add_row(
                row["name"],
                row["description"] or "-",
                ", ".join(row["sources"]) if row["sources"] else "-",
                f"{row['sample_rate']} Hz" if row["sample_rate"] else "-",
                human_size(row["size_bytes"]),
                row["status"],
                row["distribution"],
                row["source"],
            )
        console = Console()
        console.print(table)
        if not rows:
            console.print("no named models are registered (install a package that provides some)")


def human_size(size: int | None) -> str:
    if not size:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    return "-"
