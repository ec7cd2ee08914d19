"""``sepkit run``: train every variant of a recipe, evaluate each on the test sets, compare them."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SepkitError
from .recipe import LoadedRecipe
from .recipe.dump import dumps_toml, resolved_dict
from .recipe.schema import Recipe

RESOLVED = "recipe.resolved.toml"
SEED_FOLDER = "seed-{}"


@dataclass
class VariantOutcome:
    variant: str
    output_dir: Path
    train: Any  # TrainResult
    evaluation: dict[str, Any] | None
    seed: int | None = None


def with_seed(recipe: Recipe, seed: int) -> Recipe:
    """The same recipe with another ``training.seed`` (component configs kept as validated)."""
    return recipe.model_copy(update={"training": recipe.training.model_copy(update={"seed": int(seed)})})


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-2"`` -> ``[0, 1, 2]``; a clear error for anything else."""
    seeds: list[int] = []
    usage = f"--seeds {text!r}: expected distinct non-negative integers such as 0,1,2 or a range such as 0-4"
    try:
        for part in (p.strip() for p in text.split(",")):
            first, dash, last = part.partition("-")
            if dash and first:
                if int(last) < int(first):
                    raise SepkitError(f"--seeds {text!r}: the range {part} is reversed (write {last}-{first})")
                seeds.extend(range(int(first), int(last) + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise SepkitError(usage) from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise SepkitError(usage)
    return seeds


def select_variants(loaded: LoadedRecipe, variant: str | list[str] | None) -> dict[str, Recipe]:
    """One variant by name, several (a list, in the recipe's order), or all of them (None or [])."""
    if not variant:
        return loaded.select(None)
    names = [variant] if isinstance(variant, str) else list(variant)
    chosen = {name: loaded.select(name)[name] for name in names}
    return {name: recipe for name, recipe in loaded.variants.items() if name in chosen}


def plan_runs(
    loaded: LoadedRecipe, output_dir: Path, *, variant: str | list[str] | None = None, seeds: list[int] | None = None
) -> list[tuple[str, int | None, Recipe, Path]]:
    """(variant, seed, recipe, folder) of every run, seed-major so that a complete comparison of
    the variants exists as early as possible. Without seeds: ``OUTPUT_DIR/<variant>`` with the
    recipe's own seed; with seeds: ``OUTPUT_DIR/<variant>/seed-<n>``."""
    selected = select_variants(loaded, variant)
    if not seeds:
        return [(name, None, recipe, output_dir / name) for name, recipe in selected.items()]
    return [
        (name, seed, with_seed(recipe, seed), output_dir / name / SEED_FOLDER.format(seed))
        for seed in seeds
        for name, recipe in selected.items()
    ]


def _comparable(recipe_data: dict[str, Any]) -> dict[str, Any]:
    """What must match for a folder to hold "the same run": everything but where it runs."""
    data = json.loads(json.dumps(recipe_data))
    data.get("training", {}).pop("device", None)
    return data


def _with_current_defaults(previous: dict[str, Any]) -> dict[str, Any]:
    """A folder's resolved recipe as this version of sepkit would write it (keys added since filled in
    with their defaults), so that upgrading sepkit does not make a run "another recipe"."""
    from .errors import RecipeError
    from .recipe import recipe_from_dict

    try:
        recipe = recipe_from_dict(previous, check_data=False).base
    except (RecipeError, SepkitError):
        return previous
    return json.loads(json.dumps(resolved_dict(recipe)))


def prepare_output(out: Path, recipe: Recipe, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix runs: a folder holding another run is only reused with --resume (same recipe)
    or emptied with --overwrite."""
    import tomllib

    if out.exists() and not out.is_dir():
        raise SepkitError(f"{out}: exists and is not a folder")
    resolved_path = out / RESOLVED
    current = resolved_dict(recipe)
    if resolved_path.exists():
        try:
            previous = tomllib.loads(resolved_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SepkitError(f"{resolved_path}: unreadable ({exc}); use --overwrite to start again") from None
        same = _comparable(_with_current_defaults(previous)) == _comparable(json.loads(json.dumps(current)))
        if overwrite:
            shutil.rmtree(out)
        elif not same:
            raise SepkitError(
                f"{out} holds a run of another recipe (its {RESOLVED} differs); "
                "use another --output-dir, or --overwrite to replace it"
            )
        elif not resume:
            raise SepkitError(f"{out} already holds a run of this recipe; use --resume to continue it or --overwrite to start again")
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise SepkitError(f"{out} is not empty and holds no sepkit run; use another --output-dir or --overwrite")
    elif overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(resolved_path, dumps_toml(current))


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def run_experiment(
    loaded: LoadedRecipe,
    output_dir: Path,
    *,
    variant: str | list[str] | None = None,
    seeds: list[int] | None = None,
    device: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    evaluate: bool = True,
    progress: bool = True,
    console: Any = None,
) -> list[VariantOutcome]:
    """Train, then evaluate, every selected variant (once per seed); tables go to ``console``."""
    from .training.trainer import STATE_FILE, Trainer

    outcomes: list[VariantOutcome] = []
    runs = plan_runs(loaded, output_dir, variant=variant, seeds=seeds)
    if seeds:  # even with --overwrite: replacing the seed folders would leave that run in place
        for name in dict.fromkeys(name for name, *_ in runs):
            if (output_dir / name / RESOLVED).exists():
                raise SepkitError(
                    f"{output_dir / name} holds a run without --seeds; its seed runs would be mixed with it: "
                    "use another --output-dir (or remove that run)"
                )
    for _, _, recipe, out in runs:  # validate every folder before training anything
        prepare_output(out, recipe, resume=resume, overwrite=overwrite)
    for name, seed, recipe, out in runs:
        label = name if seed is None else f"{name}/{SEED_FOLDER.format(seed)}"
        trainer = Trainer(recipe, out, variant=label, device=device, progress=progress)
        can_resume = resume and (out / STATE_FILE).exists()
        result = trainer.fit(resume=can_resume)
        if result.stopped_by == "interrupted":
            raise SepkitError(f"interrupted: training state saved in {out}; continue with --resume")
        summary = None
        if evaluate and recipe.data.test:
            summary = evaluate_variant(recipe, out, device=device, progress=progress, console=console)
        outcomes.append(VariantOutcome(name, out, result, summary, seed))
    return outcomes


def evaluate_variant(
    recipe: Recipe, out: Path, *, device: str | None = None, progress: bool = True, console: Any = None
) -> dict[str, Any]:
    from .evaluation import evaluate_recipe
    from .model import load_model
    from .training.trainer import MODEL_FILE

    model = load_model(out / MODEL_FILE)
    return evaluate_recipe(
        model, recipe, out / "evaluation", device=device or recipe.training.device, progress=progress, console=console
    )


def comparison_rows(outcomes: list[VariantOutcome]) -> list[dict[str, Any]]:
    rows = []
    for o in outcomes:
        row: dict[str, Any] = {
            "variant": o.variant,
            "seed": o.seed,
            "epochs": o.train.epochs,
            "updates": o.train.updates,
            "best_epoch": o.train.best_epoch,
            "validation_loss": o.train.best_validation,
            "seconds": round(o.train.seconds, 1),
            "stopped_by": o.train.stopped_by,
        }
        if o.evaluation:
            row["test"] = {"overall": o.evaluation["overall"]["mean"], "subsets": {
                name: block["mean"] for name, block in o.evaluation["subsets"].items()}}
        rows.append(row)
    return rows
