"""`sepkit run` under faults: failed starts, mixed recipes, concurrent runs, kill -9, a full disk,
damaged state files (issue 15, cases 1, 2, 3, 11 and 12, and the run part of the suite)."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from faultkit import (
    enospc_under, full_disk, kill9, one_line_error, partials, recipe_text, run_sepkit, start_sepkit, wait_for,
)

import sepkit.io
from sepkit.experiment import EXPERIMENT, RESOLVED
from sepkit.lock import LOCK_FILE, RunLock
from sepkit.testing.cli import invoke

STATE = Path("train-state") / "state.safetensors"
TIMING = {"seconds", "validation_seconds", "examples_per_second", "updates_per_second"}


def tensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def assert_same_tensors(a: Path, b: Path) -> None:
    left, right = tensors(a), tensors(b)
    assert left.keys() == right.keys()
    for key in left:
        assert np.array_equal(left[key], right[key]), f"{key} differs between {a} and {b}"


def journal(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in path.read_text().splitlines()]


def assert_same_run(run: Path, reference: Path) -> None:
    """Bit-identical weights, training state and logs (timings aside); nothing stale left."""
    for name in ("model.safetensors", "model-last.safetensors", str(STATE)):
        assert_same_tensors(run / name, reference / name)
    for name in ("metrics.jsonl", "validation.jsonl"):
        assert journal(run / name) == journal(reference / name), name
    assert partials(run) == [] and not (run / LOCK_FILE).exists()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_data) -> tuple[Path, Path]:
    """The baseline variant trained to its end in this process at umask 022: (recipe, run folder)."""
    root = tmp_path_factory.mktemp("finished")
    recipe = root / "tiny.toml"
    recipe.write_text(recipe_text(tiny_data), encoding="utf-8")
    saved = os.umask(0o022)
    try:
        result = invoke("run", recipe, "-o", root / "runs", "--variant", "baseline")
    finally:
        os.umask(saved)
    assert result.exit_code == 0, result.stderr
    return recipe, root / "runs"


def test_case1_run_and_report_outputs_have_the_permissions_of_a_plain_write(finished, tmp_path):
    recipe, runs = finished
    run = runs / "baseline"
    files = [run / RESOLVED, run / STATE, run / "model.safetensors", run / "model-last.safetensors",
             run / "training-curves.png", run / "metrics.jsonl", run / "evaluation" / "summary.json"]
    assert {str(f): oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {str(f): "0o644" for f in files}
    assert stat.S_IMODE((runs / EXPERIMENT).stat().st_mode) == 0o644
    saved = os.umask(0o022)
    try:
        result = invoke("report", runs, "--plot", tmp_path / "curves.png", "--markdown", tmp_path / "report.md")
    finally:
        os.umask(saved)
    assert result.exit_code == 0, result.stderr
    for made in ("curves.png", "report.md"):
        assert oct(stat.S_IMODE((tmp_path / made).stat().st_mode)) == "0o644"


def test_case2_a_failed_start_leaves_no_run_behind(tmp_path, tiny_data):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(recipe_text(tmp_path / "nowhere"), encoding="utf-8")
    out = tmp_path / "runs"
    args = ("run", recipe, "-o", out, "--no-evaluate")
    first = invoke(*args)
    assert first.exit_code != 0 and "does not exist" in one_line_error(first.stderr)
    assert not out.exists(), "nothing is left of a start that failed"
    (out / "baseline").mkdir(parents=True)  # what an older sepkit (or a kill -9) left: a recipe, no training
    (out / "baseline" / RESOLVED).write_text('name = "tiny"\n')
    again = invoke(*args)  # the same mistake: the same error, not "already holds a run"
    assert again.exit_code != 0 and one_line_error(again.stderr) == one_line_error(first.stderr)
    fixed = invoke(*args, "--variant", "baseline", "--set", f"paths.root={tiny_data}")  # the corrected command
    assert fixed.exit_code == 0, fixed.stderr
    assert (out / "baseline" / "model.safetensors").exists()
    assert not (out / "wide").exists(), "the failed start left nothing behind"


def test_case3_a_run_folder_holds_one_recipe(finished, tmp_path, tiny_data):
    recipe, runs = finished
    out = tmp_path / "runs"
    shutil.copytree(runs, out)
    other = tmp_path / "other.toml"
    other.write_text(recipe_text(tiny_data, name="other"), encoding="utf-8")
    refused = invoke("run", other, "-o", out, "--variant", "wide", "--no-evaluate")
    assert refused.exit_code != 0
    assert f"{out} holds the runs of recipe 'tiny' ({EXPERIMENT})" in one_line_error(refused.stderr)
    changed = invoke("run", recipe, "-o", out, "--variant", "wide", "--no-evaluate", "--set", "training.batch_size=3")
    assert changed.exit_code != 0
    assert "another version of recipe 'tiny' (training.batch_size differs)" in one_line_error(changed.stderr)
    assert not (out / "wide").exists(), "a refused run writes nothing"
    # a folder of an older sepkit (no experiment.json) that mixes two recipes: `report` refuses it
    (out / EXPERIMENT).unlink()
    shutil.copytree(out / "baseline", out / "default")
    resolved = out / "default" / RESOLVED
    resolved.write_text(resolved.read_text().replace('name = "tiny"', 'name = "default-model"'))
    report = invoke("report", out)
    assert report.exit_code != 0
    line = one_line_error(report.stderr)
    assert "holds the runs of 2 different recipes" in line and "'tiny'" in line and "'default-model'" in line
    again = invoke("run", recipe, "-o", out, "--variant", "wide", "--no-evaluate")
    assert again.exit_code != 0 and "holds runs of recipe 'default-model'" in one_line_error(again.stderr)


def test_case11_resume_after_a_full_disk_says_where_and_ends_bit_identical(finished, tmp_path, monkeypatch):
    """The disk fills up as the state of epoch 2 is written: one line naming the file, the state of
    epoch 1 kept whole; --resume says where it resumes and ends with the uninterrupted run's bytes."""
    recipe, runs = finished
    out = tmp_path / "runs"
    original = sepkit.io._write_all
    writes = []

    def second_state_write_fails(fd, data, path):
        if Path(path).name == STATE.name:
            writes.append(path)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(fd, data, path)

    monkeypatch.setattr(sepkit.io, "_write_all", second_state_write_fails)
    full = invoke("run", recipe, "-o", out, "--variant", "baseline")
    monkeypatch.undo()
    assert full.exit_code != 0
    assert one_line_error(full.stderr) == f"error: cannot write {out / 'baseline' / STATE}: No space left on device"
    assert partials(out) == [] and not (out / "baseline" / LOCK_FILE).exists()
    from sepkit.training.state import read_counters

    assert read_counters(out / "baseline" / STATE)["epoch"] == 1, "the previous good state is kept"
    resumed = invoke("run", recipe, "-o", out, "--variant", "baseline", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert f"[baseline] resuming after epoch 1 (update 2) from {out / 'baseline' / STATE}" in resumed.stderr
    assert_same_run(out / "baseline", runs / "baseline")


@pytest.mark.parametrize("target", ["model.safetensors", "metrics.jsonl"])
def test_disk_full_on_the_model_or_the_metrics_is_one_line_and_leaves_nothing_half_written(finished, tmp_path, monkeypatch, target):
    recipe, _ = finished
    out = tmp_path / "runs"
    with enospc_under(tmp_path, monkeypatch, names=(target,)):
        result = invoke("run", recipe, "-o", out, "--variant", "baseline", "--no-evaluate")
    assert result.exit_code != 0
    assert one_line_error(result.stderr) == f"error: cannot write {out / 'baseline' / target}: No space left on device"
    assert partials(out) == [] and not (out / "baseline" / target).exists()
    assert not (out / "baseline" / LOCK_FILE).exists()


def test_disk_full_on_a_small_tmpfs(tmp_path, monkeypatch, tiny_data):
    """The whole output folder on a 64 KiB file system (as root; else every write fails): the run
    stops with one line naming the file it could not write, and what it did write is whole."""
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(recipe_text(tiny_data), encoding="utf-8")
    out = tmp_path / "full"
    with full_disk(out, monkeypatch, size="64k"):
        result = invoke("run", recipe, "-o", out, "--variant", "baseline", "--no-evaluate")
        assert result.exit_code != 0
        line = one_line_error(result.stderr)
        assert line.startswith(f"error: cannot write {out}") and line.endswith("No space left on device"), line
        assert partials(out) == []
        if (out / "baseline" / STATE).exists():
            from sepkit.training.state import load_state

            load_state(out / "baseline" / STATE)
        if (out / "baseline" / "model.safetensors").exists():
            from sepkit.model import load_model

            load_model(out / "baseline" / "model.safetensors")
        if (out / "baseline" / "metrics.jsonl").exists():
            from sepkit.training.journal import read_jsonl

            read_jsonl(out / "baseline" / "metrics.jsonl")


@pytest.mark.parametrize("damage", ["truncated", "bit flipped in a weight", "bit flipped in the header"])
def test_a_damaged_state_file_is_a_clear_error_and_is_left_as_it_is(finished, tmp_path, damage):
    recipe, runs = finished
    out = tmp_path / "runs"
    shutil.copytree(runs, out)
    state = out / "baseline" / STATE
    data = bytearray(state.read_bytes())
    header = int.from_bytes(data[:8], "little")
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "bit flipped in a weight":
        data[8 + header + (len(data) - 8 - header) // 2] ^= 0x10
    else:
        data[8 + header // 2] ^= 0x01
    state.write_bytes(bytes(data))
    result = invoke("run", recipe, "-o", out, "--variant", "baseline", "--resume", "--set", "training.max_epochs=2")
    assert result.exit_code != 0
    line = one_line_error(result.stderr)
    assert line.startswith(f"error: {state}: ") and ("corrupt training state" in line or "not a sepkit training state" in line), line
    assert state.read_bytes() == bytes(data), "a failed resume does not touch the state"
    assert (out / "baseline" / "model.safetensors").exists() and partials(out) == []


def test_case12_concurrent_runs_are_refused_and_kill_9_then_resume_is_bit_identical(tmp_path, tiny_data):
    """A child `sepkit run` holds the folder: a second run of it is refused (naming the child's pid),
    another variant of the same folder is not. The child is killed -9 at random points (twice), and
    `--resume` takes over its stale lock and ends with the bytes of an uninterrupted run."""
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(recipe_text(tiny_data, max_epochs=3), encoding="utf-8")
    args = ("run", recipe, "--variant", "baseline", "--no-evaluate")
    reference = run_sepkit(*args, "-o", tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "runs"
    lock = out / "baseline" / LOCK_FILE
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    for attempt in range(2):
        child = start_sepkit(*args, "-o", out, *(["--resume"] if attempt else []))
        if not wait_for(lambda: lock.exists() and str(child.pid) in lock.read_text(), child, "the child's lock"):
            pytest.fail(f"the child ended before it took its lock: {child.communicate()}")
        if attempt == 0:
            refused = invoke(*args, "-o", out, "--resume")
            assert refused.exit_code != 0
            assert f"is in use by another sepkit run (pid {child.pid}" in one_line_error(refused.stderr)
        lines = rng.randint(0, 6)  # metrics lines (updates) to wait for before the kill
        wait_for(lambda: (out / "baseline" / "metrics.jsonl").exists()
                 and len((out / "baseline" / "metrics.jsonl").read_text().splitlines()) >= lines, child, "progress")
        kill9(child)
    assert lock.exists(), "kill -9 leaves the lock file behind"
    resumed = run_sepkit(*args, "-o", out, "--resume")
    assert resumed.returncode == 0, f"seed {seed}: {resumed.stderr}"
    if "took over the stale lock" not in resumed.stderr:
        assert False, f"seed {seed}: the stale lock was not reported: {resumed.stderr}"
    assert_same_run(out / "baseline", tmp_path / "reference" / "baseline")


def test_another_variant_of_a_locked_folder_may_train(tmp_path, tiny_data):
    """benchmarks/cpu_experiment.sh trains two variants into one folder at once: still allowed."""
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(recipe_text(tiny_data, max_epochs=1), encoding="utf-8")
    out = tmp_path / "runs"
    with RunLock(out / "baseline"):  # as if another process trained the baseline right now
        refused = invoke("run", recipe, "-o", out, "--variant", "baseline", "--no-evaluate")
        assert refused.exit_code != 0 and "is in use by another sepkit run" in refused.stderr
        other = invoke("run", recipe, "-o", out, "--variant", "wide", "--no-evaluate")
        assert other.exit_code == 0, other.stderr
    stale = out / "baseline" / LOCK_FILE  # a lock whose owner died without a word
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text(json.dumps({"pid": 999999999, "host": "elsewhere-or-here", "started": 0}))
    result = invoke("run", recipe, "-o", out, "--variant", "baseline", "--no-evaluate")
    assert result.exit_code == 0, result.stderr
    assert not stale.exists()
