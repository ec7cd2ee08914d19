"""What `sepkit separate` writes: stems that add up, silence kept silent, formats, clipping, file
names, two stems, shifts; and that inputs are checked before the model loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sepkit.plugins import use_plugins
from tests.conftest import save_demo_sized_model

RATE = 44100


@pytest.fixture(scope="module")
def builtins():
    with use_plugins(entry_points=True) as system:  # the built-in components and the default model
        yield system


@pytest.fixture(scope="module")
def default_model(builtins):
    from sepkit.models import load_model

    return load_model("default")


@pytest.fixture(scope="module")
def demo_model(builtins, tmp_path_factory):
    """A demo-sized model with non-zero biases (see save_demo_sized_model)."""
    from sepkit.model import load_model

    return load_model(save_demo_sized_model(tmp_path_factory.mktemp("demo") / "demo.safetensors"))


def music(seconds: float = 2.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """``[2, L]`` stereo: a low 'voice', chords, a bright hi-hat-like noise well above 4 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    voice = 0.25 * np.sin(2 * np.pi * 440 * t + 2 * np.sin(2 * np.pi * 5 * t))
    chords = sum(0.08 * np.sin(2 * np.pi * f * t) for f in (110.0, 164.8, 220.0))
    bright = np.diff(rng.standard_normal(len(t) + 1)) * 0.05 * (np.sin(2 * np.pi * 4 * t) > 0)
    return np.stack([voice + chords + bright, 0.7 * voice + chords - bright]).astype(np.float32)


def level_db(error: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(np.square(error, dtype=np.float64)) / np.sum(np.square(reference, dtype=np.float64))))


def band_energy(x: np.ndarray, rate: int, low: float) -> float:
    spectrum = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / rate)
    return float(spectrum[..., freqs > low].sum())


def read_stems(folder: Path, names, ext: str = "wav") -> dict[str, np.ndarray]:
    return {n: sf.read(str(folder / f"{n}.{ext}"), dtype="float32", always_2d=True)[0].T for n in names}


# ------------------------------------------------------------------------------ stems that add up


def test_the_stems_of_the_default_model_add_up_to_a_44100_hz_stereo_input(run_cli, builtins, tmp_path):
    song = tmp_path / "song.wav"
    x = music(1.0)
    sf.write(str(song), x.T, RATE, subtype="FLOAT")
    out = tmp_path / "out"
    result = run_cli("separate", song, "-o", out, "--clip-mode", "none", "--bit-depth", "32f")
    assert result.exit_code == 0, result.stderr
    assert "the model hears 0-4096 Hz (8192 Hz, each channel on its own)" in result.stderr
    assert "so the stems add up to the input (--high-band share)" in result.stderr
    stems = read_stems(out / "song", ("accompaniment", "vocals"))
    assert level_db(sum(stems.values()) - x, x) < -60
    # both stems carry part of the band the model cannot hear
    assert all(band_energy(s, RATE, 5000) > 0.01 * band_energy(x, RATE, 5000) for s in stems.values())

    dropped = tmp_path / "dropped"
    assert run_cli("separate", song, "-o", dropped, "--clip-mode", "none", "--bit-depth", "32f", "--high-band", "drop").exit_code == 0
    raw = read_stems(dropped / "song", ("accompaniment", "vocals"))
    assert level_db(sum(raw.values()) - x, x) > -30  # the model's own estimates do not add up
    assert all(band_energy(s, RATE, 4500) < 1e-4 * band_energy(x, RATE, 4500) for s in raw.values())

    given = tmp_path / "given"
    assert run_cli("separate", song, "-o", given, "--clip-mode", "none", "--bit-depth", "32f", "--high-band", "vocals").exit_code == 0
    to_vocals = read_stems(given / "song", ("accompaniment", "vocals"))
    assert level_db(sum(to_vocals.values()) - x, x) < -60
    assert band_energy(to_vocals["accompaniment"], RATE, 4500) < 1e-4 * band_energy(x, RATE, 4500)


def test_the_api_stems_add_up_for_every_mode_and_the_model_estimates_are_unchanged(default_model):
    import sepkit

    x = music(1.5, rate=22050, seed=1)
    for mode in ("share", "accompaniment", "vocals"):
        stems = sepkit.separate(x, 22050, model=default_model, high_band=mode)
        assert level_db(sum(stems.values()) - x, x) < -60, mode
    downmixed = sepkit.separate(x, 22050, model=default_model, channel_mode="downmix")  # the side signal too
    assert level_db(sum(downmixed.values()) - x, x) < -60
    raw = default_model.separate(x, 22050)  # Model.separate: the model's own estimates
    assert raw.keys() == stems.keys() and level_db(sum(raw.values()) - x, x) > -30
    same_rate = sepkit.separate(x[:, ::2].copy(), 11025, model=default_model)  # any rate: still adds up
    assert level_db(sum(same_rate.values()) - x[:, ::2], x[:, ::2]) < -60


def test_stems_add_up_across_chunks_exactly_as_in_one_pass(default_model):
    x = music(4.0, rate=16000, seed=2)
    whole = default_model.separate(x, 16000, high_band="share")
    chunked = default_model.separate(x, 16000, high_band="share", chunk_seconds=1.0)
    for name in whole:
        np.testing.assert_allclose(chunked[name], whole[name], atol=2e-5)


# ------------------------------------------------------------------------------ silence


@pytest.mark.parametrize("which", ["default", "demo"])
@pytest.mark.parametrize("signal", ["digital silence", "-100 dBFS noise"])
def test_silence_in_silence_out(default_model, demo_model, which, signal):
    import sepkit

    model = default_model if which == "default" else demo_model
    rng = np.random.default_rng(3)
    x = np.zeros((2, RATE), np.float32) if signal == "digital silence" else (
        10 ** (-100 / 20) * rng.standard_normal((2, RATE))).astype(np.float32)
    ungated = sepkit.separate(x, RATE, model=model, silence_db=None)
    assert max(np.abs(s).max() for s in ungated.values()) > 1e-5  # the model alone answers with a hum
    for mode in ("share", "drop"):
        stems = sepkit.separate(x, RATE, model=model, high_band=mode)
        assert all(not np.any(s) for s in stems.values()), (which, signal, mode)


def test_silence_inside_a_song_stays_silent_and_the_rest_is_untouched(default_model):
    import sepkit

    x = music(3.0, rate=16000, seed=4)
    x[:, 16000:32000] = 0.0
    stems = sepkit.separate(x, 16000, model=default_model)
    ungated = sepkit.separate(x, 16000, model=default_model, silence_db=None)
    for name in stems:
        assert not np.any(stems[name][:, 16160:31840])  # a 10 ms fade frame at each edge
        np.testing.assert_array_equal(stems[name][:, :15840], ungated[name][:, :15840])
        np.testing.assert_array_equal(stems[name][:, 32160:], ungated[name][:, 32160:])


def test_a_silent_file_gives_silent_stem_files(run_cli, builtins, tmp_path):
    song = tmp_path / "silence.flac"
    sf.write(str(song), np.zeros((RATE, 2), np.float32), RATE, subtype="PCM_16")
    result = run_cli("separate", song, "-o", tmp_path / "out", "--format", "flac")
    assert result.exit_code == 0, result.stderr
    for name in ("accompaniment", "vocals"):
        audio, _ = sf.read(str(tmp_path / "out" / "silence" / f"{name}.flac"), dtype="int16")
        assert audio.shape == (RATE, 2) and not np.any(audio)


# ------------------------------------------------------------------------------ formats and clipping


@pytest.mark.parametrize("fmt, subtype, rate", [("mp3", "MPEG_LAYER_III", RATE), ("opus", "OPUS", 48000)])
def test_lossy_formats(run_cli, builtins, tmp_path, fmt, subtype, rate):
    song = tmp_path / "song.wav"
    sf.write(str(song), music(1.0).T, RATE)
    result = run_cli("separate", song, "-o", tmp_path / "out", "--format", fmt, "--json")
    assert result.exit_code == 0, result.stderr
    (entry,) = json.loads(result.stdout)["files"]
    assert entry["output_rate"] == rate
    for name in ("accompaniment", "vocals"):
        info = sf.info(str(tmp_path / "out" / "song" / f"{name}.{fmt}"))
        assert (info.subtype, info.samplerate, info.channels) == (subtype, rate, 2)
        assert abs(info.duration - 1.0) < 0.1
    if fmt == "opus":
        assert "written at 48 kHz" in result.stderr
    assert "--bit-depth does not apply to mp3" in run_cli("separate", song, "--format", "mp3", "--bit-depth", "16").stderr


def stems_block(peak: float, frames: int = 3000) -> np.ndarray:
    t = np.arange(frames) / 8000
    one = 0.5 * np.sin(2 * np.pi * 200 * t)
    two = 0.3 * np.sin(2 * np.pi * 300 * t)
    stems = np.stack([one, two])[:, None, :].astype(np.float32)
    stems[0, 0, frames // 2] = peak  # one sample beyond full scale, late in the track
    return stems


@pytest.mark.parametrize("subtype, fmt, tolerance", [("FLOAT", "wav", 1e-7), ("PCM_16", "wav", 1.5 / 32768), ("PCM_24", "flac", 1e-6)])
def test_rescale_scales_every_stem_by_one_factor(tmp_path, subtype, fmt, tolerance):
    from sepkit.separation.output import StemWriter

    stems = stems_block(peak=2.0)
    targets = {"a": tmp_path / f"a.{fmt}", "b": tmp_path / f"b.{fmt}"}
    with StemWriter(targets, fmt=fmt, subtype=subtype, sample_rate=8000, channels=1, clip_mode="rescale") as writer:
        for lo in range(0, stems.shape[-1], 1000):  # the loud sample arrives in the second block
            writer.write(stems[..., lo : lo + 1000])
        writer.commit()
    assert writer.gain == pytest.approx(0.5)
    for index, name in enumerate("ab"):
        written, _ = sf.read(str(targets[name]), dtype="float64")
        np.testing.assert_allclose(written, stems[index, 0] * 0.5, atol=tolerance)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"a.{fmt}", f"b.{fmt}"]  # no scratch file left


def test_clamp_none_and_an_unclipped_track(tmp_path):
    from sepkit.errors import SepkitError
    from sepkit.separation.output import StemWriter

    loud, quiet = stems_block(peak=2.0), stems_block(peak=0.9)
    for mode, stems, subtype, expected_peak, gain in [
        ("clamp", loud, "FLOAT", 1.0, 1.0), ("none", loud, "FLOAT", 2.0, 1.0), ("rescale", quiet, "PCM_16", 0.9, 1.0),
    ]:
        targets = {"a": tmp_path / mode / "a.wav", "b": tmp_path / mode / "b.wav"}
        with StemWriter(targets, fmt="wav", subtype=subtype, sample_rate=8000, channels=1, clip_mode=mode) as writer:
            writer.write(stems)
            writer.commit()
        assert writer.gain == gain
        assert np.abs(sf.read(str(targets["a"]))[0]).max() == pytest.approx(expected_peak, abs=1e-4)
    with pytest.raises(SepkitError, match="--clip-mode none needs float samples"):
        StemWriter({"a": tmp_path / "x.wav"}, fmt="wav", subtype="PCM_16", sample_rate=8000, channels=1, clip_mode="none")


def test_the_command_says_when_it_rescales(run_cli, builtins, tmp_path):
    song = tmp_path / "loud.wav"
    x = np.clip(music(1.0) * 3.5, -1, 1)  # full scale: a stem that takes most of it plus a share of the rest clips
    sf.write(str(song), x.T, RATE, subtype="FLOAT")
    result = run_cli("separate", song, "-o", tmp_path / "out", "--high-band", "vocals", "--json")
    assert result.exit_code == 0, result.stderr
    (entry,) = json.loads(result.stdout)["files"]
    vocals, _ = sf.read(str(tmp_path / "out" / "loud" / "vocals.wav"))
    if entry["rescaled_db"] is None:
        pytest.skip("this input did not clip")
    assert f"every stem scaled by {entry['rescaled_db']:.2f} dB so that none clips" in result.stderr
    assert np.abs(vocals).max() <= 1.0


# ------------------------------------------------------------------------------ names, two stems, checks


def test_filename_templates_and_two_stems(run_cli, builtins, tmp_path):
    song = tmp_path / "Song One.wav"
    x = music(1.0)
    sf.write(str(song), x.T, RATE, subtype="FLOAT")
    out = tmp_path / "out"
    result = run_cli(
        "separate", song, "-o", out, "--two-stems", "vocals", "--filename", "{model}/{track} - {stem}.{ext}",
        "--clip-mode", "none", "--bit-depth", "32f",
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (out / "default").iterdir()) == ["Song One - no_vocals.wav", "Song One - vocals.wav"]
    vocals, _ = sf.read(str(out / "default" / "Song One - vocals.wav"), dtype="float32", always_2d=True)
    rest, _ = sf.read(str(out / "default" / "Song One - no_vocals.wav"), dtype="float32", always_2d=True)
    np.testing.assert_allclose(rest.T, x - vocals.T, atol=1e-6)  # the rest is the mixture minus the source
    only = run_cli("separate", song, "-o", tmp_path / "only", "--two-stems", "vocals", "--stems", "no_vocals")
    assert only.exit_code == 0, only.stderr
    assert sorted(p.name for p in (tmp_path / "only" / "Song One").iterdir()) == ["no_vocals.wav"]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--filename", "{track}.{ext}"], "needs {stem}"),
        (["--filename", "{track}/{stem}.{format}"], "unknown field {format}"),
        (["--filename", "/tmp/{stem}.{ext}"], "must be a file path inside the output folder"),
        (["--filename", "../{stem}.{ext}"], "must be a file path inside the output folder"),
        (["--clip-mode", "soft"], "--clip-mode soft: expected rescale, clamp, none"),
        (["--clip-mode", "none"], "--clip-mode none needs float samples"),
        (["--format", "aac"], "unknown output format 'aac'"),
        (["--two-stems", "drums"], "--two-stems drums: not a source of this model (accompaniment, vocals)"),
        (["--high-band", "bass"], "--high-band bass: expected share, drop or one of the sources (accompaniment, vocals)"),
        (["--shifts", "0"], "Invalid value for '--shifts'"),
    ],
)
def test_bad_output_options_are_one_line_before_the_model_loads(run_cli, builtins, tmp_path, monkeypatch, options, message):
    import sepkit.model

    monkeypatch.setattr(sepkit.model, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    song = tmp_path / "song.wav"
    sf.write(str(song), music(0.5).T, RATE)
    result = run_cli("separate", song, "-o", tmp_path / "out", *options)
    assert result.exit_code != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_inputs_and_existing_outputs_are_checked_before_the_model_loads(run_cli, builtins, tmp_path, monkeypatch):
    import sepkit.model

    song = tmp_path / "song.wav"
    sf.write(str(song), music(0.5).T, RATE)
    (tmp_path / "out" / "song").mkdir(parents=True)
    (tmp_path / "out" / "song" / "vocals.wav").write_bytes(b"keep me")
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    monkeypatch.setattr(sepkit.model, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    result = run_cli("separate", song, text, tmp_path / "missing.wav", "-o", tmp_path / "out")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 3, result.stderr
    assert any(str(text) in line for line in lines) and any("missing.wav: no such file" in line for line in lines)
    assert any("vocals.wav: already exists (pass --overwrite" in line for line in lines)
    assert (tmp_path / "out" / "song" / "vocals.wav").read_bytes() == b"keep me"


def test_no_usable_input_fails_before_any_download_or_model_load(run_cli, builtins, tmp_path, monkeypatch):
    import sepkit.model
    import sepkit.models

    monkeypatch.setattr(sepkit.model, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    monkeypatch.setattr(sepkit.models, "resolve_model", lambda *a, **k: pytest.fail("the model was resolved"))
    (tmp_path / "empty").mkdir()
    url = "http://127.0.0.1:9/never.safetensors#sha256=" + "0" * 64  # would fail if it were tried
    result = run_cli("separate", tmp_path / "missing.wav", tmp_path / "empty", "-m", url, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 1
    assert [line for line in result.stderr.splitlines() if line] == [
        f"error: {tmp_path / 'missing.wav'}: no such file or folder",
        f"error: {tmp_path / 'empty'}: no audio files in this folder",
    ]
    report = json.loads(result.stdout)
    assert report["failed"] == 2 and report["model"] == url and report["device"] is None
    assert not report["default_model"] and not (tmp_path / "out").exists()
    plain = run_cli("separate", tmp_path / "missing.wav", "-o", tmp_path / "out", "--json")
    assert plain.exit_code == 1 and json.loads(plain.stdout)["default_model"] is True


def test_shifts_average_passes_deterministically(default_model):
    import sepkit

    x = music(1.0, rate=8192, seed=5)[:1]
    plain = sepkit.separate(x, 8192, model=default_model, high_band="drop")
    shifted = sepkit.separate(x, 8192, model=default_model, high_band="drop", shifts=2)
    again = sepkit.separate(x, 8192, model=default_model, high_band="drop", shifts=2)
    other_seed = sepkit.separate(x, 8192, model=default_model, high_band="drop", shifts=2, seed=1)
    for name in plain:
        np.testing.assert_array_equal(shifted[name], again[name])
        assert shifted[name].shape == plain[name].shape
        assert not np.array_equal(shifted[name], plain[name]) and not np.array_equal(shifted[name], other_seed[name])
        assert level_db(shifted[name] - plain[name], plain[name]) < -10  # an average of similar estimates


def test_shift_delays_cover_the_window():
    from sepkit.separation.streaming import shift_delays

    delays = shift_delays(200, 1000, seed=0)
    assert delays[0] == 0 and len(delays) == 200 and all(1 <= d < 1000 for d in delays[1:])
    assert len(set(delays)) > 150 and max(delays) > 900 and min(delays[1:]) < 100


def test_version_and_completion(run_cli):
    import sepkit

    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"sepkit {sepkit.__version__}"
    script = run_cli("--show-completion", "bash")
    assert script.exit_code == 0 and "_SEPKIT_COMPLETE" in script.stdout
