"""``sepkit data inspect``: what a recipe's data roles hold, before training on them."""

from __future__ import annotations

import json
from pathlib import Path

import typer

data_app = typer.Typer(help="Inspect the data a recipe uses.", no_args_is_help=True)

SET_HELP = "Override a recipe key, e.g. --set paths.corpus=/data/corpus (repeatable)."
MAX_LISTED_FAILURES = 20


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


@data_app.command("inspect")
def inspect(
    recipe: Path = typer.Argument(..., help="Recipe TOML file."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    variant: str = typer.Option(None, "--variant", help="Inspect this variant's data (default: the recipe's own tables)."),
    decode: bool = typer.Option(
        False, "--decode", help="Decode and resample every file (fills the audio cache) instead of reading headers only."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of tables."),
) -> None:
    """Per role and dataset: tracks, total duration, sample rates found and files that fail.

    Reads file headers only unless --decode. Exit 1 when a dataset has no usable track.
    """
    from ..data.inspection import inspect_recipe
    from ..recipe import load_recipe

    loaded = load_recipe(recipe, overrides, check_data=False)
    chosen = loaded.base if variant is None else next(iter(loaded.select(variant).values()))
    reports = inspect_recipe(chosen, decode=decode)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        _print_tables(reports, recipe)
    if any(not r.usable for r in reports):
        raise typer.Exit(1)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _print_tables(reports: list, recipe: Path) -> None:  # type: ignore[type-arg]
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not reports:
        console.print(f"{recipe}: the recipe names no datasets")
        return
    table = Table(title=f"Data of {recipe}")
    for column, justify in [("role", "left"), ("dataset", "left"), ("type", "left"), ("tracks", "right"),
                            ("duration", "right"), ("sample rates", "left"), ("channels", "left"), ("failed", "right")]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in reports:
        failed = str(len(r.failed)) if r.error is None else "error"
        table.add_row(
            escape(r.role), escape(r.dataset), r.type, str(r.tracks), _duration(r.seconds),
            ", ".join(f"{rate} Hz" for rate in r.sample_rates) or "-",
            ", ".join(map(str, r.channels)) or "-",
            f"[red]{failed}[/red]" if (r.failed or r.error) else failed,
        )
    console.print(table)
    for r in reports:
        if r.error:
            console.print(f"[red]{escape(r.role)} / {escape(r.dataset)}:[/red] {escape(r.error)}", highlight=False)
        for item in r.failed[:MAX_LISTED_FAILURES]:
            console.print(f"[yellow]{escape(r.role)} / {escape(r.dataset)}:[/yellow] {escape(item['path'])}: {escape(item['reason'])}", highlight=False)
        if len(r.failed) > MAX_LISTED_FAILURES:
            console.print(f"{r.role} / {r.dataset}: ... and {len(r.failed) - MAX_LISTED_FAILURES} more (see --json)")
        for item in r.warnings[:MAX_LISTED_FAILURES]:
            console.print(f"{escape(r.role)} / {escape(r.dataset)}: warning: {escape(item['path'])}: {escape(item['reason'])}", highlight=False)
