"""The trainer: update order, losses, resume equivalence, non-finite guard, run folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sepkit.errors import SepkitError
from sepkit.recipe import load_recipe

RATE = 4000


def _tone(rng, seconds, f0):
    t = np.arange(int(seconds * RATE)) / RATE
    vib = 1 + 0.01 * np.sin(2 * np.pi * 5 * t)
    x = sum(np.sin(2 * np.pi * f0 * k * vib * t) / k for k in range(1, 4))
    gate = (np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)) > -0.3).astype(float)
    return 0.3 * x * gate


def _noise(rng, seconds):
    n = int(seconds * RATE)
    beats = np.zeros(n)
    beats[:: RATE // 4] = 1.0
    env = np.convolve(beats, np.exp(-np.arange(400) / 60.0))[:n]
    return 0.2 * rng.standard_normal(n) * env + 0.1 * np.sin(2 * np.pi * 110 * np.arange(n) / RATE)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-data")
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("valid", 2), ("test", 2)):
        for i in range(count):
            folder = root / split / f"t{i}"
            folder.mkdir(parents=True)
            v, a = _tone(rng, 3.0, 220 + 40 * i), _noise(rng, 3.0)
            sf.write(folder / "vocals.wav", v, RATE, subtype="FLOAT")
            sf.write(folder / "accompaniment.wav", a, RATE, subtype="FLOAT")
            sf.write(folder / "mixture.wav", v + a, RATE, subtype="FLOAT")
    for kind in ("mixtures", "vocals", "accompaniment"):
        (root / kind).mkdir()
        for i in range(3):
            v, a = _tone(rng, 3.0, 300 + 30 * i), _noise(rng, 3.0)
            audio = {"mixtures": v + a, "vocals": v, "accompaniment": a}[kind]
            sf.write(root / kind / f"{kind}{i}.wav", audio, RATE, subtype="FLOAT")
    return root


def tiny_recipe(root: Path, **training) -> str:
    settings = {"batch_size": 4, "updates_per_epoch": 3, "max_epochs": 2, "critic_iterations": 2,
                "early_stopping": "false", "log_every": 1, "device": '"cpu"', "seed": 7, "alpha": 0.01}
    settings.update(training)
    body = "\n".join(f"{k} = {v}" for k, v in settings.items())
    return f'''
name = "tiny"
sources = ["accompaniment", "vocals"]
[paths]
root = "{root}"
[audio]
sample_rate = {RATE}
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
{body}
[evaluation]
batch_size = 4
[[data.paired]]
type = "stems"
root = "${{root}}/train"
[[data.validation]]
type = "stems"
root = "${{root}}/valid"
[[data.test]]
type = "stems"
root = "${{root}}/test"
[[data.mixtures]]
type = "files"
root = "${{root}}/mixtures"
[[data.solo.vocals]]
type = "files"
root = "${{root}}/vocals"
[[data.solo.accompaniment]]
type = "files"
root = "${{root}}/accompaniment"
[variants.baseline]
[variants.both-critics.critics.vocals]
type = "dcgan"
crop = [64, 16]
base_filters = 4
max_filters = 8
dense_units = 8
[variants.both-critics.critics.accompaniment]
type = "dcgan"
crop = [64, 16]
base_filters = 4
max_filters = 8
dense_units = 8
'''


def load(tmp_path, root, variant="both-critics", **training):
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_recipe(root, **training))
    return load_recipe(path).variants[variant]


def make_trainer(recipe, out, variant="both-critics"):
    from sepkit.training.trainer import Trainer

    return Trainer(recipe, out, variant=variant, device="cpu", progress=False)


def weights(trainer):
    tensors = {f"separator.{k}": v.clone() for k, v in trainer.separator.state_dict().items()}
    for name, critic in trainer.critics.items():
        tensors.update({f"{name}.{k}": v.clone() for k, v in critic.state_dict().items()})
    return tensors


def test_one_update_steps_every_network_and_logs_every_term(tmp_path, tiny_data):
    trainer = make_trainer(load(tmp_path, tiny_data), tmp_path / "run")
    before = weights(trainer)
    log = trainer.train_update()
    assert log is not None
    after = weights(trainer)
    for key in before:
        assert not torch.equal(before[key], after[key]), f"{key} did not change"
    for key in ("loss.supervised", "loss.adversarial", "loss.additive", "loss.total",
                "divergence.vocals", "divergence.accompaniment", "critic_loss.vocals",
                "grad_norm.separator", "grad_norm.critic.vocals", "loss.adversarial.vocals"):
        assert key in log and np.isfinite(float(log[key])), key
    cfg = trainer.cfg
    expected = float(log["loss.supervised"]) + cfg.alpha * float(log["loss.adversarial"]) + cfg.beta * float(log["loss.additive"])
    assert float(log["loss.total"]) == pytest.approx(expected, rel=1e-5)


def test_critic_iterations_step_only_critics_before_the_separator_step(tmp_path, tiny_data):
    trainer = make_trainer(load(tmp_path, tiny_data), tmp_path / "run")
    separator_before = {k: v.clone() for k, v in trainer.separator.state_dict().items()}
    log: dict = {}
    assert trainer._critic_steps(log)
    for k, v in trainer.separator.state_dict().items():
        assert torch.equal(v, separator_before[k]), "critic steps must not move the separator"
    for source in ("vocals", "accompaniment"):
        assert trainer.critic_optimisers[source].state_dict()["state"][0]["step"].item() == trainer.cfg.critic_iterations


def test_baseline_is_supervised_only(tmp_path, tiny_data):
    trainer = make_trainer(load(tmp_path, tiny_data, variant="baseline"), tmp_path / "run", "baseline")
    assert trainer.critics == {} and trainer.data.mixtures is None and trainer.data.solo == {}
    log = trainer.train_update()
    assert float(log["loss.total"]) == pytest.approx(float(log["loss.supervised"]))
    assert "loss.adversarial" not in log


def test_fit_writes_the_run_folder(tmp_path, tiny_data):
    out = tmp_path / "run"
    result = make_trainer(load(tmp_path, tiny_data), out).fit()
    assert result.epochs == 2 and result.updates == 6
    for name in ("model.safetensors", "train-state/state.safetensors", "metrics.jsonl", "validation.jsonl", "training-curves.png"):
        assert (out / name).exists(), name
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    assert all(m["examples_per_second"] > 0 and m["learning_rate"] == 5e-5 for m in metrics)
    validation = [json.loads(line) for line in (out / "validation.jsonl").read_text().splitlines()]
    assert [v["epoch"] for v in validation] == [1, 2]
    assert all(np.isfinite(v["loss"]) and set(v["sdr"]) == {"accompaniment", "vocals"} for v in validation)


def test_resumed_run_ends_with_exactly_the_weights_of_an_uninterrupted_run(tmp_path, tiny_data):
    recipe = load(tmp_path, tiny_data, max_epochs=3)
    full = make_trainer(recipe, tmp_path / "full")
    full.fit()
    # killed mid-epoch (state saved as on Ctrl-C), then resumed by a fresh process-like trainer
    first = make_trainer(recipe, tmp_path / "cut")
    assert first.fit(stop_after_updates=4).stopped_by == "interrupted"
    resumed = make_trainer(recipe, tmp_path / "cut")
    result = resumed.fit(resume=True)
    assert result.updates == 9 and result.epochs == 3
    a, b = weights(full), weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 10))


def test_resume_from_an_epoch_end_state_after_a_kill(tmp_path, tiny_data):
    recipe = load(tmp_path, tiny_data, max_epochs=2)
    full = make_trainer(recipe, tmp_path / "full")
    full.fit()
    one = load(tmp_path, tiny_data, max_epochs=1)
    make_trainer(one, tmp_path / "killed").fit()  # its state is the epoch-1 state of the longer run
    resumed = make_trainer(recipe, tmp_path / "killed")
    resumed.fit(resume=True)
    for key, value in weights(full).items():
        assert torch.equal(value, weights(resumed)[key]), key


def test_non_finite_losses_are_skipped_then_rolled_back(tmp_path, tiny_data, monkeypatch):
    recipe = load(tmp_path, tiny_data, variant="baseline", max_nonfinite=2, updates_per_epoch=4, max_epochs=1)
    trainer = make_trainer(recipe, tmp_path / "run", "baseline")
    import sepkit.training.trainer as module

    calls = {"n": 0}
    real = module.supervised_loss

    def sometimes_nan(est, tgt):
        calls["n"] += 1
        value = real(est, tgt)
        return value * float("nan") if calls["n"] in (2, 3) else value

    monkeypatch.setattr(module, "supervised_loss", sometimes_nan)
    result = trainer.fit()
    assert result.rollbacks == 1 and result.updates == 4
    events = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events if "event" in e] == ["nonfinite", "nonfinite", "rollback"]
    for value in trainer.separator.state_dict().values():
        assert torch.isfinite(value).all()


def test_a_corrupt_train_state_is_a_clear_error(tmp_path, tiny_data):
    recipe = load(tmp_path, tiny_data, variant="baseline")
    out = tmp_path / "run"
    (out / "train-state").mkdir(parents=True)
    (out / "train-state" / "state.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SepkitError, match="corrupt training state"):
        make_trainer(recipe, out, "baseline").fit(resume=True)


def test_run_cli_refuses_another_recipes_folder_and_resumes(tmp_path, tiny_data, run_cli):
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_recipe(tiny_data))
    out = tmp_path / "runs"
    result = run_cli("run", path, "--output-dir", out, "--variant", "baseline", "--no-evaluate")
    assert result.exit_code == 0, result.stderr
    assert (out / "baseline" / "model.safetensors").exists()
    assert "baseline" in result.stdout
    again = run_cli("run", path, "--output-dir", out, "--variant", "baseline", "--no-evaluate")
    assert again.exit_code != 0 and "already holds a run of this recipe" in again.stderr
    other = run_cli("run", path, "--output-dir", out, "--variant", "baseline", "--no-evaluate", "--set", "training.seed=3")
    assert other.exit_code != 0 and "holds a run of another recipe" in other.stderr
    assert (out / "baseline" / "model.safetensors").exists(), "nothing already written may be lost"
    resumed = run_cli("run", path, "--output-dir", out, "--variant", "baseline", "--no-evaluate", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    # a run written by an older sepkit, whose schema lacked a key added since (here: max_nonfinite, at
    # its default), is still this recipe
    import tomllib

    from sepkit.recipe.dump import dumps_toml

    resolved = out / "baseline" / "recipe.resolved.toml"
    old = tomllib.loads(resolved.read_text())
    assert old["training"].pop("max_nonfinite") == 5
    resolved.write_text(dumps_toml(old))
    resumed = run_cli("run", path, "--output-dir", out, "--variant", "baseline", "--no-evaluate", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert (out / "baseline" / "model-last.safetensors").exists()


def test_offline_corpus_recipe_starts_and_trains_with_the_paper_networks(tmp_path, corpus):
    """The paper's configuration on the offline corpus: a few real updates (CI-sized batches)."""
    from tests.conftest import REPO

    overrides = [f"paths.corpus={corpus}", "training.batch_size=2", "training.updates_per_epoch=2",
                 "training.max_epochs=1", "training.critic_iterations=1", "training.device=\"cpu\""]
    recipe = load_recipe(REPO / "recipes" / "offline_corpus.toml", overrides).variants["both-critics"]
    trainer = make_trainer(recipe, tmp_path / "run")
    assert trainer.window.input_frames == 158 and trainer.window.output_frames == 66
    assert trainer.data.paired.num_tracks == 32 and trainer.data.mixtures.num_tracks == 26
    assert len(trainer.data.validation) == 18
    result = trainer.fit()
    assert result.updates == 2 and result.best_validation is not None and np.isfinite(result.best_validation)
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_a_finished_run_continued_to_a_larger_budget_is_the_longer_run(tmp_path, tiny_data, run_cli):
    """--resume with a larger training.max_epochs continues a finished run; the result is the run
    trained that long from the start (bit for bit: nothing in an update reads the budget)."""
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_recipe(tiny_data, ema=0.9, select='"validation-sdr"'))
    common = ("--variant", "both-critics", "--no-evaluate")
    short, long = tmp_path / "short", tmp_path / "long"
    assert run_cli("run", path, "-o", short, *common, "--set", "training.max_epochs=1").exit_code == 0
    refused = run_cli("run", path, "-o", short, *common, "--set", "training.max_epochs=2")
    assert refused.exit_code != 0 and "larger training.max_epochs" in refused.stderr
    continued = run_cli("run", path, "-o", short, *common, "--resume", "--set", "training.max_epochs=2")
    assert continued.exit_code == 0, continued.stderr
    assert "training.max_epochs 1 -> 2: continuing" in continued.stderr
    assert run_cli("run", path, "-o", long, *common, "--set", "training.max_epochs=2").exit_code == 0
    a, b = short / "both-critics", long / "both-critics"
    from safetensors import safe_open
    from safetensors.torch import load_file

    for name in ("model.safetensors", "model-last.safetensors", "model-by-validation-loss.safetensors"):
        x, y = load_file(a / name), load_file(b / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name
        # the metadata differ at most in the budget of the run that wrote the file (epoch 1's file
        # was written when the budget was 1); the header's key order is not stable, so no byte check
        with safe_open(a / name, "pt") as fa, safe_open(b / name, "pt") as fb:
            ma, mb = fa.metadata(), fb.metadata()
        ra, rb = json.loads(ma.pop("recipe")), json.loads(mb.pop("recipe"))
        ra["training"].pop("max_epochs"), rb["training"].pop("max_epochs")
        assert ma == mb and ra == rb, name
    untimed = lambda folder: [{k: v for k, v in json.loads(line).items() if "seconds" not in k}
                              for line in (folder / "validation.jsonl").read_text().splitlines()]
    assert len(untimed(a)) == 2 and untimed(a) == untimed(b)
    assert "max_epochs = 2" in (a / "recipe.resolved.toml").read_text()
    # another change than the budget is still another recipe
    other = run_cli("run", path, "-o", short, *common, "--resume", "--set", "training.alpha=0.5")
    assert other.exit_code != 0 and "training.alpha differs" in other.stderr
