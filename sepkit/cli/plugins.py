"""``sepkit plugins``: every registered component and command, who provides it, and each
distribution's plugins with the hooks they implement (and those that failed to load)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ..plugins import KINDS, PluginSystem, plugin_system

HELP = """List every registered component (representations, separators, critics, divergences,
datasets, loggers) and every command a plugin adds, with the distribution and version that provide
it; then each distribution's plugins and the hooks they implement, and any plugin that failed to
load (also reported as a warning when it is skipped).

SEPKIT_LOAD_PLUGINS=a,b loads only the plugins of distributions a and b besides sepkit's built-ins;
SEPKIT_LOAD_PLUGINS= (empty) the built-ins only.
"""

COLUMNS = ("kind", "name", "distribution", "version")


def register(app: typer.Typer) -> None:
    @app.command("plugins", help=HELP)
    def plugins(
        as_json: bool = typer.Option(False, "--json", help="Print the components as a JSON list instead of tables."),
        distributions: bool = typer.Option(
            False, "--distributions", help="With --json: each distribution's plugins and hooks instead of the components."
        ),
    ) -> None:
        system = plugin_system()
        rows = component_rows(system) + command_rows(system)
        loaded = plugin_rows(system)
        if as_json:
            typer.echo(json.dumps(loaded if distributions else rows, indent=2))
            return
        console = Console()
        components = Table(title="sepkit components")
        for column in COLUMNS:
            components.add_column(column)
        for row in rows:
            components.add_row(*(row[c] for c in COLUMNS))
        console.print(components)
        table = Table(title="plugins by distribution")
        for column in ("distribution", "version", "plugin", "hooks"):
            table.add_column(column)
        for row in loaded:
            hooks = ", ".join(row["hooks"]) if row["error"] is None else f"[red]failed: {row['error']}[/red]"
            table.add_row(row["distribution"], row["version"], row["plugin"], hooks)
        console.print(table)


def component_rows(system: PluginSystem) -> list[dict[str, str]]:
    return [
        {"kind": kind, "name": entry.name, "distribution": entry.provider.distribution, "version": entry.provider.version}
        for kind in KINDS
        for entry in system.registry(kind).entries()
    ]


def command_rows(system: PluginSystem) -> list[dict[str, str]]:
    """The commands each plugin adds, found by letting it add them to an empty application."""
    rows = []
    for provider, function in system.implementations("register_commands", app=(scratch := typer.Typer())):
        before = set(_command_names(scratch))
        try:
            function()
        except Exception:  # reported when the CLI was built (system.failures)
            continue
        for name in (n for n in _command_names(scratch) if n not in before):
            rows.append({"kind": "command", "name": name, "distribution": provider.distribution, "version": provider.version})
    return rows


def _command_names(app: typer.Typer) -> list[str]:
    commands = [c.name or (c.callback.__name__.replace("_", "-") if c.callback else "?") for c in app.registered_commands]
    groups = [g.name or (g.typer_instance.info.name if g.typer_instance else None) or "?" for g in app.registered_groups]
    return commands + groups


def plugin_rows(system: PluginSystem) -> list[dict[str, Any]]:
    """Every loaded plugin with its hooks, then every skipped one with its error."""
    rows = [
        {"distribution": p.provider.distribution, "version": p.provider.version, "plugin": p.provider.plugin,
         "hooks": list(p.hooks), "error": None}
        for p in system.loaded()
    ]
    for failure in system.failures:
        if failure.stage == "import":
            rows.append({"distribution": failure.provider.distribution, "version": failure.provider.version,
                         "plugin": failure.provider.plugin, "hooks": [], "error": failure.message})
    return rows
