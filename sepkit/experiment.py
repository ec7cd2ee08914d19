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


@dataclass
class VariantOutcome:
    variant: str
    output_dir: Path
    train: Any  # TrainResult
    evaluation: dict[str, Any] | None


def _comparable(recipe_data: dict[str, Any]) -> dict[str, Any]:
    """What must match for a folder to hold "the same run": everything but where it runs."""
    data = json.loads(json.dumps(recipe_data))
    data.get("training", {}).pop("device", None)
    return data


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
        same = _comparable(previous) == _comparable(json.loads(json.dumps(current)))
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
    _write_atomic(resolved_path, dumps_toml(current))


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def run_experiment(
    loaded: LoadedRecipe,
    output_dir: Path,
    *,
    variant: str | None = None,
    device: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    evaluate: bool = True,
    progress: bool = True,
    console: Any = None,
) -> list[VariantOutcome]:
    """Train, then evaluate, every selected variant; tables go to ``console`` (stdout by default)."""
    from .training.trainer import STATE_FILE, Trainer

    outcomes: list[VariantOutcome] = []
    selected = loaded.select(variant)
    for name, recipe in selected.items():  # validate every folder before training anything
        prepare_output(output_dir / name, recipe, resume=resume, overwrite=overwrite)
    for name, recipe in selected.items():
        out = output_dir / name
        trainer = Trainer(recipe, out, variant=name, device=device, progress=progress)
        can_resume = resume and (out / STATE_FILE).exists()
        result = trainer.fit(resume=can_resume)
        if result.stopped_by == "interrupted":
            raise SepkitError(f"interrupted: training state saved in {out}; continue with --resume")
        summary = None
        if evaluate and recipe.data.test:
            summary = evaluate_variant(recipe, out, device=device, progress=progress, console=console)
        outcomes.append(VariantOutcome(name, out, result, summary))
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
