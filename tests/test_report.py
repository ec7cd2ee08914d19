"""`sepkit report` (mean ± std over seeds, seed-paired differences, unfinished runs, wall time,
Markdown and JSON) on fabricated run folders, and `sepkit run --seeds` (seed parsing, the folder
plan, and one tiny end-to-end run on generated data)."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from sepkit.errors import SepkitError
from sepkit.experiment import RESOLVED, parse_seeds, plan_runs, with_seed
from sepkit.recipe import load_recipe
from sepkit.recipe.resolve import resolve
from sepkit.report import aggregate, find_runs, markdown, read_run, subsets, table_rows, to_json

SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------- fabricated runs
def means(acc: tuple[float, float, float], voc: tuple[float, float, float]) -> dict[str, dict[str, float]]:
    """``{source: {metric: value}}`` from (SDR, SIR, SAR) of accompaniment and vocals."""
    return {
        "accompaniment": dict(zip(("SDR", "SIR", "SAR"), map(float, acc))),
        "vocals": dict(zip(("SDR", "SIR", "SAR"), map(float, voc))),
    }


def make_run(
    root: Path,
    variant: str,
    seed: int,
    *,
    subsets: dict[str, tuple[int, dict]] | None = None,
    overall: tuple[int, dict] | None = None,
    protocol: str = "paper",
    epochs: list[tuple[float, float]] = ((10.0, 2.0),),
    bad_epochs: list[int] | None = None,
    max_epochs: int | None = None,
    early_stopping: bool = False,
    patience: int = 1,
    seeded: bool = True,
    log: bool = True,
) -> Path:
    """A run folder as `sepkit run` leaves it: resolved recipe, validation log, maybe a test summary.

    ``subsets``: name -> (tracks, means); with one subset and no ``overall``, overall is that subset.
    ``epochs``: (training seconds, validation seconds) per epoch."""
    folder = root / variant / f"seed-{seed}" if seeded else root / variant
    folder.mkdir(parents=True)
    max_epochs = len(epochs) if max_epochs is None else max_epochs
    (folder / RESOLVED).write_text(
        f'name = "fabricated"\nsources = ["accompaniment", "vocals"]\n[training]\nseed = {seed}\n'
        f"max_epochs = {max_epochs}\nearly_stopping = {str(early_stopping).lower()}\npatience = {patience}\n"
        'device = "cpu"\n',
        encoding="utf-8",
    )
    if log:
        bad = bad_epochs or [0] * len(epochs)
        records = [
            {"epoch": i, "step": 10 * i, "seconds": s, "validation_seconds": v, "loss": 1.0 / i,
             "sdr": {"vocals": 1.0}, "best": b == 0, "bad_epochs": b}
            for i, ((s, v), b) in enumerate(zip(epochs, bad), start=1)
        ]
        (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    if subsets is not None:
        if overall is None:
            assert len(subsets) == 1
            overall = next(iter(subsets.values()))
        block = lambda tracks, mean: {"tracks": tracks, "mean": mean, "median": mean}  # noqa: E731
        summary = {
            "protocol": protocol,
            "sources": ["accompaniment", "vocals"],
            "metrics": ["SDR", "SIR", "SAR", "NSDR"],
            "tracks": overall[0],
            "overall": block(*overall),
            "subsets": {name: block(*value) for name, value in subsets.items()},
        }
        (folder / "evaluation").mkdir()
        (folder / "evaluation" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def experiment(root: Path) -> Path:
    """Two variants x two seeds on one test subset (3 tracks); critic/seed-0 is unfinished.

    baseline: acc (SDR, SIR, SAR) (4, 10, 6), (4, 12, 6); voc (2, 8, 5), (4, 8, 7); 2 of 2 epochs,
              60 + 60 s and 120 + 120 s -> 2 and 4 minutes
    critic:   acc (5, 11, 6), (7, 11, 7);  voc (3, 9, 5), (3, 9, 5); 2 of 3 epochs (unfinished) and
              3 of 3 epochs, 240 s and 180 s -> 4 and 3 minutes
    """
    make_run(root, "baseline", 0, subsets={"synth-b": (3, means((4, 10, 6), (2, 8, 5)))},
             epochs=[(50, 10), (50, 10)])
    make_run(root, "baseline", 1, subsets={"synth-b": (3, means((4, 12, 6), (4, 8, 7)))},
             epochs=[(100, 20), (100, 20)])
    make_run(root, "critic", 0, subsets={"synth-b": (3, means((5, 11, 6), (3, 9, 5)))},
             epochs=[(90, 30), (90, 30)], max_epochs=3, early_stopping=True, patience=1, bad_epochs=[0, 1])
    make_run(root, "critic", 1, subsets={"synth-b": (3, means((7, 11, 7), (3, 9, 5)))},
             epochs=[(60, 0), (60, 0), (60, 0)], max_epochs=3)
    return root


SCORE_TABLE = [
    "| metric | baseline (2) | critic (2) |",
    "|---|---|---|",
    "| SDR accompaniment | 4.00 ± 0.00 | 6.00 ± 1.41 |",
    "| SDR vocals | 3.00 ± 1.41 | 3.00 ± 0.00 |",
    "| SIR accompaniment | 11.00 ± 1.41 | 11.00 ± 0.00 |",
    "| SIR vocals | 8.00 ± 0.00 | 9.00 ± 0.00 |",
    "| SAR accompaniment | 6.00 ± 0.00 | 6.50 ± 0.71 |",
    "| SAR vocals | 6.00 ± 1.41 | 5.00 ± 0.00 |",
]
DIFFERENCE_TABLE = [
    "| metric | critic (2) |",
    "|---|---|",
    "| SDR accompaniment | +2.00 ± 1.41 |",
    "| SDR vocals | +0.00 ± 1.41 |",
    "| SIR accompaniment | +0.00 ± 1.41 |",
    "| SIR vocals | +1.00 ± 0.00 |",
    "| SAR accompaniment | +0.50 ± 0.71 |",
    "| SAR vocals | -1.00 ± 1.41 |",
]
RUNS_TABLE = [
    "| variant | seeds | epochs | wall time per seed (min) |",
    "|---|---|---|---|",
    "| baseline | 0, 1 | 2 | 3.00 ± 1.41 |",
    "| critic | 0, 1 (unfinished: 0) | 2.5 ± 0.7 | 3.50 ± 0.71 |",
]


def block_at(lines: list[str], block: list[str]) -> int:
    """Index where ``block`` appears as consecutive lines of ``lines`` (fails when it does not)."""
    for i in range(len(lines) - len(block) + 1):
        if lines[i : i + len(block)] == block:
            return i
    raise AssertionError("block not found:\n" + "\n".join(block) + "\n--- in ---\n" + "\n".join(lines))


def one_line_error(result) -> str:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


# --------------------------------------------------------------------------- reading runs
def test_runs_are_found_grouped_by_variant_and_read_from_their_folders(tmp_path):
    root = experiment(tmp_path / "exp")
    make_run(tmp_path / "exp", "plain", 7, seeded=False, subsets={"synth-b": (3, means((1, 1, 1), (1, 1, 1)))})
    runs = find_runs(root)
    assert [(r.variant, r.seed) for r in runs] == [("baseline", 0), ("baseline", 1), ("critic", 0), ("critic", 1), ("plain", 7)]
    assert runs[-1].folder == root / "plain"
    first = runs[0]
    assert first.folder == root / "baseline" / "seed-0"
    assert first.epochs == 2 and first.best_epoch == 2 and first.finished
    assert first.train_seconds == 100.0 and first.validation_seconds == 20.0 and first.wall_seconds == 120.0
    assert first.protocol == "paper"
    assert first.tracks == {"All": 3, "synth-b": 3}
    assert first.scores["synth-b"]["vocals"]["SDR"] == 2.0 and first.scores["All"]["accompaniment"]["SIR"] == 10.0
    # a seed folder given directly is still a run of its parent's variant
    (single,) = find_runs(root / "critic" / "seed-1")
    assert (single.variant, single.seed, single.epochs) == ("critic", 1, 3)


def test_mean_and_sample_std_over_seeds(tmp_path):
    root = tmp_path / "exp"
    for seed, sdr, sir in ((0, 5.0, 1.0), (1, 7.0, 2.0), (2, 9.0, 6.0)):
        make_run(root, "critic", seed, subsets={"synth-b": (2, means((sdr, sir, 0.5), (-sdr, 10.0, 3.0)))})
    report = aggregate(find_runs(root))
    entry = report["variants"]["critic"]
    assert entry["seeds"] == [0, 1, 2] and entry["evaluated_seeds"] == [0, 1, 2]
    for subset in ("All", "synth-b"):
        cells = entry["scores"][subset]
        assert cells["accompaniment"]["SDR"] == pytest.approx((7.0, 2.0))
        assert cells["vocals"]["SDR"] == pytest.approx((-7.0, 2.0))
        assert cells["accompaniment"]["SIR"] == pytest.approx((3.0, float(np.std([1, 2, 6], ddof=1))))
        assert cells["vocals"]["SIR"] == pytest.approx((10.0, 0.0))
    assert report["protocol"] == "paper" and report["reference"] is None
    assert "difference" not in entry


def test_differences_are_paired_by_seed_and_unpaired_seeds_left_out(tmp_path):
    root = tmp_path / "exp"
    for seed, sdr in ((0, 5.0), (1, 7.0), (2, 100.0)):  # seed 2 has no baseline counterpart
        make_run(root, "A", seed, subsets={"test": (4, means((sdr, 0, 0), (0, 0, 0)))})
    for seed in (0, 1):
        make_run(root, "baseline", seed, subsets={"test": (4, means((4, 0, 0), (0, 0, 0)))})
    make_run(root, "baseline", 3, log=True)  # trained but not evaluated: nothing to pair with
    make_run(root, "A", 3, subsets={"test": (4, means((50, 0, 0), (0, 0, 0)))})
    report = aggregate(find_runs(root), reference="baseline", order=["baseline"])
    assert list(report["variants"]) == ["baseline", "A"]
    a = report["variants"]["A"]
    assert a["paired_seeds"] == [0, 1]
    assert a["difference"]["test"]["accompaniment"]["SDR"] == pytest.approx((2.0, SQRT2))
    assert a["difference"]["All"]["accompaniment"]["SDR"] == pytest.approx((2.0, SQRT2))
    assert a["difference"]["test"]["vocals"]["SDR"] == pytest.approx((0.0, 0.0))
    # the variant's own cell still uses every evaluated seed
    assert a["scores"]["test"]["accompaniment"]["SDR"] == pytest.approx((40.5, float(np.std([5, 7, 100, 50], ddof=1))))
    base = report["variants"]["baseline"]
    assert "difference" not in base and base["seeds"] == [0, 1, 3] and base["evaluated_seeds"] == [0, 1]
    header, rows = table_rows(report, "test", key="difference", metrics=("SDR",))
    assert header == ["metric", "A (2)"]
    assert rows == [["SDR accompaniment", "+2.00 ± 1.41"], ["SDR vocals", "+0.00 ± 0.00"]]
    header, rows = table_rows(report, "test", metrics=("SDR",))
    assert header == ["metric", "baseline (2)", "A (4)"]
    assert rows[0] == ["SDR accompaniment", "4.00 ± 0.00", "40.50 ± 44.77"]


def test_a_single_seed_has_no_std(tmp_path):
    root = tmp_path / "exp"
    make_run(root, "baseline", 0, subsets={"synth-b": (2, means((4, 10, 6), (2, 8, 5)))})
    make_run(root, "critic", 0, subsets={"synth-b": (2, means((5, 9.5, 6), (2, 8, 5)))})
    report = aggregate(find_runs(root), reference="baseline", order=["baseline"])
    critic = report["variants"]["critic"]
    assert critic["scores"]["synth-b"]["accompaniment"]["SDR"][0] == 5.0
    assert math.isnan(critic["scores"]["synth-b"]["accompaniment"]["SDR"][1])
    lines = markdown(report, metrics=("SDR", "SIR")).splitlines()
    block_at(lines, [
        "| metric | baseline (1) | critic (1) |",
        "|---|---|---|",
        "| SDR accompaniment | 4.00 | 5.00 |",
        "| SDR vocals | 2.00 | 2.00 |",
        "| SIR accompaniment | 10.00 | 9.50 |",
        "| SIR vocals | 8.00 | 8.00 |",
    ])
    block_at(lines, [
        "| metric | critic (1) |",
        "|---|---|",
        "| SDR accompaniment | +1.00 |",
        "| SDR vocals | +0.00 |",
        "| SIR accompaniment | -0.50 |",
        "| SIR vocals | +0.00 |",
    ])
    block_at(lines, ["| baseline | 0 | 1 | 0.20 |", "| critic | 0 | 1 | 0.20 |"])  # 12 s = 0.2 min, no std
    assert not any("±" in line for line in lines if line.startswith("|"))


def test_one_subset_is_shown_once_under_its_name_several_give_all_first(tmp_path):
    one = tmp_path / "one"
    make_run(one, "baseline", 0, subsets={"synth-b": (3, means((1, 1, 1), (1, 1, 1)))})
    report = aggregate(find_runs(one))
    assert subsets(report) == ["synth-b"]
    text = markdown(report)
    assert "**synth-b** (3 tracks;" in text and "**All**" not in text
    assert text.count("| metric | baseline (1) |") == 1

    several = tmp_path / "several"
    make_run(several, "baseline", 0, overall=(5, means((3, 3, 3), (3, 3, 3))),
             subsets={"zeta": (2, means((1, 1, 1), (1, 1, 1))), "alpha": (3, means((5, 5, 5), (5, 5, 5)))})
    report = aggregate(find_runs(several))
    assert subsets(report) == ["All", "zeta", "alpha"]
    text = markdown(report, metrics=("SDR",))
    headings = [line for line in text.splitlines() if line.startswith("**")]
    assert [h.split(" (")[0] for h in headings] == ["**All**", "**zeta**", "**alpha**"]
    assert "**All** (5 tracks;" in text and "**zeta** (2 tracks;" in text and "**alpha** (3 tracks;" in text
    rows = [line for line in text.splitlines() if line.startswith("| SDR accompaniment")]
    assert rows == ["| SDR accompaniment | 3.00 |", "| SDR accompaniment | 1.00 |", "| SDR accompaniment | 5.00 |"]


def test_unfinished_runs_and_wall_time(tmp_path):
    root = tmp_path / "exp"
    # 0: 2 of 3 epochs, patience not yet exceeded -> unfinished
    make_run(root, "v", 0, epochs=[(30, 6), (30, 6)], max_epochs=3, early_stopping=True, patience=1, bad_epochs=[0, 1])
    # 1: early-stopped at epoch 3 of 5 (bad_epochs 2 > patience 1) -> finished
    make_run(root, "v", 1, epochs=[(60, 0)] * 3, max_epochs=5, early_stopping=True, patience=1, bad_epochs=[0, 1, 2])
    # 2: the same log without early stopping -> unfinished
    make_run(root, "v", 2, epochs=[(60, 0)] * 3, max_epochs=5, early_stopping=False, patience=1, bad_epochs=[0, 1, 2])
    # 3: all epochs done -> finished
    make_run(root, "v", 3, epochs=[(100, 20), (100, 20)], max_epochs=2)
    # 4: no validation log at all -> unfinished, no time
    make_run(root, "v", 4, log=False, max_epochs=2)
    runs = {r.seed: r for r in find_runs(root)}
    assert {s: r.finished for s, r in runs.items()} == {0: False, 1: True, 2: False, 3: True, 4: False}
    assert {s: r.epochs for s, r in runs.items()} == {0: 2, 1: 3, 2: 3, 3: 2, 4: 0}
    assert {s: r.wall_seconds for s, r in runs.items()} == {0: 72.0, 1: 180.0, 2: 180.0, 3: 240.0, 4: 0.0}
    assert runs[0].best_epoch == 1 and runs[4].best_epoch is None
    report = aggregate(list(runs.values()))
    entry = report["variants"]["v"]
    assert entry["unfinished_seeds"] == [0, 2, 4]
    minutes = [1.2, 3.0, 3.0, 4.0, 0.0]
    assert entry["wall_minutes"] == pytest.approx((float(np.mean(minutes)), float(np.std(minutes, ddof=1))))
    assert entry["epochs"] == pytest.approx((2.0, float(np.std([2, 3, 3, 2, 0], ddof=1))))
    assert entry["scores"] == {} and entry["evaluated_seeds"] == []
    text = markdown(report)
    assert "**" not in text  # nothing evaluated: only the runs table
    assert text.splitlines()[:3] == [
        "| variant | seeds | epochs | wall time per seed (min) |",
        "|---|---|---|---|",
        "| v | 0, 1, 2, 3, 4 (unfinished: 0, 2, 4) | 2.0 ± 1.2 | 2.24 ± 1.61 |",
    ]


def test_markdown_of_an_experiment(tmp_path):
    report = aggregate(find_runs(experiment(tmp_path / "exp")), reference="baseline", order=["baseline"])
    lines = markdown(report).splitlines()
    heading = lines.index("**synth-b** (3 tracks; mean over tracks, then mean ± std over seeds, dB; (n) = seeds)")
    scores = block_at(lines, SCORE_TABLE)
    difference = block_at(lines, DIFFERENCE_TABLE)
    runs = block_at(lines, RUNS_TABLE)
    assert heading < scores < difference < runs
    assert "Difference to `baseline`, paired by seed (synth-b):" in lines
    assert sum(line.startswith("**") for line in lines) == 1


# --------------------------------------------------------------------------- the command
def test_cli_markdown_to_a_file_and_to_stdout(tmp_path, run_cli):
    root = experiment(tmp_path / "exp")
    out = tmp_path / "table.md"
    result = run_cli("report", root, "--markdown", out)
    assert result.exit_code == 0, result.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    for block in (SCORE_TABLE, DIFFERENCE_TABLE, RUNS_TABLE):
        block_at(lines, block)
    # the terminal tables too
    assert "synth-b: mean ± std over seeds (dB)" in result.stdout
    assert "synth-b: minus baseline, paired by" in result.stdout  # the title may wrap
    cells = [[c.strip() for c in line.strip("│ ").split("│")] for line in result.stdout.splitlines() if line.startswith("│")]
    assert ["SDR accompaniment", "4.00 ± 0.00", "6.00 ± 1.41"] in cells
    assert ["SDR accompaniment", "+2.00 ± 1.41"] in cells and ["SAR vocals", "-1.00 ± 1.41"] in cells
    assert ["critic", "0, 1", "0", "2.5 ± 0.7", "3.50 ± 0.71"] in cells
    assert ["baseline", "0, 1", "-", "2", "3.00 ± 1.41"] in cells

    piped = run_cli("report", root, "--markdown", "-")
    assert piped.exit_code == 0, piped.stderr
    assert piped.stdout.rstrip("\n").splitlines() == lines  # only the Markdown on stdout
    assert not (Path.cwd() / "-").exists()

    sdr_only = run_cli("report", root, "--markdown", "-", "--metrics", "SDR")
    assert sdr_only.exit_code == 0, sdr_only.stderr
    block_at(sdr_only.stdout.splitlines(), SCORE_TABLE[:4] + [""])
    assert "| SIR" not in sdr_only.stdout


def test_cli_reference_and_order(tmp_path, run_cli):
    root = experiment(tmp_path / "exp")
    result = run_cli("report", root, "--markdown", "-", "--reference", "critic", "--metrics", "SDR")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    block_at(lines, ["| metric | critic (2) | baseline (2) |", "|---|---|---|",
                     "| SDR accompaniment | 6.00 ± 1.41 | 4.00 ± 0.00 |", "| SDR vocals | 3.00 ± 0.00 | 3.00 ± 1.41 |"])
    block_at(lines, ["| metric | baseline (2) |", "|---|---|",
                     "| SDR accompaniment | -2.00 ± 1.41 |", "| SDR vocals | +0.00 ± 1.41 |"])
    assert "Difference to `critic`" in result.stdout

    ordered = run_cli("report", root, "--markdown", "-", "--order", "critic,baseline", "--metrics", "SDR")
    assert ordered.exit_code == 0, ordered.stderr
    assert "| metric | critic (2) | baseline (2) |" in ordered.stdout
    assert "| SDR accompaniment | +2.00 ± 1.41 |" in ordered.stdout  # still minus the default reference


def test_cli_json(tmp_path, run_cli):
    root = experiment(tmp_path / "exp")
    make_run(root, "single", 1, subsets={"synth-b": (3, means((6, 6, 6), (6, 6, 6)))}, epochs=[(30, 0)])
    result = run_cli("report", root, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["protocol"] == "paper" and data["reference"] == "baseline"
    assert list(data["variants"]) == ["baseline", "critic", "single"]
    critic = data["variants"]["critic"]
    assert critic["seeds"] == [0, 1] and critic["unfinished_seeds"] == [0] and critic["paired_seeds"] == [0, 1]
    assert critic["scores"]["synth-b"]["accompaniment"]["SDR"] == pytest.approx({"mean": 6.0, "std": SQRT2})
    assert critic["difference"]["synth-b"]["accompaniment"]["SDR"] == pytest.approx({"mean": 2.0, "std": SQRT2})
    assert critic["wall_minutes"] == pytest.approx({"mean": 3.5, "std": math.sqrt(0.5)})
    assert critic["epochs"] == pytest.approx({"mean": 2.5, "std": math.sqrt(0.5)})
    assert critic["tracks"] == {"All": 3, "synth-b": 3}
    single = data["variants"]["single"]
    assert single["scores"]["All"]["vocals"]["SDR"] == {"mean": 6.0, "std": None}  # NaN std -> null
    assert single["paired_seeds"] == [1]
    assert single["difference"]["All"]["vocals"]["SDR"] == {"mean": 2.0, "std": None}  # 6 - 4 (baseline seed 1)
    assert single["wall_minutes"] == {"mean": 0.5, "std": None}
    assert data == to_json(aggregate(find_runs(root), reference="baseline", order=["baseline"]))


@pytest.mark.parametrize("case", ["missing", "empty", "reference", "protocols", "bad-seeds-of-run"])
def test_cli_errors_are_one_line(tmp_path, run_cli, case):
    root = tmp_path / "exp"
    args: list = ["report", root]
    if case == "missing":
        expected = f"{root}: no such run folder"
    elif case == "empty":
        (root / "baseline" / "seed-0").mkdir(parents=True)
        (root / "baseline" / "seed-0" / "validation.jsonl").write_text("")
        expected = "holds no runs"
    elif case == "reference":
        experiment(root)
        args += ["--reference", "nope"]
        expected = "reference variant 'nope' has no runs here; variants: baseline, critic"
    elif case == "protocols":
        make_run(root, "baseline", 0, subsets={"t": (1, means((1, 1, 1), (1, 1, 1)))}, protocol="paper")
        make_run(root, "critic", 0, subsets={"t": (1, means((1, 1, 1), (1, 1, 1)))}, protocol="bsseval-v4")
        expected = "runs were evaluated with different protocols: bsseval-v4, paper"
    else:
        folder = root / "baseline" / "seed-0"
        folder.mkdir(parents=True)
        (folder / RESOLVED).write_text("[training\nseed = ")
        expected = f"{folder / RESOLVED}: unreadable"
    line = one_line_error(run_cli(*args))
    assert expected in line
    if case == "missing":
        assert not root.exists()


def test_api_errors(tmp_path):
    with pytest.raises(SepkitError, match="no such run folder"):
        find_runs(tmp_path / "nothing")
    root = experiment(tmp_path / "exp")
    with pytest.raises(SepkitError, match="reference variant 'x' has no runs here; variants: baseline, critic"):
        aggregate(find_runs(root), reference="x")
    run = read_run(root / "critic" / "seed-0")
    run.protocol = "bsseval-v4"
    with pytest.raises(SepkitError, match="different protocols: bsseval-v4, paper"):
        aggregate([run, *find_runs(root)[:2]])


# --------------------------------------------------------------------------- sepkit run --seeds
@pytest.mark.parametrize("text, seeds", [
    ("0,1,2", [0, 1, 2]), ("0-2", [0, 1, 2]), ("3,5-6", [3, 5, 6]), (" 4 , 1 ", [4, 1]), ("7", [7]), ("2-2", [2]),
])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [
    ("a", "expected distinct non-negative integers"), ("", "expected distinct non-negative integers"),
    ("1,,2", "expected distinct non-negative integers"), ("0-x", "expected distinct non-negative integers"),
    ("1,1", "expected distinct non-negative integers"), ("0-2,1", "expected distinct non-negative integers"),
    ("-1", "expected distinct non-negative integers"), ("0,-1", "expected distinct non-negative integers"),
    ("2-0", "the range 2-0 is reversed"),
])
def test_parse_seeds_errors(text, message):
    with pytest.raises(SepkitError, match=message) as info:
        parse_seeds(text)
    assert repr(text) in str(info.value) and "\n" not in str(info.value)


def tiny_recipe() -> str:
    """Generated data, two 2-second training items, one validation and one test item, a 2-level U-Net
    with 4 filters, 2 updates of batch 2: seconds per run on a CPU."""
    item = "tracks = {n}\nseconds = 2\nsample_rate = 4000\n"
    return f'''
name = "tiny-seeds"
sources = ["accompaniment", "vocals"]
[audio]
sample_rate = 4000
channels = 1
[representation]
type = "magnitude-stft"
n_fft = 128
hop_length = 64
[separator]
type = "unet"
depth = 2
base_filters = 4
input_frames = 46
[training]
batch_size = 2
updates_per_epoch = 2
max_epochs = 1
early_stopping = false
critic_iterations = 1
device = "cpu"
seed = 7
[evaluation]
batch_size = 4
[[data.paired]]
type = "synthetic"
domain = "a"
{item.format(n=2)}
[[data.validation]]
type = "synthetic"
domain = "b"
{item.format(n=1)}
[[data.test]]
type = "synthetic"
domain = "b"
name = "synth-b"
{item.format(n=1)}
[[data.mixtures]]
type = "synthetic"
domain = "b"
{item.format(n=2)}
[[data.solo.vocals]]
type = "synthetic"
domain = "b"
{item.format(n=2)}
[variants.baseline]
[variants.critic.critics.vocals]
type = "dcgan"
crop = [64, 16]
base_filters = 4
max_filters = 8
dense_units = 8
'''


@pytest.fixture
def recipe_path(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_recipe(), encoding="utf-8")
    return path


def _without_seed(data: dict) -> dict:
    data = json.loads(json.dumps(data))
    data["training"].pop("seed")
    return data


def test_plan_runs_is_seed_major_with_one_folder_per_variant_and_seed(tmp_path, recipe_path):
    loaded = load_recipe(recipe_path)
    out = tmp_path / "out"
    plan = plan_runs(loaded, out, seeds=[3, 1])
    assert [(name, seed, folder) for name, seed, _, folder in plan] == [
        ("baseline", 3, out / "baseline" / "seed-3"),
        ("critic", 3, out / "critic" / "seed-3"),
        ("baseline", 1, out / "baseline" / "seed-1"),
        ("critic", 1, out / "critic" / "seed-1"),
    ]
    for name, seed, recipe, _ in plan:
        assert recipe.training.seed == seed
        assert _without_seed(resolve(recipe)) == _without_seed(resolve(loaded.variants[name]))
    assert loaded.variants["baseline"].training.seed == 7  # the loaded recipe is left alone

    only = plan_runs(loaded, out, variant="critic", seeds=[0, 1])
    assert [(n, s, f) for n, s, _, f in only] == [("critic", 0, out / "critic" / "seed-0"), ("critic", 1, out / "critic" / "seed-1")]
    assert [r.critics.keys() == {"vocals"} for _, _, r, _ in only] == [True, True]

    unseeded = plan_runs(loaded, out)
    assert [(n, s, f) for n, s, _, f in unseeded] == [("baseline", None, out / "baseline"), ("critic", None, out / "critic")]
    assert [r.training.seed for _, _, r, _ in unseeded] == [7, 7]
    with pytest.raises(SepkitError, match="unknown variant 'nope'"):
        plan_runs(loaded, out, variant="nope", seeds=[0])
    seeded = with_seed(loaded.variants["critic"], 11)
    assert seeded.training.seed == 11 and seeded.critics["vocals"] == loaded.variants["critic"].critics["vocals"]


def test_run_rejects_bad_seeds_before_touching_the_output(tmp_path, recipe_path, run_cli):
    out = tmp_path / "out"
    line = one_line_error(run_cli("run", recipe_path, "--seeds", "1,1", "-o", out))
    assert "--seeds '1,1'" in line
    assert not out.exists()


def _separator_weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_run_with_seeds_end_to_end_then_report(tmp_path, recipe_path, run_cli):
    out = tmp_path / "runs"
    args = ("run", recipe_path, "--variant", "baseline", "--seeds", "0,1", "-o", out, "--device", "cpu")
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    folders = [out / "baseline" / "seed-0", out / "baseline" / "seed-1"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob(RESOLVED)) == ["baseline/seed-0/" + RESOLVED, "baseline/seed-1/" + RESOLVED]
    for seed, folder in enumerate(folders):
        resolved = tomllib.loads((folder / RESOLVED).read_text(encoding="utf-8"))
        assert resolved["training"]["seed"] == seed
        assert resolved["training"]["max_epochs"] == 1 and resolved["critics"] == {}
        assert (folder / "evaluation" / "summary.json").exists()
        assert len((folder / "validation.jsonl").read_text().splitlines()) == 1
    # the comparison over seeds is printed at the end
    assert "synth-b: mean ± std over seeds (dB)" in result.stdout and "baseline (2)" in result.stdout
    a, b = (_separator_weights(f) for f in folders)
    assert a.keys() == b.keys() and len(a) > 0
    assert any(not np.array_equal(a[k], b[k]) for k in a), "seeds 0 and 1 trained the same model"

    # the report over what was written: mean and sample std of the two summaries
    report = run_cli("report", out, "--json")
    assert report.exit_code == 0, report.stderr
    data = json.loads(report.stdout)
    entry = data["variants"]["baseline"]
    assert list(data["variants"]) == ["baseline"] and data["protocol"] == "paper" and data["reference"] == "baseline"
    assert entry["seeds"] == [0, 1] and entry["unfinished_seeds"] == [] and entry["epochs"] == {"mean": 1.0, "std": 0.0}
    summaries = [json.loads((f / "evaluation" / "summary.json").read_text()) for f in folders]
    checked = 0
    for source in ("accompaniment", "vocals"):
        for metric in ("SDR", "SIR", "SAR"):
            values = [s["overall"]["mean"][source][metric] for s in summaries]
            if all(math.isfinite(v) for v in values):
                cell = entry["scores"]["synth-b"][source][metric]
                assert cell == pytest.approx({"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))})
                checked += 1
    assert checked >= 2
    seconds = [sum(r["seconds"] + r["validation_seconds"] for r in map(json.loads, (f / "validation.jsonl").read_text().splitlines()))
               for f in folders]
    minutes = [s / 60 for s in seconds]
    assert entry["wall_minutes"] == pytest.approx({"mean": float(np.mean(minutes)), "std": float(np.std(minutes, ddof=1))})

    # the same command again: refused before anything is touched, naming the folder
    model_bytes = [(f / "model.safetensors").read_bytes() for f in folders]
    again = run_cli(*args)
    line = one_line_error(again)
    assert f"{folders[0]} already holds a run of this recipe" in line and "--resume" in line
    assert [(f / "model.safetensors").read_bytes() for f in folders] == model_bytes

    resumed = run_cli(*args, "--resume", "--no-evaluate", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    rows = json.loads(resumed.stdout)
    assert [(r["variant"], r["seed"], r["stopped_by"]) for r in rows] == [
        ("baseline", 0, "already finished"), ("baseline", 1, "already finished")]
    assert [(f / "model.safetensors").read_bytes() for f in folders] == model_bytes


def test_seed_runs_are_not_mixed_with_an_unseeded_run(tmp_path):
    from sepkit.experiment import run_experiment
    from sepkit.recipe import load_recipe

    recipe_path = tmp_path / "tiny.toml"
    recipe_path.write_text(tiny_recipe(), encoding="utf-8")
    out = tmp_path / "runs"
    (out / "baseline").mkdir(parents=True)
    (out / "baseline" / "recipe.resolved.toml").write_text("name = 'x'\n", encoding="utf-8")
    (out / "baseline" / "model.safetensors").write_bytes(b"trained")  # a run, not a failed start
    with pytest.raises(SepkitError, match="holds a run without --seeds; its seed runs would be mixed with it"):
        run_experiment(load_recipe(recipe_path), out, variant="baseline", seeds=[0], progress=False)
    assert not (out / "baseline" / "seed-0").exists()


def test_report_markdown_options(tmp_path, run_cli):
    root = tmp_path / "runs"
    make_run(root, "baseline", 0, subsets={"field": (2, means((1, 2, 3), (4, 5, 6)))})
    result = run_cli("report", root, "--json", "--markdown", "-")
    assert result.exit_code != 0 and "--json and --markdown - both print to stdout" in result.stderr
    target = tmp_path / "new" / "folder" / "report.md"
    assert run_cli("report", root, "--markdown", target).exit_code == 0
    assert "| SDR vocals | 4.00 |" in target.read_text(encoding="utf-8")


def test_report_plot_draws_every_variant(tmp_path, run_cli):
    from sepkit.report_plots import _curves

    root = tmp_path / "runs"
    for variant, seeds in (("baseline", (0, 1)), ("critic", (0,))):
        for seed in seeds:
            folder = make_run(root, variant, seed, epochs=[(1.0, 1.0), (1.0, 1.0)])
            if variant == "critic":
                lines = [{"step": s, "epoch": 1, "divergence.vocals": 10.0 - s} for s in range(1, 8)]
                lines.append({"step": 8, "epoch": 1, "event": "nonfinite"})
                (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    curves = _curves(find_runs(root))
    assert sorted(curves["baseline"]) == ["validation SDR vocals (dB)", "validation loss"]
    assert len(curves["baseline"]["validation loss"]) == 2  # one series per seed
    (steps, values), = curves["critic"]["divergence estimate, vocals critic"]  # type unknown: "divergence"
    assert steps.tolist() == list(range(1, 8)) and values[0] == 9.0
    out = tmp_path / "plots" / "report.png"
    result = run_cli("report", root, "--plot", out)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(out.parent.glob(".*"))
    empty = tmp_path / "empty"
    make_run(empty, "baseline", 0, log=False)
    result = run_cli("report", empty, "--plot", tmp_path / "none.png")
    assert result.exit_code != 0 and "nothing to plot" in result.stderr


def test_a_corrupt_summary_is_one_line(tmp_path, run_cli):
    root = tmp_path / "runs"
    folder = make_run(root, "baseline", 0, subsets={"field": (2, means((1, 2, 3), (4, 5, 6)))})
    (folder / "evaluation" / "summary.json").write_text("{not json")
    result = run_cli("report", root)
    assert result.exit_code != 0
    assert "summary.json: not an evaluation summary (JSONDecodeError" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_model_selection_rules_side_by_side_and_select(tmp_path, run_cli):
    root = experiment(tmp_path / "exp")
    # the runs' validation-sdr models scored 1 dB better on accompaniment than the selected ones
    for folder in sorted(root.glob("*/seed-*")):
        summary = json.loads((folder / "evaluation" / "summary.json").read_text())
        for block in (summary["overall"], *summary["subsets"].values()):
            block["mean"]["accompaniment"]["SDR"] += 1.0 if folder.parent.name == "critic" else 0.0
        (folder / "evaluation-validation-sdr").mkdir()
        (folder / "evaluation-validation-sdr" / "summary.json").write_text(json.dumps(summary))
    result = run_cli("report", root, "--markdown", "-")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("**Model selection** (synth-b") for line in lines)
    assert "| critic (2) | validation-sdr | 7.00 ± 1.41 | 3.00 ± 0.00 | +3.00 ± 1.41 | +0.00 ± 1.41 |" in lines
    assert "| baseline (2) | validation-sdr | 4.00 ± 0.00 | 3.00 ± 1.41 | - | - |" in lines
    selected = run_cli("report", root, "--select", "validation-sdr", "--json")
    assert selected.exit_code == 0, selected.stderr
    data = json.loads(selected.stdout)
    assert data["variants"]["critic"]["difference"]["synth-b"]["accompaniment"]["SDR"]["mean"] == pytest.approx(3.0)
    bad = run_cli("report", root, "--select", "best")
    assert bad.exit_code != 0 and "not a selection rule" in bad.stderr
