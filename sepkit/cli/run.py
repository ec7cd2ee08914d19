"""``sepkit run``: train, evaluate and compare every variant of a recipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    # Long but flat: one declaration per option (what --help shows), then one call into the core.
    @app.command("run")
    def run(
        recipe: Path = typer.Argument(..., help="Recipe TOML file, e.g. recipes/demo.toml."),
        output_dir: Optional[Path] = typer.Option(
            None, "--output-dir", "-o", help="Where runs go (default: runs/<recipe name>); one folder per variant."
        ),
        device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or mps (default: the recipe's training.device)."),
        variant: list[str] = typer.Option(
            [], "--variant", metavar="NAME", help="Train only this variant (repeatable, or comma-separated: a,b)."
        ),
        seeds: Optional[str] = typer.Option(
            None, "--seeds", metavar="0,1,2", help="Train each variant once per seed (a list or a range such as 0-4), "
            "into OUTPUT_DIR/<variant>/seed-<n>/; summarise with `sepkit report OUTPUT_DIR`.",
        ),
        overrides: list[str] = typer.Option([], "--set", help="Override a recipe key, e.g. --set training.batch_size=16 (repeatable)."),
        resume: bool = typer.Option(False, "--resume", help="Continue a stopped run from its train-state/ (with --set training.max_epochs=N, also a finished one, to N epochs)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run in the output folder."),
        evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Evaluate each variant on the recipe's test sets."),
        as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    ) -> None:
        """Train every variant of RECIPE to its early-stopping end, evaluate it, print a comparison.

        Each variant writes to OUTPUT_DIR/<variant>/ (OUTPUT_DIR/<variant>/seed-<n>/ with --seeds):
        model.safetensors (best by validation),
        train-state/ (for --resume), metrics.jsonl, validation.jsonl, recipe.resolved.toml,
        training-curves.png and evaluation/. Ctrl-C saves the training state; --resume continues
        (after a kill -9 too, from the last epoch end).

        OUTPUT_DIR holds the runs of one recipe (OUTPUT_DIR/experiment.json); each run folder is
        locked while it trains, so a second process on it is refused (other variants or seeds may
        train at the same time). See docs/reliability.md.

        Several GPUs or nodes: torchrun --standalone --nproc_per_node=N -m sepkit run RECIPE
        (training.batch_size stays the global batch; resume with the same N). See docs/scaling.md.
        """
        if device is not None and device not in ("auto", "cpu", "cuda", "mps"):
            from ..errors import SepkitError

            raise SepkitError(f"--device {device}: expected auto, cpu, cuda or mps")
        from ..experiment import comparison_rows, parse_seeds, run_experiment
        from ..recipe import load_recipe

        seed_list = parse_seeds(seeds) if seeds is not None else None
        variants = [name.strip() for item in variant for name in item.split(",") if name.strip()]
        loaded = load_recipe(recipe, overrides)
        out = output_dir or Path("runs") / loaded.base.name
        console = None
        if as_json:  # keep stdout for the JSON alone
            from rich.console import Console

            console = Console(stderr=True)
        outcomes = run_experiment(
            loaded, out, variant=variants, seeds=seed_list, device=device, resume=resume, overwrite=overwrite, evaluate=evaluate,
            console=console,
        )
        from ..training.distributed import current

        if not current().is_main:  # another process of a torchrun run: the first one reports
            return
        rows = comparison_rows(outcomes)
        if as_json:
            typer.echo(json.dumps(rows, indent=2, default=str))
            return
        print_comparison(rows, outcomes, seeds_dir=out if seed_list else None)


def print_comparison(rows: list[dict], outcomes: list, *, seeds_dir: Path | None = None) -> None:
    """The runs' table, then their test scores side by side (over seeds: every run in ``seeds_dir``)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="variants")
    for column in ("variant", "seed", "epochs", "updates", "best epoch", "validation loss", "time (s)", "stopped by"):
        table.add_column(column)
    for row in rows:
        loss = row["validation_loss"]
        table.add_row(
            row["variant"], "-" if row["seed"] is None else str(row["seed"]), str(row["epochs"]), str(row["updates"]), str(row["best_epoch"]),
            "-" if loss is None else f"{loss:.5f}", f"{row['seconds']:.0f}", row["stopped_by"],
        )
    console = Console()
    console.print(table)
    evaluated = [o for o in outcomes if o.evaluation]
    if evaluated and seeds_dir is not None:
        from ..report import aggregate, find_runs, rich_tables

        runs = find_runs(seeds_dir)
        reference = "baseline" if any(r.variant == "baseline" for r in runs) else None
        order = list(dict.fromkeys(o.variant for o in outcomes))
        for table in rich_tables(aggregate(runs, reference=reference, order=order)):
            console.print(table)
    elif evaluated:
        from ..evaluation.tables import comparison_table

        console.print(comparison_table([o.evaluation for o in evaluated], [o.variant for o in evaluated]))
