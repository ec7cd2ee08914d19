"""`sepkit evaluate` and the evaluation loop: per-track JSON, summaries, tables, reruns, bad input,
parallel scoring, saved estimates, both protocols."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sepkit.data.loading import LoadedTrack
from sepkit.errors import SepkitError
from sepkit.evaluation import bss_eval_sources, evaluate
from sepkit.evaluation.museval_backend import museval_bss_eval_sources
from sepkit.evaluation.protocols import museval_groups
from sepkit.evaluation.tables import compare, load_summary

RATE = 8000
SOURCES = ["accompaniment", "vocals"]


# -- stand-ins -----------------------------------------------------------------------------------------


def stems(seconds: float = 2.0, *, seed: int = 0, channels: int = 1, rate: int = RATE) -> np.ndarray:
    """``[3, C, N]`` float32: mixture, accompaniment (low chords + noise), vocals (vibrato tone)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    accompaniment = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 165 * t) + 0.02 * rng.standard_normal(n)
    pitch = (440 + 40 * seed) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    vocals = 0.2 * sum(np.sin(k * phase) / k for k in range(1, 6))
    sources = np.stack([accompaniment, vocals])[:, None, :].repeat(channels, axis=1)
    if channels > 1:
        sources[:, 1] *= 0.7
    return np.concatenate([sources.sum(axis=0, keepdims=True), sources]).astype(np.float32)


def track(name: str, subset: str = "set-a", **kwargs) -> LoadedTrack:
    return LoadedTrack(name, subset, stems(seed=int(name[-1]) if name[-1].isdigit() else 0, **kwargs))


class SplitModel:
    """A deterministic stand-in separator: low-pass part -> accompaniment, the rest -> vocals."""

    sources = SOURCES
    sample_rate = RATE
    channels = 1

    def __init__(self, cutoff: float = 300.0, **behaviour) -> None:
        self.cutoff = cutoff
        self.behaviour = behaviour
        self.calls: list[tuple[tuple[int, ...], int, dict]] = []

    def separate(self, waveform: np.ndarray, sample_rate: int, **options) -> dict[str, np.ndarray]:
        self.calls.append((waveform.shape, sample_rate, options))
        if self.behaviour.get("interrupt_on") == len(self.calls):
            raise KeyboardInterrupt
        if self.behaviour.get("fail_on") == len(self.calls):
            raise SepkitError("this track cannot be separated")
        spectrum = np.fft.rfft(waveform, axis=-1)
        freqs = np.fft.rfftfreq(waveform.shape[-1], 1 / sample_rate)
        low = np.fft.irfft(spectrum * (freqs < self.cutoff), n=waveform.shape[-1], axis=-1)
        out = {"accompaniment": low.astype(np.float32), "vocals": (waveform - low).astype(np.float32)}
        extra = self.behaviour.get("extra_samples", 0)
        if extra:
            out = {k: np.pad(v, ((0, 0), (0, extra))) for k, v in out.items()}
        if self.behaviour.get("nan_vocals"):
            out["vocals"][..., 10] = np.nan
        if self.behaviour.get("drop") in out:
            del out[self.behaviour["drop"]]
        return out


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def quiet(**kwargs):
    return {"progress": False, **kwargs}


# -- the paper protocol ----------------------------------------------------------------------------------------


def test_paper_protocol_writes_track_results_and_a_summary(tmp_path):
    tracks = [track("t1", "set-a"), track("t2", "set-a"), track("t3", "set-b")]
    model = SplitModel()
    summary = evaluate(model, tracks, out_dir=tmp_path, **quiet())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json", "t1.json", "t2.json", "t3.json"]
    result = read(tmp_path / "t1.json")
    assert (result["track"], result["subset"], result["protocol"], result["backend"]) == ("t1", "set-a", "paper", "fast")
    assert (result["sample_rate"], result["channels"], result["samples"]) == (RATE, 1, 2 * RATE)
    assert set(result["metrics"]) == set(SOURCES)
    assert "frames" not in result
    # the numbers are bss_eval_sources of what the model returned, and NSDR = SDR - SDR(mixture)
    audio = tracks[0].audio.astype(np.float64)
    estimates = model.separate(audio[0], RATE)
    direct = bss_eval_sources(audio[1:, 0], np.stack([estimates[s][0] for s in SOURCES]), mixture=audio[0, 0])
    for j, source in enumerate(SOURCES):
        metrics = result["metrics"][source]
        assert metrics["SDR"] == pytest.approx(float(direct.sdr[j]), abs=1e-6)
        assert metrics["SIR"] == pytest.approx(float(direct.sir[j]), abs=1e-6)
        assert metrics["SAR"] == pytest.approx(float(direct.sar[j]), abs=1e-6)
        assert metrics["NSDR"] == pytest.approx(metrics["SDR"] - float(direct.mixture_sdr[j]), abs=1e-6)
    # summary: mean and median per subset and over all
    on_disk = read(tmp_path / "summary.json")
    assert on_disk["tracks"] == summary["tracks"] == 3
    values = [read(tmp_path / f"t{i}.json")["metrics"]["vocals"]["SDR"] for i in (1, 2, 3)]
    assert on_disk["overall"]["mean"]["vocals"]["SDR"] == pytest.approx(np.mean(values))
    assert on_disk["overall"]["median"]["vocals"]["SDR"] == pytest.approx(np.median(values))
    assert on_disk["subsets"]["set-a"]["mean"]["vocals"]["SDR"] == pytest.approx(np.mean(values[:2]))
    assert on_disk["subsets"]["set-b"]["tracks"] == 1
    assert on_disk["overall"]["count"]["vocals"]["NSDR"] == 3


def test_tables_have_the_layout_of_table_2(tmp_path):
    from rich.console import Console

    console = Console(record=True, width=200)
    evaluate(SplitModel(), [track("t1", "set-a"), track("t2", "set-b")], out_dir=tmp_path, console=console)
    text = console.export_text()
    assert "mean over tracks" in text and "median over tracks" in text
    header = next(line for line in text.splitlines() if "metric" in line and "source" in line)
    assert header.index("All") < header.index("set-a") < header.index("set-b")
    for metric in ("SDR", "SIR", "SAR", "NSDR"):
        assert sum(1 for line in text.splitlines() if line.strip("│┃ ").startswith(metric)) == 4  # 2 sources x 2 tables


def test_museval_backend_gives_the_same_numbers(tmp_path):
    tracks = [track("t1")]
    evaluate(SplitModel(), tracks, out_dir=tmp_path / "fast", **quiet())
    evaluate(SplitModel(), tracks, out_dir=tmp_path / "museval", fast=False, **quiet())
    fast, slow = read(tmp_path / "fast" / "t1.json"), read(tmp_path / "museval" / "t1.json")
    assert slow["backend"] == "museval"
    for source in SOURCES:
        for metric in ("SDR", "SIR", "SAR", "NSDR"):
            assert fast["metrics"][source][metric] == pytest.approx(slow["metrics"][source][metric], abs=0.01)
    assert read(tmp_path / "museval" / "summary.json")["museval_version"]


def test_paper_protocol_scores_mono_at_the_model_rate(tmp_path):
    stereo = LoadedTrack("s1", "x", stems(1.0, channels=2, rate=16000))
    model = SplitModel()
    evaluate(model, [stereo], out_dir=tmp_path, sample_rate=16000, **quiet())
    (shape, rate, _), = model.calls
    assert shape == (1, RATE) and rate == RATE  # the model separated the mono mixture at its own rate
    result = read(tmp_path / "s1.json")
    assert (result["sample_rate"], result["channels"], result["samples"]) == (RATE, 1, RATE)


# -- reruns and interruptions ------------------------------------------------------------------------------------


def test_rerun_skips_scored_tracks_and_rescoring_replaces_them(tmp_path):
    tracks = [track("t1"), track("t2")]
    evaluate(SplitModel(), tracks, out_dir=tmp_path, **quiet())
    first = read(tmp_path / "t1.json")
    again = SplitModel()
    summary = evaluate(again, tracks, out_dir=tmp_path, **quiet())
    assert again.calls == []
    assert summary["overall"]["mean"]["vocals"]["SDR"] == pytest.approx(first["metrics"]["vocals"]["SDR"] / 2 + read(tmp_path / "t2.json")["metrics"]["vocals"]["SDR"] / 2)
    v4 = SplitModel()
    evaluate(v4, tracks, out_dir=tmp_path, protocol="bsseval-v4", **quiet())
    assert len(v4.calls) == 2
    assert read(tmp_path / "t1.json")["protocol"] == "bsseval-v4"


def test_an_interrupted_run_keeps_finished_tracks(tmp_path):
    tracks = [track("t1"), track("t2"), track("t3")]
    with pytest.raises(KeyboardInterrupt):
        evaluate(SplitModel(interrupt_on=2), tracks, out_dir=tmp_path, **quiet())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t1.json"]  # whole files only, no summary yet
    assert read(tmp_path / "t1.json")["metrics"]["vocals"]["SDR"] is not None
    resumed = SplitModel()
    summary = evaluate(resumed, tracks, out_dir=tmp_path, **quiet())
    assert len(resumed.calls) == 2 and summary["tracks"] == 3


def test_tracks_of_the_same_name_in_two_subsets_get_two_files(tmp_path):
    evaluate(SplitModel(), [track("t1", "set-a"), track("t1", "set-b")], out_dir=tmp_path, **quiet())
    assert read(tmp_path / "t1.json")["subset"] == "set-a"
    assert read(tmp_path / "set-b__t1.json")["subset"] == "set-b"


# -- bad input: warnings, NaN, never a crash of the whole run ---------------------------------------------------------


def test_length_mismatch_is_trimmed_with_a_warning(tmp_path):
    evaluate(SplitModel(extra_samples=37), [track("t1")], out_dir=tmp_path, **quiet())
    result = read(tmp_path / "t1.json")
    assert result["samples"] == 2 * RATE
    assert any("is shorter than its estimate" in w and f"trimmed to {2 * RATE}" in w for w in result["warnings"])
    assert result["metrics"]["vocals"]["SDR"] is not None


def test_silent_reference_nan_estimate_missing_stem_and_a_failing_track(tmp_path, caplog):
    silent = track("t1")
    silent.audio[2] = 0.0  # silent vocals reference (the mixture keeps its accompaniment)
    silent.audio[0] = silent.audio[1]
    evaluate(SplitModel(), [silent], out_dir=tmp_path / "silent", **quiet())
    result = read(tmp_path / "silent" / "t1.json")
    assert all(result["metrics"]["vocals"][m] is None for m in ("SDR", "SIR", "SAR", "NSDR"))
    assert result["metrics"]["accompaniment"]["SDR"] is not None
    assert any("reference 'vocals' is silent" in w for w in result["warnings"])

    evaluate(SplitModel(nan_vocals=True), [track("t2")], out_dir=tmp_path / "nan", **quiet())
    result = read(tmp_path / "nan" / "t2.json")
    assert result["metrics"]["vocals"]["SDR"] is None and result["metrics"]["accompaniment"]["SDR"] is not None
    assert any("estimate of 'vocals' holds NaN" in w for w in result["warnings"])

    two_stems = LoadedTrack("t3", "x", track("t3").audio[:2])
    evaluate(SplitModel(), [two_stems], out_dir=tmp_path / "missing", stems=["mixture", "accompaniment"], **quiet())
    result = read(tmp_path / "missing" / "t3.json")
    assert any("no reference for 'vocals'" in w for w in result["warnings"])
    assert result["metrics"]["vocals"]["SDR"] is None and result["metrics"]["accompaniment"]["SDR"] is not None

    evaluate(SplitModel(drop="vocals"), [track("t4")], out_dir=tmp_path / "dropped", **quiet())
    assert any("no estimate for 'vocals'" in w for w in read(tmp_path / "dropped" / "t4.json")["warnings"])

    summary = evaluate(SplitModel(fail_on=1), [track("t5"), track("t6")], out_dir=tmp_path / "failing", **quiet())
    assert summary["failed"] == [{"track": "t5", "subset": "set-a", "error": "this track cannot be separated"}]
    assert summary["tracks"] == 1 and (tmp_path / "failing" / "t6.json").exists()
    assert "t5: not scored: this track cannot be separated" in caplog.text


def test_nan_tracks_are_left_out_of_the_statistics(tmp_path):
    silent = track("t1")
    silent.audio[2] = 0.0
    silent.audio[0] = silent.audio[1]
    summary = evaluate(SplitModel(), [silent, track("t2")], out_dir=tmp_path, **quiet())
    assert summary["overall"]["count"]["vocals"]["SDR"] == 1
    assert summary["overall"]["count"]["accompaniment"]["SDR"] == 2
    assert summary["overall"]["mean"]["vocals"]["SDR"] == pytest.approx(read(tmp_path / "t2.json")["metrics"]["vocals"]["SDR"])


# -- parallel scoring, saved estimates, BSS Eval v4 -----------------------------------------------------------------------


def test_parallel_scoring_equals_serial(tmp_path):
    tracks = [track("t1"), track("t2"), track("t3", "set-b")]
    serial = evaluate(SplitModel(), tracks, out_dir=tmp_path / "serial", **quiet())
    parallel = evaluate(SplitModel(), tracks, out_dir=tmp_path / "parallel", jobs=2, **quiet())
    assert parallel["subsets"].keys() == serial["subsets"].keys()
    for name in ("t1", "t2", "t3"):  # equal up to rounding (workers use fewer threads)
        a, b = read(tmp_path / "parallel" / f"{name}.json"), read(tmp_path / "serial" / f"{name}.json")
        for source in SOURCES:
            for metric, value in b["metrics"][source].items():
                assert a["metrics"][source][metric] == pytest.approx(value, abs=1e-8)
    assert parallel["overall"]["mean"]["vocals"]["SDR"] == pytest.approx(serial["overall"]["mean"]["vocals"]["SDR"], abs=1e-8)


def test_saved_estimates_rescore_to_the_same_numbers(tmp_path):
    evaluate(SplitModel(), [track("t1")], out_dir=tmp_path, save_estimates=True, **quiet())
    folder = tmp_path / "t1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "accompaniment-estimate.wav", "accompaniment-reference.wav", "vocals-estimate.wav", "vocals-reference.wav",
    ]
    info = sf.info(str(folder / "vocals-estimate.wav"))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (RATE, 1, 2 * RATE, "FLOAT")
    references = np.stack([sf.read(str(folder / f"{s}-reference.wav"))[0] for s in SOURCES])
    estimates = np.stack([sf.read(str(folder / f"{s}-estimate.wav"))[0] for s in SOURCES])
    sdr, sir, sar = museval_bss_eval_sources(references, estimates)
    result = read(tmp_path / "t1.json")
    for j, source in enumerate(SOURCES):
        assert result["metrics"][source]["SDR"] == pytest.approx(sdr[j], abs=0.01)
        assert result["metrics"][source]["SAR"] == pytest.approx(sar[j], abs=0.01)


def test_bsseval_v4_stores_frames_and_their_medians(tmp_path):
    long_track = LoadedTrack("t1", "x", stems(3.5))
    evaluate(SplitModel(), [long_track], out_dir=tmp_path, protocol="bsseval-v4", **quiet())
    result = read(tmp_path / "t1.json")
    assert result["protocol"] == "bsseval-v4" and result["window_seconds"] == 1.0
    for source in SOURCES:
        frames = result["frames"][source]
        assert len(frames["SDR"]) == 3  # whole 1 s windows only, as museval
        for metric in ("SDR", "ISR", "SIR", "SAR"):
            assert result["metrics"][source][metric] == pytest.approx(float(np.median(frames[metric])))
        assert result["metrics"][source]["NSDR"] == pytest.approx(
            np.median(frames["SDR"]) - np.median(frames["mixture_SDR"])
        )
    summary = read(tmp_path / "summary.json")
    assert summary["metrics"] == ["SDR", "ISR", "SIR", "SAR", "NSDR"]


def test_museval_groups_follow_eval_mus_track():
    assert museval_groups(["accompaniment", "vocals"]) == [(["vocals", "accompaniment"], {"vocals", "accompaniment"})]
    groups = museval_groups(["vocals", "drums", "bass", "other", "accompaniment"])
    assert groups == [
        (["vocals", "drums", "bass", "other"], {"drums", "bass", "other"}),
        (["vocals", "accompaniment"], {"vocals", "accompaniment"}),
    ]
    assert museval_groups(["drums", "bass"]) == [(["drums", "bass"], {"drums", "bass"})]


def test_bad_arguments(tmp_path):
    with pytest.raises(SepkitError, match="unknown protocol 'v3'; expected one of paper, bsseval-v4"):
        evaluate(SplitModel(), [track("t1")], out_dir=tmp_path, protocol="v3", **quiet())
    with pytest.raises(SepkitError, match="--jobs must be at least 1"):
        evaluate(SplitModel(), [track("t1")], out_dir=tmp_path, jobs=0, **quiet())
    (tmp_path / "file").write_text("x")
    with pytest.raises(SepkitError, match="exists and is not a folder"):
        evaluate(SplitModel(), [track("t1")], out_dir=tmp_path / "file", **quiet())


# -- comparing evaluations -----------------------------------------------------------------------------------------------


def test_compare_prints_models_side_by_side(tmp_path):
    from rich.console import Console

    tracks = [track("t1", "set-a"), track("t2", "set-b")]
    evaluate(SplitModel(cutoff=300), tracks, out_dir=tmp_path / "baseline" / "evaluation", **quiet())
    evaluate(SplitModel(cutoff=600), tracks, out_dir=tmp_path / "both-critics" / "evaluation", **quiet())
    (tmp_path / "both-critics" / "evaluation" / "summary.json").unlink()  # rebuilt from the track files
    console = Console(record=True, width=250)
    summaries = compare([tmp_path / "baseline" / "evaluation", tmp_path / "both-critics" / "evaluation"], console=console)
    text = console.export_text()
    assert [s["label"] for s in summaries] == ["baseline", "both-critics"]
    assert text.count("baseline") == 3 and text.count("both-critics") == 3  # under All, set-a, set-b
    rebuilt = load_summary(tmp_path / "both-critics" / "evaluation")
    assert rebuilt["tracks"] == 2 and rebuilt["protocol"] == "paper"
    evaluate(SplitModel(), tracks, out_dir=tmp_path / "v4", protocol="bsseval-v4", **quiet())
    with pytest.raises(SepkitError, match="different protocols"):
        compare([tmp_path / "baseline" / "evaluation", tmp_path / "v4"], console=console)
    with pytest.raises(SepkitError, match="no such evaluation folder"):
        compare([tmp_path / "nowhere"])


# -- the command line ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A small magnitude-stft + U-Net model (built-in plugins), biases raised so that its ReLU
    outputs are not all zero."""
    from sepkit.build import build_representation, build_separator
    from sepkit.errors import NotImplementedComponentError
    from sepkit.model import model_recipe, save_model

    recipe = model_recipe({
        "name": "small", "sources": SOURCES,
        "audio": {"sample_rate": RATE, "channels": 1},
        "representation": {"type": "magnitude-stft", "n_fft": 256, "hop_length": 128},
        "separator": {"type": "unet", "depth": 2, "base_filters": 4, "input_frames": 50},
        "evaluation": {"overlap": 0.0},
    })
    torch.manual_seed(0)
    try:
        representation = build_representation(recipe)
        separator = build_separator(recipe, representation)
    except NotImplementedComponentError as exc:
        pytest.skip(f"built-in components not implemented yet: {exc}")
    with torch.no_grad():
        for parameter in separator.parameters():
            if parameter.dim() == 1:
                parameter.uniform_(0.05, 0.3)
    folder = tmp_path_factory.mktemp("model")
    return save_model(folder / "model.safetensors", recipe=recipe, representation=representation, separator=separator)


def stem_folder(root: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        audio = stems(1.5, seed=i)
        for stem, signal in zip(["mixture", *SOURCES], audio):
            path = root / name / f"{stem}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), signal[0], RATE, subtype="FLOAT")
    return root


def test_cli_evaluates_a_stem_folder_and_compares(run_cli, model_file, tmp_path):
    root = stem_folder(tmp_path / "test", ["song1", "song2"])
    out = tmp_path / "eval"
    result = run_cli("evaluate", "--model", model_file, "--dataset", f"stems:{root}", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "paper protocol, mean over tracks" in result.stdout and "NSDR" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["song1.json", "song2.json", "summary.json"]
    song = read(out / "song1.json")
    assert song["subset"] == "test" and song["model"].startswith("model.safetensors:")
    assert all(song["metrics"][s]["SDR"] is not None for s in SOURCES)

    again = run_cli("evaluate", "--model", model_file, "--dataset", f"stems:{root}", "-o", out, "--json")
    assert again.exit_code == 0, again.stderr
    assert "skipped 2 track(s) already scored" in again.stderr
    assert json.loads(again.stdout)["overall"]["tracks"] == 2

    v4 = tmp_path / "eval-v4"
    assert run_cli("evaluate", "-m", model_file, "-d", f"stems:{root}", "-o", v4, "--protocol", "bsseval-v4").exit_code == 0
    assert "frames" in read(v4 / "song2.json")

    compared = run_cli("evaluate", "--compare", out, out)
    assert compared.exit_code == 0, compared.stderr
    assert "eval#1" in compared.stdout and "eval#2" in compared.stdout


def test_cli_with_a_recipe_and_default_output(run_cli, model_file, tmp_path, write_recipe):
    from tests.conftest import minimal_recipe

    root = stem_folder(tmp_path / "songs", ["a1"])
    recipe = write_recipe(minimal_recipe(
        audio=f"[audio]\nsample_rate = {RATE}\nchannels = 1\n",
        data=f'[[data.test]]\ntype = "stems"\nroot = "{root}"\nname = "mine"\n',
    ))
    result = run_cli("evaluate", recipe, "--model", model_file, "--save-estimates")
    assert result.exit_code == 0, result.stderr
    out = model_file.parent / "evaluation"
    assert read(out / "a1.json")["subset"] == "mine"
    assert (out / "a1" / "vocals-estimate.wav").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "stems:x"], "--model PATH is required"),
        (["--model", "m.safetensors"], "give a recipe"),
        (["--model", "m.safetensors", "--dataset", "stems"], "expected TYPE:ROOT"),
        (["--compare"], "--compare needs evaluation folders"),
        (["--model", "m.safetensors", "--dataset", "s:x", "--protocol", "v9"], "--protocol v9: expected one of paper, bsseval-v4"),
    ],
)
def test_cli_bad_arguments_are_one_line_errors(run_cli, args, message):
    result = run_cli("evaluate", *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_unknown_dataset_type_and_bad_model(run_cli, model_file, tmp_path):
    result = run_cli("evaluate", "--model", model_file, "--dataset", f"nope:{tmp_path}")
    assert result.exit_code != 0 and "unknown dataset 'nope'; registered:" in result.stderr
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not a model")
    result = run_cli("evaluate", "--model", bogus, "--dataset", f"stems:{tmp_path}")
    assert result.exit_code != 0 and "bogus.safetensors" in result.stderr


def test_cli_on_corpus_tracks(run_cli, model_file, corpus, tmp_path):
    """A track of the offline corpus (linked, not copied), scored with both backends."""
    root = tmp_path / "corpus-test"
    root.mkdir()
    for name in ("te005",):
        (root / name).symlink_to(corpus / "test" / name)
    fast = run_cli("evaluate", "-m", model_file, "-d", f"stems:{root}", "-o", tmp_path / "fast")
    assert fast.exit_code == 0, fast.stderr
    slow = run_cli("evaluate", "-m", model_file, "-d", f"stems:{root}", "-o", tmp_path / "slow", "--museval")
    assert slow.exit_code == 0, slow.stderr
    for name in ("te005",):
        a, b = read(tmp_path / "fast" / f"{name}.json"), read(tmp_path / "slow" / f"{name}.json")
        assert a["samples"] == b["samples"] > 29 * RATE
        for source in SOURCES:
            for metric in ("SDR", "SIR", "SAR", "NSDR"):
                assert a["metrics"][source][metric] == pytest.approx(b["metrics"][source][metric], abs=0.01)
