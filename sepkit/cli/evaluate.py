"""``sepkit evaluate``: separate test tracks with a model, score them, print tables; or compare
several evaluations side by side (``--compare``).

Torch, the model and the metrics are imported inside the command so that ``sepkit --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

if TYPE_CHECKING:
    from ..evaluation import EvaluationOptions

HELP = "\n\n".join([
    "Separate every test track with a model and score it (BSS Eval).",
    "The test sets are the recipe's \\[\\[data.test]] tables, or each --dataset TYPE:ROOT (a registered dataset "
    "type, see `sepkit plugins`, and its root folder), e.g. "
    "`sepkit evaluate --model model.safetensors --dataset stems:path/to/test`.",
    "Protocols: `paper` (whole-track bss_eval_sources at the model rate in mono, all sources at once, plus NSDR) and "
    "`bsseval-v4` (museval's framewise BSS Eval v4, median over 1 s windows). Results go to DIR/<track>.json and "
    "DIR/summary.json; a rerun skips tracks already scored. Scores come from the fast torch path (equal to museval, "
    "see docs/evaluation.md) unless --museval is given.",
    "`sepkit evaluate --compare DIR DIR ...` prints evaluations side by side, e.g. the variants of a run.",
])


def register(app: typer.Typer) -> None:
    @app.command("evaluate", help=HELP)
    def evaluate(
        targets: Optional[list[str]] = typer.Argument(
            None, metavar="RECIPE.toml | DIR...", help="The recipe whose test sets to use; with --compare, evaluation folders."
        ),
        model_path: Optional[Path] = typer.Option(None, "--model", "-m", metavar="PATH", help="Model file (.safetensors)."),
        datasets: list[str] = typer.Option(
            [], "--dataset", "-d", metavar="TYPE:ROOT", help="A test set instead of a recipe, e.g. stems:data/test (repeatable)."
        ),
        variant: Optional[str] = typer.Option(None, "--variant", metavar="NAME", help="The recipe variant whose settings to use."),
        protocol: Optional[str] = typer.Option(
            None, "--protocol", metavar="paper|bsseval-v4", help="Scoring protocol (default: the recipe's, else paper)."
        ),
        out_dir: Optional[Path] = typer.Option(
            None, "--output", "-o", metavar="DIR", help="Where results go (default: <model folder>/evaluation)."
        ),
        jobs: int = typer.Option(
            1, "--jobs", "-j", min=1,
            help="Worker processes, each loading the model once and separating and scoring its share of the tracks "
            "with its share of the threads (under torchrun: per process; docs/scaling.md).",
        ),
        save_estimates: bool = typer.Option(
            False, "--save-estimates", help="Also write DIR/<track>/<source>-reference.wav and -estimate.wav as scored."
        ),
        fast: bool = typer.Option(True, "--fast/--museval", help="Score with the fast torch path or with museval itself."),
        device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where separation and scoring run."),
        overlap: Optional[float] = typer.Option(
            None, "--overlap", metavar="F", help="Window overlap when separating (default: the recipe's, 0 for the paper)."
        ),
        precision: str = typer.Option(
            "fp32", "--precision", metavar="fp32|bf16|auto", help="Separator arithmetic when separating (see `sepkit separate --help`)."
        ),
        compare: bool = typer.Option(False, "--compare", help="Print the evaluations in DIR... side by side."),
        statistic: str = typer.Option("mean", "--statistic", metavar="mean|median", help="With --compare: which statistic."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of tables."),
    ) -> None:
        if compare:
            run_compare(targets or [], statistic=statistic, as_json=as_json)
            return
        from ..evaluation.options import EvaluationOptions, OptionError

        try:
            options = EvaluationOptions(protocol=protocol, fast=fast, jobs=jobs, save_estimates=save_estimates, device=device)
        except OptionError as exc:
            raise exc.on_command_line() from None
        run_evaluate(
            targets or [], model_path=model_path, datasets=datasets, variant=variant, out_dir=out_dir, options=options,
            overlap=overlap, precision=precision, as_json=as_json,
        )


def run_compare(folders: list[str], *, statistic: str, as_json: bool) -> None:
    from rich.console import Console

    from ..evaluation.tables import compare

    if not folders:
        from ..errors import SepkitError

        raise SepkitError("--compare needs evaluation folders, e.g. sepkit evaluate --compare runs/x/a/evaluation runs/x/b/evaluation")
    console = Console(file=sys.stderr) if as_json else Console()
    summaries = compare(folders, statistic=statistic, console=console)
    if as_json:
        typer.echo(json.dumps(_json_ready(summaries), indent=2))


def run_evaluate(
    targets: list[str],
    *,
    model_path: Path | None,
    datasets: list[str],
    variant: str | None,
    out_dir: Path | None,
    options: "EvaluationOptions",
    overlap: float | None,
    precision: str,
    as_json: bool,
) -> None:
    """Check the request, load the model, then the one evaluation of sepkit (``evaluate_recipe``)."""
    from rich.console import Console

    from ..evaluation import engine_options, evaluate_recipe
    from ..model import load_model
    from ..sharding import shard_from_environment

    recipe_path = _check_request(targets, model_path, datasets)
    assert model_path is not None
    specs = [_dataset_spec(spec) for spec in datasets]  # checked before the model is loaded
    shard = shard_from_environment()
    model = load_model(model_path, device=_device(device_name=options.device, shard=shard))  # a missing plugin: named
    recipe = _recipe(recipe_path, variant) if recipe_path is not None else model.recipe
    engine = engine_options(model, recipe, overlap=overlap, precision=precision)  # every value checked here, once
    test_sets = [cls(config, role="test", sources=list(model.sources)) for cls, config in specs] or None
    options = options.with_default_protocol(recipe.evaluation.protocol)
    if out_dir is None:
        chosen = options.protocol
        out_dir = model_path.parent / ("evaluation" if chosen == model.recipe.evaluation.protocol else f"evaluation-{chosen}")
    console = Console(stderr=True) if as_json else Console()
    summary = evaluate_recipe(model, recipe, out_dir, options, datasets=test_sets, engine=engine, console=console,
                              progress=shard.is_main, shard=shard)
    if shard.is_main:
        console.print(f"results: {out_dir}", highlight=False)
        if as_json:
            typer.echo(json.dumps(_json_ready(summary), indent=2))
    if summary.get("failed"):
        raise typer.Exit(1)


def _check_request(targets: list[str], model_path: Path | None, datasets: list[str]) -> Path | None:
    """The recipe to use (None: --dataset); every contradiction in the arguments is one line."""
    from ..errors import SepkitError

    if model_path is None:
        raise SepkitError("--model PATH is required (the model file to evaluate)")
    if len(targets) > 1:
        raise SepkitError(f"expected one recipe, got {len(targets)} arguments ({' '.join(targets)}); did you mean --compare?")
    recipe_path = Path(targets[0]) if targets else None
    if recipe_path is None and not datasets:
        raise SepkitError("give a recipe (its [[data.test]] sets are used) or --dataset TYPE:ROOT")
    if recipe_path is not None and datasets:
        raise SepkitError("give either a recipe or --dataset, not both")
    return recipe_path


def _device(*, device_name: str | None, shard: Any) -> Any:
    """Where the model runs: ``--device``, on the CUDA device of its local rank under torchrun."""
    from ..device import resolve_device

    return shard.device(resolve_device(device_name or "auto"))


def _recipe(path: Path, variant: str | None) -> Any:
    from ..recipe import load_recipe

    loaded = load_recipe(path, check_data=False)  # evaluating needs test sets only
    if variant is None:
        return loaded.base
    return next(iter(loaded.select(variant).values()))


def _dataset_spec(spec: str) -> tuple[type, Any]:
    """``TYPE:ROOT`` -> the registered dataset class and its config (validated by the type's Config)."""
    from pydantic import ValidationError

    from ..errors import SepkitError
    from ..plugins import registry
    from ..recipe.load import format_validation_error

    kind, sep, root = spec.partition(":")
    if not sep or not kind or not root:
        raise SepkitError(f"--dataset {spec!r}: expected TYPE:ROOT, e.g. stems:path/to/test")
    cls = registry("dataset").get(kind).cls
    try:
        config = cls.parse_config({"root": str(Path(root).expanduser().resolve())})
    except ValidationError as exc:
        raise SepkitError(f"--dataset {spec}: {format_validation_error(exc)}") from None
    return cls, config


def _json_ready(data: Any) -> Any:
    from ..evaluation.results import json_value

    return json_value(data)
