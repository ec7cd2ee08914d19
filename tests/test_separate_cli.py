"""`sepkit separate`: files and folders in, OUTDIR/<name>/<source>.<ext> out; every bad input named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import separation_plugin
from sepkit.errors import NotImplementedComponentError
from sepkit.model import save_model
from sepkit.plugins import use_plugins


@pytest.fixture(scope="module")
def plugins():
    with use_plugins(separation_plugin) as system:
        yield system


@pytest.fixture
def model_file(plugins, tmp_path) -> Path:
    recipe, representation, separator = separation_plugin.build(seed=5)
    return save_model(tmp_path / "tiny.safetensors", recipe=recipe, representation=representation, separator=separator)


def tone(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    data = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.05 * rng.standard_normal((len(t), channels))
    return data.astype(np.float32)


def write(path: Path, seconds: float, rate: int, channels: int, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, rate, channels), rate, **kwargs)
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_files_and_folders(run_cli, model_file, tmp_path):
    song = write(tmp_path / "in" / "song.wav", 1.5, 44100, 2)
    mono = write(tmp_path / "in" / "voice.wav", 0.7, 16000, 1)
    album = tmp_path / "album"
    write(album / "track1.flac", 1.0, 22050, 2)
    write(album / "disc2" / "track2.ogg", 0.5, 8000, 1)
    (album / "cover.jpg").write_bytes(b"\xff\xd8")  # not audio: ignored inside a folder
    out = tmp_path / "out"
    result = run_cli("separate", song, mono, album, "--model", model_file, "-o", out)
    assert result.exit_code == 0, result.stderr
    for name, rate, channels, frames in [
        ("song", 44100, 2, 66150), ("voice", 16000, 1, 11200), ("track1", 22050, 2, 22050), ("track2", 8000, 1, 4000)
    ]:
        for source in ("accompaniment", "vocals"):
            info = sf.info(str(out / name / f"{source}.wav"))
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (rate, channels, frames, "PCM_16")
    assert "song.wav" in result.stdout and "real-time factor" in result.stdout
    assert f"model: {model_file}" in result.stderr
    assert not [p for p in leftovers(out) if "partial" in p]


def test_json_output_and_stems(run_cli, model_file, tmp_path):
    song = write(tmp_path / "song.flac", 1.0, 44100, 2)
    out = tmp_path / "out"
    result = run_cli("separate", song, "-m", model_file, "-o", out, "--stems", "vocals", "--json", "--overlap", "0")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == str(model_file) and report["failed"] == 0
    (entry,) = report["files"]
    assert entry["file"] == str(song) and entry["error"] is None
    assert entry["duration_s"] == pytest.approx(1.0)
    rounding = 0.0005 / entry["time_s"]  # time_s is rounded to the millisecond in the report
    assert entry["realtime_factor"] == pytest.approx(entry["duration_s"] / entry["time_s"], rel=0.02 + rounding)
    assert entry["outputs"] == {"vocals": str(out / "song" / "vocals.wav")}
    assert leftovers(out) == ["song", "song/vocals.wav"]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_the_stems_match_the_library_api(run_cli, model_file, tmp_path, precision):
    from sepkit.model import load_model

    song = write(tmp_path / "song.wav", 1.0, 44100, 2, subtype="FLOAT")
    out = tmp_path / "out"
    options = ["--precision", precision] if precision != "auto" else []  # auto: the command's default
    assert run_cli("separate", song, "-m", model_file, "-o", out, "--bit-depth", "32f", *options).exit_code == 0
    audio, rate = sf.read(str(song), dtype="float32", always_2d=True)
    expected = load_model(model_file).separate(audio.T, rate, precision=precision, high_band="share")
    for source in ("accompaniment", "vocals"):
        written, _ = sf.read(str(out / "song" / f"{source}.wav"), dtype="float32", always_2d=True)
        np.testing.assert_allclose(written.T, expected[source], atol=1e-6)


def test_a_bad_precision_is_one_line(run_cli, model_file, tmp_path):
    song = write(tmp_path / "song.wav", 0.5, 44100, 1)
    result = run_cli("separate", song, "-m", model_file, "-o", tmp_path / "out", "--precision", "fp16")
    assert result.exit_code != 0
    assert "--precision fp16: expected fp32, bf16 or auto" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "options, subtype, ext",
    [(["--format", "flac", "--bit-depth", "24"], "PCM_24", "flac"), (["--format", "ogg"], "VORBIS", "ogg"),
     (["--bit-depth", "32f"], "FLOAT", "wav")],
)
def test_formats(run_cli, model_file, tmp_path, options, subtype, ext):
    song = write(tmp_path / "song.wav", 0.5, 8000, 1)
    result = run_cli("separate", song, "-m", model_file, "-o", tmp_path / "out", *options)
    assert result.exit_code == 0, result.stderr
    assert sf.info(str(tmp_path / "out" / "song" / f"vocals.{ext}")).subtype == subtype


@pytest.mark.parametrize(
    "options, message",
    [
        (["--format", "mp4"], "unknown output format 'mp4'"),
        (["--format", "flac", "--bit-depth", "32f"], "--bit-depth 32f is not available for flac"),
        (["--format", "ogg", "--bit-depth", "16"], "--bit-depth does not apply to ogg"),
        (["--stems", "drums"], "unknown stem(s) drums; this model separates accompaniment, vocals"),
        (["--overlap", "1.5"], "overlap must be in [0, 1)"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--channel-mode", "left"], "channel_mode must be one of"),
    ],
)
def test_bad_options(run_cli, model_file, tmp_path, options, message):
    song = write(tmp_path / "song.wav", 0.5, 8000, 1)
    result = run_cli("separate", song, "-m", model_file, "-o", tmp_path / "out", *options)
    assert result.exit_code != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert leftovers(tmp_path / "out") == []


def test_bad_inputs_are_reported_one_line_each_and_others_still_run(run_cli, model_file, tmp_path):
    folder = tmp_path / "in"
    good = write(folder / "good.wav", 0.5, 8000, 1)
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    text = folder / "notes.wav"
    text.write_text("these are not samples " * 50)
    truncated = write(folder / "cut.wav", 1.0, 8000, 2)
    truncated.write_bytes(truncated.read_bytes()[: 44 + 4000])
    cut_flac = write(folder / "cut_short.flac", 2.0, 8000, 1)
    cut_flac.write_bytes(cut_flac.read_bytes()[: cut_flac.stat().st_size // 2])
    silent = folder / "zero.wav"
    sf.write(str(silent), np.zeros((0, 1), np.float32), 8000)
    nan_late = tmp_path / "late_nan.wav"  # NaN 22 s in: after the first blocks were separated and written
    data = tone(25.0, 800, 1)
    data[22 * 800] = np.nan
    sf.write(str(nan_late), data, 800, subtype="FLOAT")
    infinite = tmp_path / "inf.wav"
    sf.write(str(infinite), np.full((400, 1), np.inf, np.float32), 8000, subtype="FLOAT")
    unknown = tmp_path / "song.m4a"
    unknown.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(500))
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    (empty_dir / "readme.txt").write_text("no audio here")
    missing = tmp_path / "missing.wav"
    out = tmp_path / "out"

    bad = {
        empty: "empty file", text: "cannot read audio", truncated: "truncated", cut_flac: "truncated",
        silent: "holds no samples", nan_late: "NaN or infinite", infinite: "NaN or infinite",
        unknown: "cannot read audio", empty_dir: "no audio files in this folder", missing: "no such file",
    }
    result = run_cli("separate", folder, nan_late, infinite, unknown, empty_dir, missing, "-m", model_file, "-o", out)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(bad), result.stderr
    for path, reason in bad.items():
        (line,) = [e for e in errors if e.startswith(f"error: {path}:")]
        assert reason in line, line
    assert "Traceback" not in result.stderr
    # the good file was separated; nothing at all was left behind for the bad ones
    assert leftovers(out) == ["good", "good/accompaniment.wav", "good/vocals.wav"]
    assert sf.info(str(out / "good" / "vocals.wav")).frames == 4000
    assert good.exists()


def test_existing_outputs_need_overwrite(run_cli, model_file, tmp_path):
    first = write(tmp_path / "a.wav", 0.5, 8000, 1)
    second = write(tmp_path / "b.wav", 0.5, 8000, 1)
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "vocals.wav").write_bytes(b"precious")
    result = run_cli("separate", first, second, "-m", model_file, "-o", out)
    assert result.exit_code == 1
    assert f"error: {first}: {out / 'a' / 'vocals.wav'}: already exists (pass --overwrite to replace it)" in result.stderr
    assert (out / "a" / "vocals.wav").read_bytes() == b"precious"
    assert not (out / "a" / "accompaniment.wav").exists()
    assert (out / "b" / "vocals.wav").exists()
    result = run_cli("separate", first, "-m", model_file, "-o", out, "--overwrite")
    assert result.exit_code == 0, result.stderr
    assert sf.info(str(out / "a" / "vocals.wav")).frames == 4000


def test_an_input_is_never_overwritten(run_cli, model_file, tmp_path):
    out = tmp_path / "out"
    song = write(out / "vocals" / "vocals.wav", 0.5, 8000, 1)  # its own stem would be out/vocals/vocals.wav
    before = song.read_bytes()
    result = run_cli("separate", song, "-m", model_file, "-o", out, "--overwrite")
    assert result.exit_code == 1
    assert "is one of the inputs; refusing to overwrite an input" in result.stderr
    assert song.read_bytes() == before


def test_two_inputs_with_the_same_name(run_cli, model_file, tmp_path):
    one = write(tmp_path / "x" / "song.wav", 0.5, 8000, 1)
    two = write(tmp_path / "y" / "song.wav", 0.5, 8000, 1)
    result = run_cli("separate", one, two, "-m", model_file, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert f"error: {two}: its output {tmp_path / 'out' / 'song'}/" in result.stderr and f"is already used by {one}" in result.stderr
    assert "a --filename with {track} in it" in result.stderr
    # the same name with another extension is told apart (tests/faults covers x.flac with x.ogg)
    three = write(tmp_path / "z" / "song.flac", 0.5, 8000, 1)
    result = run_cli("separate", one, three, "-m", model_file, "-o", tmp_path / "other")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "other" / "song-wav" / "vocals.wav").exists() and (tmp_path / "other" / "song-flac" / "vocals.wav").exists()


def test_outdir_that_is_a_file(run_cli, model_file, tmp_path):
    song = write(tmp_path / "song.wav", 0.5, 8000, 1)
    (tmp_path / "out").write_text("a file")
    result = run_cli("separate", song, "-m", model_file, "-o", tmp_path / "out")
    assert result.exit_code != 0
    assert result.stderr.strip() == f"error: {tmp_path / 'out'}: the output folder is a file"


@pytest.mark.parametrize("kind", ["missing", "pickle", "corrupt", "folder"])
def test_bad_model_file(run_cli, plugins, tmp_path, kind):
    song = write(tmp_path / "song.wav", 0.5, 8000, 1)
    model = tmp_path / "model.safetensors"
    if kind == "pickle":
        model.write_bytes(b"(dp0\nVweights\np1\n(lp2\nI1\naI2\naI3\nas.")  # a pickled dict
    elif kind == "corrupt":
        model.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": broken")
    elif kind == "folder":
        model.mkdir()
    result = run_cli("separate", song, "-m", model, "-o", tmp_path / "out")
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {model}: ")
    assert not (tmp_path / "out").exists()


def test_without_a_model_and_no_default_installed(run_cli, plugins, tmp_path):
    """No plugin registers a model named 'default' (the fixture's plugins register none)."""
    song = write(tmp_path / "song.wav", 0.5, 8000, 1)
    result = run_cli("separate", song, "-o", tmp_path / "out")
    assert result.exit_code != 0
    assert "no default model is installed" in result.stderr and "--model" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_packaged_default_model_is_used_and_named(run_cli, tmp_path):
    """Without --model: the packaged model (recipes/default_model.toml), which says where it comes from."""
    from sepkit.model import load_model
    from sepkit.models import resolve_model
    from sepkit.plugins import use_plugins

    with use_plugins(entry_points=True):  # the built-in components, whatever earlier tests swapped in
        check_the_default_model(run_cli, tmp_path, load_model, lambda: resolve_model("default").path)


def check_the_default_model(run_cli, tmp_path, load_model, default_model_path):

    path = default_model_path()
    assert path is not None and path.name == "model.safetensors" and path.parent.name == "default_model"
    assert path.stat().st_size < 2_000_000  # stated in the README: about 1 MB
    model = load_model(path)
    assert model.sources == ["accompaniment", "vocals"] and model.sample_rate == 8192 and model.channels == 1
    provenance = model.metadata["provenance"]
    assert provenance["recipe"] == "recipes/default_model.toml"
    assert any("CC BY 3.0" in licence for licence in provenance["licences"])
    assert "field" in provenance["test_scores_paper_protocol"]
    data = model.recipe.model_dump(mode="json")["data"]  # no machine's absolute paths are shipped
    roots = [spec["root"] for role in ("paired", "validation", "test") for spec in data[role]]
    assert roots and all(root.startswith("<corpus>/") for root in roots)
    song = write(tmp_path / "song.wav", 1.0, 22050, 2)
    result = run_cli("separate", song, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    assert f"model: {path} (the default model): unet" in result.stderr
    report = json.loads(result.stdout)
    assert report["default_model"] is True and report["failed"] == 0
    for source in ("accompaniment", "vocals"):
        audio, rate = sf.read(str(tmp_path / "out" / "song" / f"{source}.wav"), always_2d=True)
        assert rate == 22050 and audio.shape == (22050, 2)


def test_wiener_option(run_cli, model_file, tmp_path):
    song = write(tmp_path / "song.wav", 1.0, 8000, 1, subtype="FLOAT")
    out = tmp_path / "out"
    result = run_cli("separate", song, "-m", model_file, "-o", out, "--wiener", "--bit-depth", "32f")
    assert result.exit_code == 0, result.stderr
    mixture, _ = sf.read(str(song), dtype="float32")
    stems = [sf.read(str(out / "song" / f"{s}.wav"), dtype="float32")[0] for s in ("accompaniment", "vocals")]
    np.testing.assert_allclose(stems[0] + stems[1], mixture, atol=1e-5)


def test_builtin_stft_and_unet_model(run_cli, tmp_path):
    """A small magnitude-stft + U-Net model through the installed entry points."""
    from sepkit.build import build_representation, build_separator
    from sepkit.model import model_recipe

    with use_plugins(entry_points=True):
        recipe = model_recipe({
            "name": "small", "sources": ["accompaniment", "vocals"],
            "audio": {"sample_rate": 8192, "channels": 1},
            "representation": {"type": "magnitude-stft", "n_fft": 256, "hop_length": 128},
            "separator": {"type": "unet", "depth": 2, "base_filters": 4, "input_frames": 50},
        })
        torch.manual_seed(0)
        try:
            representation = build_representation(recipe)
            separator = build_separator(recipe, representation)
        except NotImplementedComponentError as exc:
            pytest.skip(f"built-in components not implemented yet: {exc}")
        model = save_model(tmp_path / "unet.safetensors", recipe=recipe, representation=representation, separator=separator)
        song = write(tmp_path / "song.wav", 2.0, 44100, 2)
        result = run_cli("separate", song, "-m", model, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["files"][0]["error"] is None
    info = sf.info(str(tmp_path / "out" / "song" / "vocals.wav"))
    assert (info.samplerate, info.channels, info.frames) == (44100, 2, 88200)
