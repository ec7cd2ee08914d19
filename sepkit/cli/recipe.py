"""``sepkit recipe check|schema|summary``: validate and describe recipes without training anything."""

from __future__ import annotations

import json
from pathlib import Path

import typer

recipe_app = typer.Typer(help="Validate and describe recipes.", no_args_is_help=True)

SET_HELP = "Override a recipe key, e.g. --set training.batch_size=16 (repeatable)."


def register(app: typer.Typer) -> None:
    app.add_typer(recipe_app, name="recipe")


@recipe_app.command("check")
def check(
    recipe: Path = typer.Argument(..., help="Recipe TOML file."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Validate a recipe completely (every component's config included) without reading audio.

    Exit 0 with a summary when valid; exit 2 with a one-line error naming the TOML path otherwise.
    """
    from ..recipe import load_recipe

    loaded = load_recipe(recipe, overrides)
    base = loaded.base
    typer.echo(f"{recipe}: valid recipe '{base.name}' for sources {', '.join(base.sources)}")
    for name, variant in loaded.variants.items():
        critics = ", ".join(f"{s} ({c.type})" for s, c in variant.critics.items()) or "none"
        typer.echo(
            f"  variant {name}: {variant.representation.type} -> {variant.separator.type}; "
            f"critics: {critics}; divergence: {variant.divergence.type if variant.critics else '-'}"
        )


@recipe_app.command("schema")
def schema() -> None:
    """Print the recipe's JSON schema (with every registered component), for editor completion."""
    from ..recipe.json_schema import recipe_json_schema

    typer.echo(json.dumps(recipe_json_schema(), indent=2))


@recipe_app.command("summary")
def summary(
    recipe: Path = typer.Argument(..., help="Recipe TOML file."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """What the networks of every variant are: sizes, windows and parameter counts."""
    from ..recipe import load_recipe
    from ..recipe.summary import print_summary, summarise

    loaded = load_recipe(recipe, overrides, check_data=False)
    result = summarise(loaded)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_summary(result)
