"""`sepkit data inspect`: per role and dataset tracks, duration, rates and failures; table and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import sepkit_plugins.datasets
from sepkit import hookimpl
from sepkit.critic import Critic
from sepkit.divergence import Divergence
from sepkit.plugins import use_plugins
from sepkit.representation import Representation
from sepkit.separator import Separator


# Config-only stand-ins: a recipe must name every component, `data inspect` builds none of them.
# With them (and the built-in dataset layouts only), these tests do not depend on the networks' rules.
class StubRepresentation(Representation):
    pass


class StubSeparator(Separator):
    pass


class StubCritic(Critic):
    pass


class StubDivergence(Divergence):
    pass


class StubComponents:
    @hookimpl
    def register_representations(self, register):
        register("stub", StubRepresentation)

    @hookimpl
    def register_separators(self, register):
        register("stub", StubSeparator)

    @hookimpl
    def register_critics(self, register):
        register("stub", StubCritic)

    @hookimpl
    def register_divergences(self, register):
        register("stub", StubDivergence)


@pytest.fixture(autouse=True, scope="module")
def _only_the_dataset_layouts():
    with use_plugins(sepkit_plugins.datasets, StubComponents()):
        yield


HEAD = """name = "inspect-test"
sources = ["accompaniment", "vocals"]
[audio]
sample_rate = 8000
[representation]
type = "stub"
[separator]
type = "stub"
[divergence]
type = "stub"
[critics.vocals]
type = "stub"
[training]
early_stopping = false
"""


def write(path: Path, seconds: float, rate: int = 8000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    sf.write(str(path), (0.1 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32), rate)


def fake_data(root: Path) -> None:
    for name in ("t1", "t2", "t3"):
        for stem in ("mixture", "accompaniment", "vocals"):
            write(root / "paired" / name / f"{stem}.wav", 2.0)
    (root / "paired" / "t3" / "vocals.wav").write_bytes(b"broken")
    write(root / "mixes" / "m1.flac", 3.0, rate=16000)
    write(root / "mixes" / "m2.wav", 1.5, rate=8000, channels=2)
    write(root / "voice" / "v1.wav", 4.0)


DATA = """
[paths]
root = "{root}"

[[data.paired]]
type = "stems"
root = "${{root}}/paired"
name = "studio"

[[data.mixtures]]
type = "files"
root = "${{root}}/mixes"

[[data.solo.vocals]]
type = "files"
root = "${{root}}/voice"

[[data.test]]
type = "stems"
root = "${{root}}/paired"
name = "studio-test"
"""

def recipe(write_recipe, root: Path) -> Path:
    return write_recipe(HEAD + DATA.format(root=root))


def test_inspect_json(tmp_path, write_recipe, run_cli):
    fake_data(tmp_path)
    result = run_cli("data", "inspect", recipe(write_recipe, tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    reports = json.loads(result.stdout)
    by_role = {(r["role"], r["dataset"]): r for r in reports}
    assert list(by_role) == [("paired", "studio"), ("mixtures", "mixes"), ("solo.vocals", "voice"), ("test", "studio-test")]
    paired = by_role[("paired", "studio")]
    assert paired["tracks"] == 2 and paired["seconds"] == 4.0 and paired["sample_rates"] == [8000]
    assert paired["failed"] == [{"path": str(tmp_path / "paired" / "t3" / "vocals.wav"),
                                 "reason": "cannot read audio (Format not recognised.)"}]
    mixes = by_role[("mixtures", "mixes")]
    assert (mixes["tracks"], mixes["seconds"], mixes["sample_rates"], mixes["channels"]) == (2, 4.5, [8000, 16000], [1, 2])
    assert mixes["failed"] == [] and mixes["error"] is None
    assert by_role[("solo.vocals", "voice")]["seconds"] == 4.0
    for report in reports:
        assert {"role", "dataset", "tracks", "seconds", "failed"} <= set(report)


def test_inspect_table(tmp_path, write_recipe, run_cli):
    fake_data(tmp_path)
    result = run_cli("data", "inspect", recipe(write_recipe, tmp_path))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "studio" in out and "solo.vocals" in out and "8000 Hz, 16000 Hz" in out
    assert "0:04" in out  # 4 s of usable paired audio
    assert f"paired / studio: {tmp_path / 'paired' / 't3' / 'vocals.wav'}: cannot read audio" in " ".join(out.split())


def test_inspect_decode_uses_the_loader(tmp_path, write_recipe, run_cli):
    fake_data(tmp_path)
    result = run_cli("data", "inspect", recipe(write_recipe, tmp_path), "--json", "--decode")
    assert result.exit_code == 0, result.stderr
    reports = {r["role"]: r for r in json.loads(result.stdout)}
    assert reports["paired"]["tracks"] == 2 and reports["paired"]["seconds"] == 4.0
    assert reports["mixtures"]["seconds"] == 4.5
    assert reports["paired"]["failed"][0]["path"].endswith("t3/vocals.wav")


def test_inspect_reports_a_missing_root_and_exits_1(tmp_path, write_recipe, run_cli):
    fake_data(tmp_path)
    path = recipe(write_recipe, tmp_path)
    result = run_cli("data", "inspect", path, "--json", "--set", f"data.mixtures.0.root={tmp_path / 'gone'}")
    assert result.exit_code == 1
    reports = {r["role"]: r for r in json.loads(result.stdout)}
    assert reports["mixtures"]["tracks"] == 0
    assert f"folder {tmp_path / 'gone'} does not exist" in reports["mixtures"]["error"]
    assert reports["paired"]["tracks"] == 2
    table = run_cli("data", "inspect", path, "--set", f"data.mixtures.0.root={tmp_path / 'gone'}")
    assert table.exit_code == 1 and "does not exist" in table.stdout and "Traceback" not in table.stderr


def test_inspect_bad_recipe_is_a_one_line_error(tmp_path, write_recipe, run_cli):
    result = run_cli("data", "inspect", tmp_path / "missing.toml")
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error:") and "no such recipe file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_inspect_the_offline_corpus(corpus, write_recipe, run_cli):
    data = f"""
[paths]
corpus = "{corpus}"
[[data.paired]]
type = "stems"
root = "${{corpus}}/supervised/train"
[[data.mixtures]]
type = "files"
root = "${{corpus}}/unsupervised/mixtures"
[[data.solo.vocals]]
type = "files"
root = "${{corpus}}/unsupervised/vocals"
[[data.validation]]
type = "stems"
root = "${{corpus}}/valid"
[[data.test]]
type = "stems"
root = "${{corpus}}/test"
"""
    path = write_recipe(HEAD + data)
    result = run_cli("data", "inspect", path, "--json")
    assert result.exit_code == 0, result.stderr
    reports = {r["role"]: r for r in json.loads(result.stdout)}
    assert {k: r["tracks"] for k, r in reports.items()} == {
        "paired": 32, "mixtures": 26, "solo.vocals": 26, "validation": 10, "test": 10}
    assert all(r["sample_rates"] == [16000] and r["failed"] == [] for r in reports.values())
    assert 30 * 32 <= reports["paired"]["seconds"] <= 30.5 * 32


def test_inspect_the_paper_recipe_on_fake_copies_of_its_datasets(tmp_path, run_cli):
    """recipes/singing_voice.toml wires DSD100 (train, test halves) and the thirds of the others."""
    from tests.conftest import REPO
    from tests.test_datasets import dsd_tree, medley_tree, noise
    from tests.test_datasets import write as write_audio

    dsd_tree(tmp_path / "DSD100", dev=2, test=4)
    for i in range(3):
        medley_tree(tmp_path / "MedleyDB", f"M{i}_Song", ["female singer", "piano"], seed=10 * i)
        write_audio(tmp_path / "ccMixter" / f"song {i}" / "source-01.wav", noise(i))
        write_audio(tmp_path / "ccMixter" / f"song {i}" / "source-02.wav", noise(i + 5))
        write_audio(tmp_path / "ccMixter" / f"song {i}" / "mix.wav", noise(i) + noise(i + 5))
        write_audio(tmp_path / "iKala" / "Wavfile" / f"1000{i}_verse.wav", noise(i, channels=2))
    overrides = [f"--set=paths.{key}={tmp_path / folder}" for key, folder in
                 (("dsd100", "DSD100"), ("medleydb", "MedleyDB"), ("ccmixter", "ccMixter"), ("ikala", "iKala"))]
    with use_plugins(entry_points=True):
        result = run_cli("data", "inspect", REPO / "recipes" / "singing_voice.toml", "--json", *overrides)
    assert result.exit_code == 0, result.stdout + result.stderr
    counts = {(r["role"], r["dataset"]): r["tracks"] for r in json.loads(result.stdout)}
    assert counts == {
        ("paired", "DSD100"): 2,
        **{(role, name): 1 for role in ("mixtures", "solo.vocals", "solo.accompaniment", "validation", "test")
           for name in ("MedleyDB", "ccMixter", "iKala")},
        ("validation", "DSD100"): 2,
        ("test", "DSD100"): 2,
    }


def test_load_role_uses_the_recipes_datasets_and_audio_settings(tmp_path):
    """The loader behind `sepkit data inspect --decode` and training: one role of a recipe."""
    import tomllib

    from sepkit.data import load_role
    from sepkit.recipe import recipe_from_dict

    fake_data(tmp_path)
    recipe = recipe_from_dict(tomllib.loads(HEAD + DATA.format(root=tmp_path))).base
    paired = load_role(recipe, "paired", cache_dir=tmp_path / "cache")
    assert [t.name for t in paired.tracks] == ["t1", "t2"] and paired.skipped == 1
    assert paired.tracks[0].audio.shape == (3, 1, 2 * 8000) and paired.tracks[0].subset == "studio"
    mixtures = load_role(recipe, "mixtures", cache_dir=tmp_path / "cache")
    assert [t.audio.shape for t in mixtures.tracks] == [(1, 1, 3 * 8000), (1, 1, int(1.5 * 8000))]  # 16 kHz resampled, stereo downmixed
    solo = load_role(recipe, "solo", "vocals", cache_dir=tmp_path / "cache")
    assert solo.stems == ["vocals"] and solo.seconds == 4.0


def test_the_offline_corpus_recipe_loads_its_roles(corpus, run_cli):
    from tests.conftest import REPO

    path = REPO / "recipes" / "offline_corpus.toml"
    if not path.exists():
        pytest.skip("recipes/offline_corpus.toml not present")
    with use_plugins(entry_points=True):
        result = run_cli("data", "inspect", path, "--json", f"--set=paths.corpus={corpus}")
    assert result.exit_code == 0, result.stdout + result.stderr
    tracks: dict[str, int] = {}
    for report in json.loads(result.stdout):
        tracks[report["role"]] = tracks.get(report["role"], 0) + report["tracks"]
    assert tracks == {"paired": 32, "mixtures": 26, "solo.vocals": 26, "solo.accompaniment": 26,
                      "validation": 18, "test": 10}
