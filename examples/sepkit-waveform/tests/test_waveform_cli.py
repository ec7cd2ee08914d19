"""End to end through the ``sepkit`` command: the core trainer, separation and evaluation with this
plugin's components, and the error a user gets when a model needs this plugin and it is missing."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sepkit.plugins import use_plugins

from waveform_helpers import RECIPE, TINY, isolated_cache, needs_install, sepkit_cli  # noqa: F401 (fixtures)

pytestmark = needs_install


def tiny_settings() -> list[str]:
    return [arg for setting in TINY for arg in ("--set", setting)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Both variants of the demo recipe, trained and evaluated at a tiny size (a few seconds)."""
    from sepkit.testing.cli import invoke

    out = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEPKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "sepkit-cache"))
        result = invoke("run", RECIPE, "--output-dir", out, "--device", "cpu", "--json", *tiny_settings())
    assert result.exit_code == 0, f"sepkit run failed: {result.stderr}"
    return out


def write_song(path: Path, rate: int = 22050, seconds: float = 1.5, channels: int = 2) -> Path:
    time = np.arange(int(rate * seconds)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 330 * time) + 0.05 * np.random.default_rng(0).standard_normal(time.size)
    sf.write(path, np.stack([tone] * channels, axis=1).astype(np.float32), rate)
    return path


def test_the_core_trainer_trains_both_variants(trained):
    for variant in ("baseline", "both-critics"):
        folder = trained / variant
        for name in ("model.safetensors", "metrics.jsonl", "validation.jsonl", "train-state/state.safetensors"):
            assert (folder / name).is_file(), f"{variant}: {name}"
        validation = [json.loads(line) for line in (folder / "validation.jsonl").read_text().splitlines()]
        assert len(validation) == 1 and np.isfinite(validation[0]["loss"])
        summary = json.loads((folder / "evaluation" / "summary.json").read_text())
        assert "synthetic-a" in json.dumps(summary) and "synthetic-b" in json.dumps(summary)
    metrics = [json.loads(line) for line in (trained / "both-critics" / "metrics.jsonl").read_text().splitlines()]
    assert all("divergence.vocals" in m and "divergence.accompaniment" in m for m in metrics)
    assert all(np.isfinite(m["loss.adversarial"]) and np.isfinite(m["loss.additive"]) for m in metrics)


def test_the_model_file_names_this_distribution(trained):
    import sepkit

    model = sepkit.load_model(trained / "both-critics" / "model.safetensors")
    assert model.components["representation"]["name"] == "waveform"
    assert model.components["separator"] == {
        "name": "wave-unet", "distribution": "sepkit-waveform",
        "version": importlib.metadata.version("sepkit-waveform"), "plugin": "waveform",
    }
    assert model.sources == ["accompaniment", "vocals"] and model.sample_rate == 8192


def test_separate_writes_stems_at_the_input_rate_and_length(trained, tmp_path, sepkit_cli):
    song = write_song(tmp_path / "song.wav")
    model = trained / "both-critics" / "model.safetensors"
    result = sepkit_cli("separate", song, "--model", model, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    assert "wave-unet from sepkit-waveform" in result.stderr
    for source in ("accompaniment", "vocals"):
        audio, rate = sf.read(tmp_path / "out" / "song" / f"{source}.wav", always_2d=True)
        assert rate == 22050 and audio.shape == (int(22050 * 1.5), 2)
        assert np.abs(audio).max() > 0
    # The Wiener post-filter needs magnitudes; this representation says it has none.
    wiener = sepkit_cli("separate", song, "--model", model, "-o", tmp_path / "w", "--wiener")
    assert wiener.exit_code == 1
    assert "the Wiener post-filter needs a magnitude-spectrogram representation" in wiener.stderr


def test_evaluate_scores_the_models_test_sets(trained, tmp_path, sepkit_cli):
    folder = trained / "baseline"
    result = sepkit_cli(
        "evaluate", "--model", folder / "model.safetensors", folder / "recipe.resolved.toml",
        "-o", tmp_path / "eval", "--json",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert "synthetic-b" in json.dumps(summary)
    tracks = sorted(p.name for p in (tmp_path / "eval").glob("*.json") if p.name != "summary.json")
    assert len(tracks) == 2  # one track per test set


def test_a_model_whose_plugin_is_missing_names_the_distribution(trained, tmp_path, sepkit_cli, monkeypatch):
    """Simulate a machine without this example: every other installed plugin, and no such distribution."""
    model = trained / "baseline" / "model.safetensors"
    song = write_song(tmp_path / "song.wav")
    version = importlib.metadata.version("sepkit-waveform")
    real_version = importlib.metadata.version

    def version_without_the_example(name: str) -> str:
        if name == "sepkit-waveform":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    expected = (
        f"error: model needs representation 'waveform' from distribution 'sepkit-waveform' {version}, "
        f"which is not installed (pip install 'sepkit-waveform=={version}')"
    )
    others = [
        entry.load() for entry in importlib.metadata.entry_points(group="sepkit")
        if entry.dist is None or entry.dist.metadata["Name"] != "sepkit-waveform"
    ]
    with use_plugins(*others):
        # installed, but its plugin not loaded: the message says so
        result = sepkit_cli("separate", song, "--model", model, "-o", tmp_path / "out")
        assert result.exit_code == 1
        assert f"'sepkit-waveform' {version} is installed but registers no representation 'waveform'" in result.stderr

        monkeypatch.setattr(importlib.metadata, "version", version_without_the_example)
        result = sepkit_cli("separate", song, "--model", model, "-o", tmp_path / "out")
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines()[-1] == expected
        assert not (tmp_path / "out").exists()

        stems = tmp_path / "stems" / "track"
        stems.mkdir(parents=True)
        for stem in ("mixture", "vocals", "accompaniment"):
            write_song(stems / f"{stem}.wav", rate=8192, seconds=1.0, channels=1)
        result = sepkit_cli("evaluate", "--model", model, "--dataset", f"stems:{tmp_path / 'stems'}", "-o", tmp_path / "e")
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines()[-1] == expected


def test_the_plugin_adds_a_command(sepkit_cli):
    result = sepkit_cli("wave-unet-window", "--output-samples", "4096", "--depth", "4")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == (
        "wave-unet depth 4, kernels 15/5: input 4595 samples (0.561 s), output 4101 samples (0.501 s), "
        "context 247 + 247 samples"
    )
    bad = sepkit_cli("wave-unet-window", "--up-kernel", "4")
    assert bad.exit_code == 1
    assert bad.stderr.strip() == "error: --up-kernel: Value error, kernel widths must be odd so that the output stays centred, got 4"
    assert "wave-unet-window" in sepkit_cli("--help").stdout


def test_streaming_in_chunks_gives_the_one_pass_result(trained):
    """The engine's chunking (margins from frame_length = 1, hop 1) does not change the waveforms."""
    import sepkit

    model = sepkit.load_model(trained / "both-critics" / "model.safetensors")
    audio = (0.2 * np.random.default_rng(1).standard_normal((1, 8192 * 5))).astype(np.float32)
    whole = model.separate(audio, 8192)
    chunked = model.separate(audio, 8192, chunk_seconds=1.5)
    for source in model.sources:
        assert whole[source].shape == audio.shape
        np.testing.assert_allclose(chunked[source], whole[source], rtol=0, atol=1e-6)
