"""recipes/demo_4stem.toml and recipes/demo_stereo.toml end to end at a tiny size: train both variants,
evaluate, separate, report and plot, with every source (four stems) and both channels (stereo)."""

from __future__ import annotations

import json

import soundfile

from tests.conftest import REPO

FOUR = ["drums", "bass", "other", "vocals"]


def tiny(datasets: list[str], cache) -> list[str]:
    """CI-sized: batches of 2, 2 updates x 2 epochs, two songs of 2 s per training dataset and one of
    1 s per test set (BSS Eval v4 of four sources is the costly part), generated into ``cache``."""
    options = []
    for key, value in (("batch_size", 2), ("updates_per_epoch", 2), ("max_epochs", 2), ("critic_iterations", 1)):
        options += ["--set", f"training.{key}={value}"]
    for dataset in datasets:
        size = (("tracks", 1), ("seconds", 1.0)) if dataset.startswith("test") else (("tracks", 2), ("seconds", 2.0))
        for key, value in (*size, ("cache_dir", f'"{cache}"')):
            options += ["--set", f"data.{dataset}.{key}={value}"]
    return options


def domain_b_mixture(cache):
    """A mixture of the domain-b test set, as generated for the run."""
    return next(cache.glob("b-test-*/b-test-0000/mixture.wav"))


def run_tiny(run_cli, tmp_path, recipe: str, datasets: list[str], variants: list[str]):
    """``sepkit run`` of a shipped recipe at the tiny size: its output folder, cache and JSON rows."""
    out, cache = tmp_path / "runs", tmp_path / "synthetic"
    result = run_cli("run", REPO / "recipes" / recipe, "--output-dir", out, "--device", "cpu", "--json", *tiny(datasets, cache))
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["variant"] for r in rows] == variants
    return out, cache, rows


def test_four_stem_demo_trains_separates_evaluates_and_reports_every_source(tmp_path, run_cli):
    datasets = ["paired.0", "mixtures.0", "solo.vocals.0", "solo.drums.0", "validation.0", "test.0", "test.1"]
    out, cache, rows = run_tiny(run_cli, tmp_path, "demo_4stem.toml", datasets, ["baseline", "critics"])
    for row in rows:
        assert row["epochs"] == 2
        overall = row["test"]["overall"]
        assert list(overall) == FOUR
        assert all(set(overall[s]) >= {"SDR", "ISR", "SIR", "SAR"} for s in FOUR)  # BSS Eval v4
        assert set(row["test"]["subsets"]) == {"synthetic-a", "synthetic-b"}
        validation = [json.loads(line) for line in (out / row["variant"] / "validation.jsonl").read_text().splitlines()]
        assert list(validation[-1]["sdr"]) == FOUR
    # critics for vocals and drums only: their divergences are logged, no other source has one
    metrics = [json.loads(line) for line in (out / "critics" / "metrics.jsonl").read_text().splitlines()]
    keys = {k for m in metrics for k in m if k.startswith("divergence.")}
    assert keys == {"divergence.vocals", "divergence.drums"}
    summary = json.loads((out / "critics" / "evaluation" / "summary.json").read_text())
    assert summary["protocol"] == "bsseval-v4" and summary["sources"] == FOUR

    # sepkit separate writes the four stems
    separated = tmp_path / "separated"
    result = run_cli("separate", domain_b_mixture(cache), "--model", out / "critics" / "model.safetensors", "--output", separated, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    written = sorted(p.name for p in (separated / "mixture").iterdir())
    assert written == sorted(f"{s}.wav" for s in FOUR)

    # sepkit report: every source in every table, and in the plot
    report = run_cli("report", out, "--json")
    assert report.exit_code == 0, report.stderr
    data = json.loads(report.stdout)
    for variant in ("baseline", "critics"):
        for subset in ("All", "synthetic-a", "synthetic-b"):
            assert list(data["variants"][variant]["scores"][subset]) == FOUR
    assert list(data["variants"]["critics"]["difference"]["All"]) == FOUR
    markdown = run_cli("report", out, "--markdown", "-")
    assert markdown.exit_code == 0
    for source in FOUR:
        assert f"| SDR {source} |" in markdown.stdout
    plot = tmp_path / "report.png"
    assert run_cli("report", out, "--plot", plot).exit_code == 0 and plot.read_bytes()[:4] == b"\x89PNG"
    compare = run_cli("evaluate", "--compare", out / "baseline" / "evaluation", out / "critics" / "evaluation")
    assert compare.exit_code == 0, compare.stderr
    assert all(source in compare.stdout for source in FOUR)


def test_stereo_demo_trains_evaluates_and_separates_both_channels(tmp_path, run_cli):
    datasets = ["paired.0", "mixtures.0", "solo.vocals.0", "solo.accompaniment.0", "validation.0", "test.0", "test.1"]
    out, cache, rows = run_tiny(run_cli, tmp_path, "demo_stereo.toml", datasets, ["baseline", "both-critics"])
    for row in rows:
        track = json.loads(next((out / row["variant"] / "evaluation").glob("b-test-*.json")).read_text())
        assert track["channels"] == 2 and track["protocol"] == "bsseval-v4"
        assert all(isinstance(row["test"]["overall"][s]["SDR"], float) for s in ("accompaniment", "vocals"))
    metrics = [json.loads(line) for line in (out / "both-critics" / "metrics.jsonl").read_text().splitlines()]
    assert all("divergence.vocals" in m and "divergence.accompaniment" in m for m in metrics if "event" not in m)

    mixture = domain_b_mixture(cache)
    assert soundfile.info(str(mixture)).channels == 2
    separated = tmp_path / "separated"
    result = run_cli("separate", mixture, "--model", out / "both-critics" / "model.safetensors", "--output", separated, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    for source in ("accompaniment", "vocals"):
        info = soundfile.info(str(separated / "mixture" / f"{source}.wav"))
        assert info.channels == 2 and info.samplerate == 8192
