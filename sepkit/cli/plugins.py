"""``sepkit plugins``: every registered component and who provides it."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command("plugins")
    def plugins(
        as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    ) -> None:
        """List every registered component: kind, name, providing distribution and version."""
        from ..plugins import KINDS, registry

        rows = [
            {
                "kind": kind,
                "name": entry.name,
                "distribution": entry.provider.distribution,
                "version": entry.provider.version,
            }
            for kind in KINDS
            for entry in registry(kind).entries()
        ]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="sepkit components")
        for column in ("kind", "name", "distribution", "version"):
            table.add_column(column)
        for row in rows:
            table.add_row(*(row[c] for c in ("kind", "name", "distribution", "version")))
        Console().print(table)
