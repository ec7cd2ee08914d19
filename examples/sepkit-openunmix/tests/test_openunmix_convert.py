"""``sepkit convert open-unmix``: what it writes, and every refusal as one line."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

import sepkit
from sepkit.testing.cli import invoke

from sepkit_openunmix.published import UMXHQ, UMXL, UNKNOWN_LICENSE, recognise

from openunmix_helpers import (  # noqa: F401 (fixture)
    TINY_HOP, TINY_RATE, checkpoints, convert_cli, isolated_cache, one_thread, random_openunmix, save_checkpoint,
)


class NotATensor:
    """Anything a plain state dict cannot hold: torch.load(weights_only=True) must refuse it."""


def _one_line_error(result, *fragments: str) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_sepkit_plugins_lists_the_separator_with_its_distribution():
    result = invoke("plugins")
    assert result.exit_code == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "open-unmix" in line)
    assert "separator" in line and "sepkit-openunmix" in line


def test_conversion_writes_a_model_with_provenance_and_the_licence(tmp_path):
    files = checkpoints(tmp_path)
    result = convert_cli(files, tmp_path / "umx.safetensors")
    assert result.exit_code == 0, result.stderr
    assert "vocals" in result.stdout and "65 bins (max_bin 40)" in result.stdout and "licence:" in result.stdout
    model = sepkit.load_model(tmp_path / "umx.safetensors")
    assert model.sources == ["vocals", "drums"] and model.sample_rate == TINY_RATE and model.channels == 2
    assert model.recipe.representation.type == "magnitude-stft"
    rep = model.recipe.representation.config
    assert (rep.n_fft, rep.hop_length, rep.normalisation, rep.center) == (128, TINY_HOP, "none", True)
    assert model.recipe.audio.clip is False
    provenance = model.metadata["converted_from"]["files"]
    for target, path in files.items():
        assert provenance[target]["sha256"] == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
        assert provenance[target]["file"] == path.name and provenance[target]["url"] is None
    assert model.metadata["license"] == UNKNOWN_LICENSE
    with safe_open(str(tmp_path / "umx.safetensors"), framework="pt") as handle:
        keys = set(handle.keys())
    assert "targets.0.lstm.weight_ih_l0_reverse" in keys and "targets.1.bn3.running_var" in keys
    assert not any("window" in k or "sample_rate" in k for k in keys)  # the legacy STFT entries are dropped


def test_training_checkpoints_and_files_without_the_legacy_entries_convert(tmp_path):
    network = random_openunmix(3)
    torch.save({"state_dict": network.state_dict(), "epoch": 7, "optimizer": {"lr": 0.001}}, tmp_path / "vocals.chkpnt")
    plain = save_checkpoint(random_openunmix(4), tmp_path / "drums.pth", legacy=False)
    result = invoke("convert", "open-unmix", f"vocals={tmp_path / 'vocals.chkpnt'}", f"drums={plain}",
                    "-o", tmp_path / "m.safetensors", "--sample-rate", TINY_RATE, "--hop-length", TINY_HOP)
    assert result.exit_code == 0, result.stderr
    assert sepkit.load_model(tmp_path / "m.safetensors").sample_rate == TINY_RATE


def test_the_window_options_are_stored(tmp_path):
    files = checkpoints(tmp_path, ("vocals",))
    result = convert_cli(files, tmp_path / "m.safetensors", "--output-frames", 40, "--context-frames", 12)
    assert result.exit_code == 0, result.stderr
    window = sepkit.load_model(tmp_path / "m.safetensors").separator.window
    assert (window.input_frames, window.output_frames, window.context_before) == (64, 40, 12)


def test_published_files_are_recognised_by_their_hash():
    vocals = recognise(UMXHQ.files[0].sha256)
    assert vocals is not None and (vocals.model.name, vocals.file.target, vocals.by) == ("umxhq", "vocals", "sha256")
    assert "MIT" in vocals.model.license
    umxl = recognise(UMXL.files[3].prefix + "0" * 56)
    assert umxl is not None and umxl.model.name == "umxl" and umxl.by == "prefix"
    assert "non-commercial" in umxl.model.license
    assert recognise("0" * 64) is None
    for model in (UMXHQ, UMXL):
        for file in model.files:
            assert file.name.startswith(file.target + "-")
            assert file.sha256 is None or file.sha256.startswith(file.prefix)  # the name carries the hash prefix


# ----------------------------------------------------------------------------------- refusals


def test_a_pickle_with_code_is_refused_without_running_it(tmp_path):
    torch.save({"fc1.weight": torch.zeros(2, 2), "payload": NotATensor()}, tmp_path / "evil.pth")
    result = invoke("convert", "open-unmix", f"vocals={tmp_path / 'evil.pth'}", "-o", tmp_path / "m.safetensors")
    _one_line_error(result, "evil.pth", "weights_only=True")
    assert not (tmp_path / "m.safetensors").exists()


def test_a_file_that_is_no_checkpoint_is_refused(tmp_path):
    (tmp_path / "song.pth").write_bytes(b"RIFF\x00\x00not a checkpoint at all")
    result = invoke("convert", "open-unmix", f"vocals={tmp_path / 'song.pth'}", "-o", tmp_path / "m.safetensors")
    _one_line_error(result, "song.pth", "not a checkpoint")


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda s: s.pop("lstm.weight_ih_l0"), "no 'lstm.weight_ih_l0' entry"),
        (lambda s: s.pop("bn2.weight"), "does not fit Open-Unmix's layout"),
        (lambda s: s.update({"decoder.weight": torch.zeros(3)}), "decoder.weight"),
        (lambda s: s.update({"fc2.weight": torch.zeros(5, 5)}), "fc2.weight"),
        (lambda s: s.update({"stft.window": torch.ones(128)}), "not the periodic Hann window"),
        (lambda s: s.update({"fc3.weight": torch.full_like(s["fc3.weight"], float("nan"))}), "NaN"),
        (lambda s: s.update({"input_mean": torch.zeros(7)}), "not a multiple of max_bin 7"),
    ],
)
def test_a_state_dict_that_does_not_fit_is_refused(tmp_path, change, expected):
    state = dict(random_openunmix(0).state_dict())
    state["stft.window"] = torch.hann_window(128)
    change(state)
    torch.save(state, tmp_path / "vocals.pth")
    result = invoke("convert", "open-unmix", f"vocals={tmp_path / 'vocals.pth'}", "-o", tmp_path / "m.safetensors")
    _one_line_error(result, "vocals.pth", expected)


def test_targets_must_share_one_network(tmp_path):
    save_checkpoint(random_openunmix(0), tmp_path / "vocals.pth")
    save_checkpoint(random_openunmix(1, hidden_size=8), tmp_path / "drums.pth")
    result = convert_cli({"vocals": tmp_path / "vocals.pth", "drums": tmp_path / "drums.pth"}, tmp_path / "m.safetensors")
    _one_line_error(result, "drums.pth", "hidden size 8", "every target must have the same network")


def test_a_sample_rate_that_contradicts_the_checkpoint_is_refused(tmp_path):
    files = checkpoints(tmp_path, ("vocals",))
    result = convert_cli(files, tmp_path / "m.safetensors", "--sample-rate", 44100)
    _one_line_error(result, "--sample-rate 44100", f"{TINY_RATE} Hz")


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["vocals"], "expected TARGET=FILE.pth"),
        (["Vocals=a.pth"], "target names are lowercase"),
        (["vocals=a.pth", "vocals=b.pth"], "given twice"),
        (["vocals={missing}"], "no such checkpoint file"),
        (["vocals=a.pth", "--output-frames", "0"], "--output-frames 0: must be at least 1"),
        (["vocals=a.pth", "--context-frames", "-1"], "--context-frames -1: must be at least 0"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, arguments, expected):
    arguments = [a.format(missing=tmp_path / "missing.pth") for a in arguments]
    result = invoke("convert", "open-unmix", *arguments, "-o", tmp_path / "m.safetensors")
    _one_line_error(result, expected)


def test_the_residual_needs_a_new_name_and_outputs_are_not_overwritten(tmp_path):
    files = checkpoints(tmp_path, ("vocals",))
    _one_line_error(convert_cli(files, tmp_path / "m.safetensors", "--residual", "vocals"), "--residual 'vocals'")
    assert convert_cli(files, tmp_path / "m.safetensors").exit_code == 0
    before = (tmp_path / "m.safetensors").read_bytes()
    _one_line_error(convert_cli(files, tmp_path / "m.safetensors"), "exists; pass --overwrite")
    assert (tmp_path / "m.safetensors").read_bytes() == before
    assert convert_cli(files, tmp_path / "m.safetensors", "--overwrite").exit_code == 0
