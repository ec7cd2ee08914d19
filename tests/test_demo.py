"""The README's main job, `sepkit run recipes/demo.toml`, end to end at a tiny size."""

from __future__ import annotations

import json

from tests.conftest import REPO

#: CI-sized: fewer generated validation and test tracks than the demo's defaults.
SMALL = ["--set", "data.validation.0.tracks=2", "--set", "data.test.0.tracks=2", "--set", "data.test.1.tracks=2"]


def test_demo_recipe_trains_evaluates_and_compares_both_variants(tmp_path, run_cli):
    out = tmp_path / "runs"
    result = run_cli(
        "run", REPO / "recipes" / "demo.toml", "--output-dir", out, "--device", "cpu", "--json",
        "--set", "training.updates_per_epoch=2", "--set", "training.max_epochs=2", *SMALL,
    )
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["variant"] for r in rows] == ["baseline", "both-critics"]
    for row in rows:
        assert row["epochs"] == 2 and row["updates"] == 4
        folder = out / row["variant"]
        for name in ("model.safetensors", "metrics.jsonl", "validation.jsonl", "recipe.resolved.toml",
                     "training-curves.png", "train-state/state.safetensors"):
            assert (folder / name).exists(), f"{row['variant']}: {name}"
        overall = row["test"]["overall"]
        assert set(overall) == {"accompaniment", "vocals"}
        assert all(isinstance(overall[s]["SDR"], float) for s in overall)
        assert set(row["test"]["subsets"]) == {"synthetic-a", "synthetic-b"}
        tracks = list((folder / "evaluation").glob("*.json"))
        assert len(tracks) == 5  # 2 x 2 test tracks and the summary
    critic_metrics = [json.loads(line) for line in (out / "both-critics" / "metrics.jsonl").read_text().splitlines()]
    assert all("divergence.vocals" in m and "divergence.accompaniment" in m for m in critic_metrics)


def test_demo_table_output(tmp_path, run_cli):
    out = tmp_path / "runs"
    result = run_cli(
        "run", REPO / "recipes" / "demo.toml", "--output-dir", out, "--device", "cpu", "--variant", "baseline",
        "--set", "training.updates_per_epoch=1", "--set", "training.max_epochs=1", *SMALL,
    )
    assert result.exit_code == 0, result.stderr
    assert "variants" in result.stdout and "baseline" in result.stdout
    assert "paper protocol" in result.stdout and "synthetic-b" in result.stdout
