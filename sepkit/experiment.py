"""``sepkit run``: train every variant of a recipe, evaluate each on the test sets, compare them."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tomllib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .device import resolve_device
from .errors import SepkitError
from .evaluation import EvaluationOptions, evaluate_recipe
from .io import write_bytes, write_text
from .lock import LOCK_FILE, RunLock
from .model import load_model
from .recipe import LoadedRecipe
from .recipe.dump import dumps_toml
from .recipe.resolve import BUDGET, resolve, resolve_stored, without_placement
from .recipe.schema import Recipe
from .training.distributed import init_from_environment
from .training.selection import RULES, rule_file
from .training.state import read_counters
from .training.trainer import MODEL_FILE, STATE_FILE, Trainer

RESOLVED = "recipe.resolved.toml"
SEED_FOLDER = "seed-{}"
#: At the top of an output folder: the recipe its runs belong to (one recipe per folder).
EXPERIMENT = "experiment.json"
EXPERIMENT_FORMAT = "sepkit-experiment/1"
#: What a run folder holds once training has saved anything; without one of them it is a start
#: that failed (bad data, a kill before the first epoch end), not a run.
TRAINED = ("train-state/state.safetensors", "model.safetensors", "model-last.safetensors")
#: What ``sepkit run`` writes in a run folder: removed when a failed start is cleared.
RUN_FILES = (RESOLVED, "metrics.jsonl", "validation.jsonl", "metrics.csv", "validation.csv", "training-curves.png")


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


def holds_run(folder: Path) -> bool:
    """True when training has saved something in ``folder`` (a state or a model)."""
    return any((folder / name).exists() for name in TRAINED)


def _clear_failed_start(folder: Path) -> None:
    """Remove what a start that never saved a state or model wrote, so it counts as no run."""
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)
    for partial in folder.rglob(".*.partial"):
        partial.unlink(missing_ok=True)
    for sub in ("train-state", "evaluation"):
        try:
            (folder / sub).rmdir()  # only if empty: nothing of value is removed
        except OSError:
            pass


def _clear(folder: Path) -> None:
    """--overwrite: empty ``folder`` but keep its lock (held by this process)."""
    for child in folder.iterdir():
        if child.name == LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _contents(folder: Path) -> list[Path]:
    """What a folder holds besides its lock and the temporary files of killed writes."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name != LOCK_FILE and not (p.name.startswith(".") and p.name.endswith(".partial"))]


def prepare_output(out: Path, recipe: Recipe, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix runs: a folder holding another run is only reused with --resume (same recipe)
    or emptied with --overwrite. A folder where training never saved anything is no run."""
    if out.exists() and not out.is_dir():
        raise SepkitError(f"{out}: exists and is not a folder")
    resolved_path = out / RESOLVED
    current = resolve(recipe)
    if resolved_path.exists() and not holds_run(out):
        _clear_failed_start(out)
    if resolved_path.exists():
        try:
            previous = tomllib.loads(resolved_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SepkitError(f"{resolved_path}: unreadable ({exc}); use --overwrite to start again") from None
        stored = resolve_stored(previous)
        same = without_placement(stored, *BUDGET) == without_placement(current, *BUDGET)
        if overwrite:
            _clear(out)
        elif not same:
            raise SepkitError(
                f"{out} holds a run of another recipe (its {RESOLVED} differs); "
                "use another --output-dir, or --overwrite to replace it"
            )
        elif not resume:
            raise SepkitError(
                f"{out} already holds a run of this recipe; use --resume to continue it (with a larger "
                "training.max_epochs to train it longer) or --overwrite to start again"
            )
        elif not (out / TRAINED[0]).exists():  # killed before its first state: it starts again, logs too
            print(f"{out}: no training state ({TRAINED[0]}) to resume from: training from the start", file=sys.stderr)
            _clear_failed_start(out)
        else:
            for table, key in BUDGET:
                before, after = stored.get(table, {}).get(key), current.get(table, {}).get(key)
                if before != after:
                    print(f"{out}: {table}.{key} {before} -> {after}: continuing to the new budget", file=sys.stderr)
    elif _contents(out) and not overwrite:
        raise SepkitError(f"{out} is not empty and holds no sepkit run; use another --output-dir or --overwrite")
    elif overwrite and out.exists():
        _clear(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(resolved_path, dumps_toml(current))


def experiment_identity(recipe: Recipe) -> dict[str, Any]:
    """What every run in one output folder shares: the base recipe (no variants), less where it
    runs and the seed (``--seeds`` runs of one recipe share a folder)."""
    return _identity(resolve(recipe))


def _identity(resolved: dict[str, Any]) -> dict[str, Any]:
    """A resolved recipe (or a stored identity) as an experiment identity, as this version of sepkit
    resolves it: less the seed and the budget (runs continued to more epochs stay in their folder)."""
    return without_placement(resolve_stored(resolved), ("training", "seed"), *BUDGET)


def _first_difference(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return prefix.rstrip(".") or "the recipe"


def _runs_below(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(RESOLVED) if holds_run(p.parent)) if root.is_dir() else []


def claim_output(output_dir: Path, loaded: LoadedRecipe, replaced: list[Path]) -> bool:
    """An output folder belongs to one recipe, recorded in ``OUTPUT_DIR/experiment.json``: another
    recipe is refused while runs of the first would stay beside its own (``replaced``: the run
    folders this command empties with --overwrite). True when the record was (re)written."""
    if output_dir.exists() and not output_dir.is_dir():
        raise SepkitError(f"{output_dir}: exists and is not a folder")
    record_path = output_dir / EXPERIMENT
    name = loaded.base.name
    identity = experiment_identity(loaded.base)
    elsewhere = "use another --output-dir" + (f" (e.g. runs/{name})" if Path("runs", name).resolve() != output_dir.resolve() else "")
    emptied = {p.resolve() for p in replaced}
    keep = [r for r in _runs_below(output_dir) if r.resolve() not in emptied]
    if record_path.exists():
        try:
            previous = json.loads(record_path.read_text(encoding="utf-8"))
            previous_name, previous_identity = previous["recipe"], previous["identity"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SepkitError(f"{record_path}: unreadable ({type(exc).__name__}: {exc}); remove it to use this folder") from None
        if _identity(previous_identity) == identity and previous_name == name:
            return False
        if keep:
            what = (
                f"recipe '{previous_name}'" if previous_name != name
                else f"another version of recipe '{name}' ({_first_difference(_identity(previous_identity), identity)} differs)"
            )
            raise SepkitError(
                f"{output_dir} holds the runs of {what} ({EXPERIMENT}); a folder holds one recipe's runs: {elsewhere}"
            )
    else:  # a folder of an older sepkit: its runs must be this recipe's
        for run in keep:
            try:
                other = tomllib.loads((run / RESOLVED).read_text(encoding="utf-8")).get("name")
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
            if other != name:
                raise SepkitError(
                    f"{output_dir} holds runs of recipe '{other}' ({run}); a folder holds one recipe's runs: {elsewhere}"
                )
    record = {"format": EXPERIMENT_FORMAT, "recipe": name, "identity": identity}
    write_text(record_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return True


def _resume_line(label: str, state_path: Path) -> str:
    c = read_counters(state_path)
    inside = f", {c['update_in_epoch']} updates into epoch {c['epoch'] + 1}" if c.get("update_in_epoch") else ""
    best = f"; best validation loss {c['best_validation']:.5f} at epoch {c['best_epoch']}" if c.get("best_validation") is not None else ""
    return f"[{label}] resuming after epoch {c['epoch']}{inside} (update {c['updates']}) from {state_path}{best}"


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
    """Train, then evaluate, every selected variant (once per seed); tables go to ``console``.

    Under torchrun (``WORLD_SIZE`` above 1) every process calls this: the first one checks, locks
    and writes the output folders and evaluates, the others train with it (docs/scaling.md) and
    return no outcomes."""
    dist = init_from_environment(resolve_device(device or loaded.base.training.device))
    if not dist.is_main:
        _follow_first_process(loaded, output_dir, dist, variant=variant, seeds=seeds, device=device, resume=resume)
        return []
    start = _StartSignal(dist)
    try:
        return _lead_runs(loaded, output_dir, start, variant=variant, seeds=seeds, device=device, resume=resume,
                          overwrite=overwrite, evaluate=evaluate, progress=progress, console=console)
    except BaseException:
        start.send(False)  # the other processes stop too
        raise


class _StartSignal:
    """Tells the other processes of a torchrun run, once, whether the first could start the runs."""

    def __init__(self, dist: Any) -> None:
        self.dist, self.sent = dist, False

    def send(self, ok: bool) -> None:
        if not self.sent:
            self.sent = True
            self.dist.broadcast_values([1.0 if ok else 0.0])


def _lead_runs(
    loaded: LoadedRecipe, output_dir: Path, start: _StartSignal, *, variant: str | list[str] | None,
    seeds: list[int] | None, device: str | None, resume: bool, overwrite: bool, evaluate: bool, progress: bool,
    console: Any,
) -> list[VariantOutcome]:
    outcomes: list[VariantOutcome] = []
    runs = plan_runs(loaded, output_dir, variant=variant, seeds=seeds)
    if seeds:  # even with --overwrite: replacing the seed folders would leave that run in place
        for name in dict.fromkeys(name for name, *_ in runs):
            folder = output_dir / name
            if (folder / RESOLVED).exists() and not holds_run(folder):
                _clear_failed_start(folder)
            if (folder / RESOLVED).exists():
                raise SepkitError(
                    f"{folder} holds a run without --seeds; its seed runs would be mixed with it: "
                    "use another --output-dir (or remove that run)"
                )
    created = [p for p in dict.fromkeys(f for *_, out in runs for f in (output_dir, out.parent)) if not p.exists()]
    prepared: list[Path] = []
    try:
        with ExitStack() as locks:
            # one process per run folder; others may train other variants or seeds of the same folder
            for _, _, _, out in runs:
                lock = locks.enter_context(RunLock(out))
                if lock.took_over:
                    print(f"{out}: took over the stale lock of pid {lock.took_over.get('pid')} (no longer running)", file=sys.stderr)
            claimed = claim_output(output_dir, loaded, [out for *_, out in runs] if overwrite else [])
            try:
                for _, _, recipe, out in runs:  # validate every folder before training anything
                    prepare_output(out, recipe, resume=resume, overwrite=overwrite)
                    prepared.append(out)
                start.send(True)  # the other processes may start
                for name, seed, recipe, out in runs:
                    outcomes.append(_train(name, seed, recipe, out, resume=resume, device=device, evaluate=evaluate,
                                           progress=progress, console=console))
            except BaseException:
                # what this command wrote where training saved nothing goes again: a failed start (a
                # missing data path...) leaves no run behind
                for out in prepared:
                    if not holds_run(out):
                        _clear_failed_start(out)
                if claimed and not _runs_below(output_dir):
                    (output_dir / EXPERIMENT).unlink(missing_ok=True)
                raise
    finally:
        for folder in sorted(created, key=lambda p: len(p.parts), reverse=True):
            try:
                folder.rmdir()  # only if this command made it and left it empty
            except OSError:
                pass
    return outcomes


def _follow_first_process(
    loaded: LoadedRecipe, output_dir: Path, dist: Any, *, variant: str | list[str] | None, seeds: list[int] | None,
    device: str | None, resume: bool,
) -> None:
    """A process other than the first of a torchrun run: once the first has prepared the output
    folders, train every run with it (writing nothing), waiting for it to evaluate each one."""
    (go,) = dist.broadcast_values([0.0])
    if not go:
        raise SepkitError("the first process could not start the runs (its error is above)")
    for name, seed, recipe, out in plan_runs(loaded, output_dir, variant=variant, seeds=seeds):
        _train(name, seed, recipe, out, resume=resume, device=device, evaluate=False, progress=False, console=None)


def _train(
    name: str, seed: int | None, recipe: Recipe, out: Path, *, resume: bool, device: str | None, evaluate: bool,
    progress: bool, console: Any,
) -> VariantOutcome:
    """Train one run (resuming it if asked and it has a state), then evaluate it. Under torchrun
    every process trains; the others then wait while the first evaluates."""
    label = name if seed is None else f"{name}/{SEED_FOLDER.format(seed)}"
    trainer = Trainer(recipe, out, variant=label, device=device, progress=progress)
    can_resume = resume and (out / STATE_FILE).exists()
    if can_resume and trainer.dist.is_main:
        print(_resume_line(label, out / STATE_FILE), file=sys.stderr, flush=True)
    result = trainer.fit(resume=can_resume)
    if result.stopped_by == "interrupted":
        raise SepkitError(f"interrupted: training state saved in {out}; continue with --resume")
    summary = None
    if evaluate and recipe.data.test and trainer.dist.is_main:
        summary = evaluate_variant(recipe, out, device=device, progress=progress, console=console)
    trainer.dist.barrier()
    return VariantOutcome(name, out, result, summary, seed)


def evaluate_variant(
    recipe: Recipe, out: Path, *, device: str | None = None, progress: bool = True, console: Any = None
) -> dict[str, Any]:
    device = device or recipe.training.device
    model = load_model(out / MODEL_FILE)
    summary = evaluate_recipe(model, recipe, out / "evaluation", EvaluationOptions(device=device), progress=progress,
                              console=console)
    evaluate_selection_rules(recipe, out, device=device)
    return summary


def evaluate_selection_rules(recipe: Recipe, out: Path, *, device: str | None = None) -> None:
    """Score the model every selection rule kept (``evaluation-<rule>/``), quietly: ``sepkit report``
    shows what each rule would have given on the test set, so users see what selection costs."""
    scored = {_digest(out / MODEL_FILE): out / "evaluation"}
    for rule in RULES:
        path, folder = out / rule_file(rule), out / f"evaluation-{rule}"
        if not path.exists():
            continue
        digest = _digest(path)
        if digest in scored:  # the same epoch's model: the same scores
            _copy_results(scored[digest], folder)
        else:
            evaluate_recipe(load_model(path), recipe, folder, EvaluationOptions(device=device), progress=False, console=None)
            scored[digest] = folder


def _copy_results(source: Path, target: Path) -> None:
    """An evaluation folder's files into another, each written atomically (a killed copy leaves
    whole files, which the resumable evaluation trusts)."""
    for path in sorted(source.rglob("*")):
        if path.is_file():
            write_bytes(target / path.relative_to(source), path.read_bytes())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
