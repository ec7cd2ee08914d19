"""`sepkit separate`, `evaluate` and model files under faults (issue 15, cases 4 to 10)."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import pytest
import soundfile as sf
from faultkit import (
    _can_mount, enospc_under, full_disk, kill9, one_line_error, partials, recipe_text, run_sepkit, song, start_sepkit, wait_for,
)

from sepkit.testing.cli import invoke


def test_case4_a_full_disk_is_one_line_removes_the_partial_stems_and_stops_with_a_summary(tmp_path, monkeypatch, builtin_model):
    first = song(tmp_path / "in" / "a.wav", 1.0)
    second = song(tmp_path / "in" / "b.wav", 6.0)  # 2 x 1 MB of stems: more than the disk has left
    third = song(tmp_path / "in" / "c.wav", 1.0)
    out = tmp_path / "out"
    if _can_mount():
        disk = full_disk(out, monkeypatch, size="1m")  # room for a's stems (2 x 176 kB), not b's
    else:
        disk = enospc_under(out / "b", monkeypatch)
    with disk:
        result = invoke("separate", first, second, third, "-m", builtin_model, "-o", out, "--json")
        assert result.exit_code == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert errors[0].startswith(f"error: {second}: cannot write {out / 'b'}/") and errors[0].endswith(": No space left on device")
        assert errors[1] == (
            f"error: no space left on the device of {out}: stopped after 1 file(s) separated, 1 not attempted "
            "(the stems written are kept); free some space and separate the rest"
        )
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
        report = json.loads(result.stdout)
        assert [(Path(f["file"]).name, f["error"] is None, f["skipped"]) for f in report["files"]] == [
            ("a.wav", True, False), ("b.wav", False, False), ("c.wav", False, True)]
        assert report["failed"] == 2
        assert sorted(p.name for p in (out / "a").iterdir()) == ["accompaniment.wav", "vocals.wav"]
        assert not (out / "b").exists() and not (out / "c").exists(), "the partial outputs are removed"
        assert partials(out) == []


def test_case5_kill_9_leaves_partials_that_the_next_run_removes(tmp_path, builtin_model):
    track = song(tmp_path / "long.wav", 90.0, rate=22050, channels=1)
    reference = run_sepkit("separate", track, "-m", builtin_model, "-o", tmp_path / "reference", "--precision", "fp32")
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "out"
    child = start_sepkit("separate", track, "-m", builtin_model, "-o", out, "--precision", "fp32")
    assert wait_for(lambda: len(partials(out)) == 2, child, "the temporary stems"), child.communicate()
    delay = random.uniform(0.0, 0.3)  # a random point while the stems are being written
    time.sleep(delay)
    kill9(child)
    left = partials(out)
    assert len(left) == 2 and not (out / "long" / "vocals.wav").exists(), f"killed after {delay:.2f} s: {left}"
    again = run_sepkit("separate", track, "-m", builtin_model, "-o", out, "--precision", "fp32")  # the normal command
    assert again.returncode == 0, again.stderr
    assert partials(out) == [], "the stale partial files of the same output are removed"
    for stem in ("vocals.wav", "accompaniment.wav"):
        assert (out / "long" / stem).read_bytes() == (tmp_path / "reference" / "long" / stem).read_bytes()


def test_case6_a_text_file_named_mp3_is_one_line_without_decoder_noise(tmp_path, builtin_model, capfd):
    fake = tmp_path / "notes.mp3"
    fake.write_text("This is a shopping list, not a song.\n" * 20)
    result = invoke("separate", fake, "-m", builtin_model, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert one_line_error(result.stderr) == f"error: {fake}: cannot read audio (not decodable audio: no MP3 stream in it)"
    noise = capfd.readouterr().err  # what C libraries wrote to file descriptor 2
    assert "Note:" not in noise and "resync" not in noise and "Illegal" not in noise, noise


def test_case7_the_same_name_with_two_formats_is_separated_twice(tmp_path, builtin_model):
    flac = song(tmp_path / "x.flac", 0.5, rate=16000, channels=1)
    ogg = song(tmp_path / "x.ogg", 0.5, rate=16000, channels=1)
    out = tmp_path / "out"
    result = invoke("separate", flac, ogg, "-m", builtin_model, "-o", out)
    assert result.exit_code == 0, result.stderr
    for folder in ("x-flac", "x-ogg"):
        assert sf.info(str(out / folder / "vocals.wav")).frames == 8000
    alone = invoke("separate", flac, "-m", builtin_model, "-o", tmp_path / "alone")
    assert alone.exit_code == 0 and (tmp_path / "alone" / "x" / "vocals.wav").exists(), "a file alone keeps its plain folder"


def test_case8_a_truncated_flac_reports_where_decoding_fails(tmp_path, builtin_model):
    whole = song(tmp_path / "whole.flac", 5.0)
    cut = tmp_path / "cut.flac"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # about 2.5 s of audio intact
    result = invoke("separate", cut, "-m", builtin_model, "-o", tmp_path / "out")
    assert result.exit_code == 1
    line = one_line_error(result.stderr)
    found = re.search(r"truncated or corrupt audio: decoding fails at (\d+\.\d+) s of 5\.00 s", line)
    assert found, line
    assert 2.0 <= float(found.group(1)) <= 2.6, line
    assert not (tmp_path / "out" / "cut").exists() and partials(tmp_path / "out") == []


def _rewrite_model(source: Path, target: Path, *, weights=None, header=None) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    if weights:
        weights(tensors)
    metadata.update(header or {})
    save_file(tensors, str(target), metadata=metadata)
    return target


def test_case9_nan_weights_are_refused_when_the_model_loads(tmp_path, builtin_model):
    def poison(tensors):
        name = sorted(k for k in tensors if tensors[k].is_floating_point() and tensors[k].numel() > 2)[0]
        tensors[name].view(-1)[:2] = float("nan")

    bad = _rewrite_model(builtin_model, tmp_path / "nan.safetensors", weights=poison)
    track = song(tmp_path / "song.wav", 0.5, rate=8000, channels=1)
    result = invoke("separate", track, "-m", bad, "-o", tmp_path / "out")
    assert result.exit_code != 0
    line = one_line_error(result.stderr)
    assert line.startswith(f"error: {bad}: the model file holds non-finite weights (2 NaN or infinite value(s) in "), line
    assert "source features" not in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize("key, value, said", [
    ("sample_rate", "44100", "sample_rate '44100' (the recipe says 8000)"),
    ("channels", "2", "channels '2' (the recipe says 1)"),
    ("sources", json.dumps(["vocals", "accompaniment"]), "sources ['vocals', 'accompaniment'] (the recipe says ['accompaniment', 'vocals'])"),
])
def test_case10_a_header_that_disagrees_with_the_stored_recipe_is_refused(tmp_path, builtin_model, key, value, said):
    from sepkit.errors import SepkitError
    from sepkit.model import load_model

    bad = _rewrite_model(builtin_model, tmp_path / "edited.safetensors", header={key: value})
    with pytest.raises(SepkitError) as caught:
        load_model(bad)
    assert str(caught.value) == f"{bad}: inconsistent model file: its header says {said}; refusing to load it"


def test_disk_full_during_evaluate_is_one_line_and_leaves_whole_files(tmp_path, monkeypatch, tiny_data, builtin_model):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(recipe_text(tiny_data), encoding="utf-8")
    out = tmp_path / "eval"
    with full_disk(out, monkeypatch, size="4k"):
        result = invoke("evaluate", "--model", builtin_model, recipe, "-o", out)
        assert result.exit_code != 0
        line = one_line_error(result.stderr)
        assert line.startswith(f"error: cannot write {out}/") and line.endswith(": No space left on device"), line
        assert partials(out) == []
        for written in out.glob("*.json"):
            json.loads(written.read_text())  # whatever was written is whole
