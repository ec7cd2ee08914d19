"""``sepkit report``: the runs of an experiment folder as mean ± std over seeds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

HELP = "\n\n".join([
    "Summarise the runs under RUN_DIR (what `sepkit run` wrote, e.g. with --seeds 0,1,2) over seeds.",
    "Each run's test score is its mean over tracks; a variant's cell is the mean ± sample standard deviation of "
    "those over its seeds, in the layout of the paper's Table 2 (All, then each test subset). With --reference "
    "(default: `baseline` when there is one), a second table gives each variant minus the reference, paired by seed. "
    "The last table lists seeds, unfinished runs, epochs and wall time (training + validation) per seed.",
    "Runs keep the model each selection rule picks (lowest validation loss, highest validation SDR, last epoch) "
    "and `sepkit run` scores each of them: a 'model selection' table shows every rule's test SDR side by side, so "
    "you see what the choice of rule costs; --select RULE bases every other table on that rule's models.",
    "--markdown FILE writes the same as Markdown (for docs/experiments.md); --json prints it as JSON; --plot FILE.png "
    "draws the training curves of every variant in one figure.",
])


def register(app: typer.Typer) -> None:
    # Long but flat: one declaration per option (what --help shows), then one call into the core.
    @app.command("report", help=HELP)
    def report(
        run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="Folder holding the runs, e.g. runs/offline-corpus-cpu."),
        reference: Optional[str] = typer.Option(
            None, "--reference", metavar="VARIANT", help="Variant the others are compared with (default: baseline, if present)."
        ),
        order: Optional[str] = typer.Option(
            None, "--order", metavar="A,B,...", help="Column order of the variants (default: reference first, then by name)."
        ),
        metrics: str = typer.Option("SDR,SIR,SAR", "--metrics", metavar="M,...", help="Rows, e.g. SDR,SIR,SAR,NSDR."),
        markdown_path: Optional[Path] = typer.Option(None, "--markdown", metavar="FILE", help="Also write Markdown tables to FILE ('-': stdout)."),
        plot_path: Optional[Path] = typer.Option(
            None, "--plot", metavar="FILE.png", help="Also plot validation loss, validation SDR and the critics' divergence "
            "estimates of every variant against updates (mean over seeds, range shaded).",
        ),
        select: Optional[str] = typer.Option(
            None, "--select", metavar="RULE", help="Score the models of this selection rule (validation-loss, "
            "validation-sdr, last) instead of each run's model.safetensors.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
    ) -> None:
        from ..errors import SepkitError
        from ..report import aggregate, find_runs, markdown, rich_tables, selection_rules, to_json
        from ..training.selection import RULES

        if as_json and markdown_path is not None and str(markdown_path) == "-":
            raise SepkitError("--json and --markdown - both print to stdout; write the Markdown to a file instead")
        if select is not None and select not in RULES:
            raise SepkitError(f"--select {select}: not a selection rule; choose one of {', '.join(RULES)}")
        runs = find_runs(run_dir, "evaluation" if select is None else f"evaluation-{select}")
        names = {r.variant for r in runs}
        if reference is None and "baseline" in names:
            reference = "baseline"
        wanted = [v.strip() for v in order.split(",")] if order else ([reference] if reference else [])
        data = aggregate(runs, reference=reference, order=wanted)
        rules = selection_rules(run_dir, reference=reference, order=wanted)
        if rules:
            data["selection"] = rules
        rows = tuple(m.strip() for m in metrics.split(",") if m.strip())
        if markdown_path is not None:
            text = markdown(data, metrics=rows)
            if str(markdown_path) == "-":
                typer.echo(text)
            else:
                from ..io import write_text

                if markdown_path.exists() and markdown_path.is_dir():
                    raise SepkitError(f"--markdown {markdown_path}: is a folder")
                markdown_path.parent.mkdir(parents=True, exist_ok=True)
                write_text(markdown_path, text)
        if plot_path is not None:
            from ..report_plots import plot_report

            if plot_path.is_dir():
                raise SepkitError(f"--plot {plot_path}: is a folder")
            plot_report(runs, plot_path, order=list(data["variants"]), title=str(run_dir))
        if as_json:
            typer.echo(json.dumps(to_json(data), indent=2))
            return
        if str(markdown_path) != "-":
            from rich.console import Console

            console = Console()
            for table in rich_tables(data, metrics=rows):
                console.print(table)
