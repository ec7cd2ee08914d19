"""Smoke runs of the offline-corpus experiment: every variant of the `cpu` scale trains, is evaluated
with the paper protocol and lands in `sepkit report`; the `paper` scale has the same variants."""

from __future__ import annotations

import json
import math

import pytest

from sepkit.recipe import load_recipe
from tests.conftest import REPO

PAPER_VARIANTS = ["baseline", "vocals-critic", "both-critics", "both-critics-js", "both-critics-kl"]
#: issue 13's stabilised variants (balanced weight, weight average, R1 critics, selection by field SDR)
STABILISED = ["baseline-ema", "both-critics-balanced", "both-critics-balanced-low", "vocals-critic-balanced",
              "both-critics-js-r1", "both-critics-kl-r1"]
VARIANTS = PAPER_VARIANTS + STABILISED
#: one smoke run per option set (the -low and vocal-critic variants repeat options already run)
SMOKE = PAPER_VARIANTS + ["baseline-ema", "both-critics-balanced", "both-critics-js-r1", "both-critics-kl-r1"]


def test_both_scales_have_the_experiments_variants_and_differ_only_in_size():
    paper = load_recipe(REPO / "recipes" / "offline_corpus.toml").variants
    cpu = load_recipe(REPO / "recipes" / "offline_corpus_cpu.toml").variants
    assert list(paper) == VARIANTS
    assert list(cpu) == [*PAPER_VARIANTS, "vocals-critic-low-alpha", "both-critics-high-alpha", *STABILISED]
    assert cpu["vocals-critic-low-alpha"].training.alpha == 0.001 and cpu["both-critics-high-alpha"].training.alpha == 0.01
    for name in VARIANTS:
        p, c = paper[name], cpu[name]
        # every algorithmic element is kept ...
        for key in ("critic_iterations", "alpha", "beta", "loudness_augmentation", "betas", "early_stopping", "patience",
                    "adversarial_weighting", "alpha_warmup_updates", "ema", "select", "select_subset"):
            assert getattr(c.training, key) == getattr(p.training, key), (name, key)
        assert c.representation == p.representation and c.audio == p.audio and c.data == p.data
        assert c.divergence == p.divergence and sorted(c.critics) == sorted(p.critics)
        assert c.separator.config.depth == p.separator.config.depth == 4
        assert c.separator.config.input_frames == p.separator.config.input_frames == 158
        # ... the size is what changes
        assert (c.separator.config.base_filters, p.separator.config.base_filters) == (8, 16)
        assert (c.training.batch_size, p.training.batch_size) == (8, 64)
        for critic in c.critics.values():
            assert (critic.config.base_filters, critic.config.max_filters) == (8, 64)
    assert paper["vocals-critic"].training.alpha == 0.01 and paper["both-critics"].training.alpha == 0.001
    assert paper["both-critics-js"].divergence.type == "js" and paper["both-critics-kl"].divergence.type == "kl"


def test_cpu_scale_smoke_run_of_every_variant_and_its_report(tmp_path, corpus, run_cli):
    out = tmp_path / "runs"
    result = run_cli(
        "run", REPO / "recipes" / "offline_corpus_cpu.toml", "--seeds", "0", "-o", out, "--device", "cpu",
        *[option for name in SMOKE for option in ("--variant", name)],
        "--set", f"paths.corpus={corpus}", "--set", "training.batch_size=2",
        "--set", "training.updates_per_epoch=2", "--set", "training.max_epochs=1",
    )
    assert result.exit_code == 0, result.stderr
    for name in SMOKE:
        run = out / name / "seed-0"
        assert (run / "model.safetensors").exists() and (run / "training-curves.png").exists()
        summary = json.loads((run / "evaluation" / "summary.json").read_text())
        assert summary["protocol"] == "paper" and summary["tracks"] == 10
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        if not name.startswith("baseline"):  # the critics were trained and their divergence estimates logged
            assert any(key.startswith("divergence.") for m in metrics for key in m)
            assert any("loss.adversarial" in m and "loss.additive" in m for m in metrics)
            assert any("adversarial_weight" in m for m in metrics)
        else:
            assert not any(key.startswith(("divergence.", "loss.adversarial")) for m in metrics for key in m)
        for rule in ("validation-loss", "validation-sdr", "last"):  # every selection rule's model is scored
            assert (run / f"evaluation-{rule}" / "summary.json").exists(), (name, rule)
    report = run_cli("report", out, "--json")
    assert report.exit_code == 0, report.stderr
    data = json.loads(report.stdout)
    assert set(data["selection"]) == {"validation-loss", "validation-sdr", "last"}
    assert list(data["variants"]) == ["baseline", *sorted(SMOKE[1:])]
    for name, entry in data["variants"].items():
        assert entry["seeds"] == [0] and entry["unfinished_seeds"] == []
        sdr = entry["scores"]["field"]["vocals"]["SDR"]
        assert math.isfinite(sdr["mean"]) and sdr["std"] is None  # one seed: no spread
        if name != "baseline":
            assert entry["paired_seeds"] == [0]


@pytest.mark.parametrize("recipe", ["offline_corpus.toml", "offline_corpus_cpu.toml"])
def test_experiment_recipes_point_at_the_corpus_beside_the_repository(recipe):
    loaded = load_recipe(REPO / "recipes" / recipe, check_data=False)
    root = loaded.base.data.paired[0].config.root
    assert root.endswith("shared/data/corpus/supervised/train")
