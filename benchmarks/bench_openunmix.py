"""Open-Unmix in sepkit: the cost of windows (seams) and the speed against Open-Unmix's own Separator.

    python benchmarks/bench_openunmix.py seams              # windowed vs whole-track magnitudes
    python benchmarks/bench_openunmix.py speed --runs 3     # sepkit separate vs openunmix.Separator, 3-minute file

Needs ``pip install --no-deps openunmix==1.3.0`` (a stand-in replaces its unused torchaudio import
when torchaudio is missing). Both parts use umxhq-sized networks (stereo, 2049 bins, max_bin 1487,
hidden size 512, 3-layer BLSTM) with random weights: Open-Unmix's own ``OpenUnmix`` modules are
built, saved as ``.pth`` files and converted with ``sepkit convert open-unmix``, so both sides hold
the same weights. Speed does not depend on the weights; the seam cost does (see below).

**seams**: a 60-second stereo 44.1 kHz song from sepkit's generator, one target network. The
reference is one pass of the network over every frame of the song (what Open-Unmix does); it is
compared with sepkit's windowed pass (``separate_features``: windows of ``output_frames`` frames with
``context_frames`` frames of context on each side, overlap-added) for several contexts. Reported:
the relative L2 error of the separated magnitudes over the song and over its interior (frames at
least one window from either end: seams only; near the ends the windows also see the engine's
zero-frame padding, which a whole-track pass does not), the worst frame's error and where it is,
and the SDR of the windowed magnitudes against the whole-track ones. Random weights forget within a
few frames (an LSTM forget gate near 0.5); ``--forget-bias B`` adds B to every forget-gate bias, a
stand-in for a network that remembers long (B = 3: gate ~0.95, B = 6: ~0.998). What a trained
umxhq remembers is not known here (no download); ``--model umxhq.safetensors`` measures it.

**speed**: a 3-minute stereo 44.1 kHz 16-bit WAV (bench_separate.py's song). sepkit: the whole
command, ``sepkit separate song.wav --model M.safetensors -o out/ --precision fp32`` as a fresh
process (start-up, model load, decode, separation, writing the stems), and the command's own time
for the file (``--json``'s ``time_s``: decode to written stems, without start-up and model load). Open-Unmix: in one process,
``openunmix.model.Separator`` on the decoded song (the ``umxhq`` settings: ``wiener_win_len`` 300,
torch filterbank) plus writing the stems with soundfile; its import and model building are not
timed. Settings: vocals + residual (sepkit ``--residual accompaniment`` conversion; Open-Unmix
``residual=True``), four targets without Wiener filtering (sepkit default; Open-Unmix ``niter=0``),
and four targets with Wiener filtering (sepkit ``--wiener``: one single-channel soft-mask pass;
Open-Unmix ``niter=1``: one multichannel EM iteration, more work and not the same filter). Median
wall time of ``--runs`` runs of each, interleaved.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_separate import make_song  # noqa: E402  (the same 3-minute song as the separation benchmark)

RATE = 44100
TARGETS = ("vocals", "drums", "bass", "other")
UMXHQ = {"nb_bins": 2049, "nb_channels": 2, "hidden_size": 512, "max_bin": 1487}


def import_openunmix():  # type: ignore[no-untyped-def]
    if "torchaudio" not in sys.modules and importlib.util.find_spec("torchaudio") is None:  # imported, unused
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    import openunmix.model

    return openunmix.model


def make_checkpoints(work: Path, targets: tuple[str, ...] = TARGETS, seed: int = 0) -> dict[str, Path]:
    """Random-weight umxhq-sized Open-Unmix networks saved as Open-Unmix state dicts."""
    import torch

    model = import_openunmix()
    torch.manual_seed(seed)
    files = {}
    for target in targets:
        files[target] = work / f"{target}.pth"
        torch.save(model.OpenUnmix(**UMXHQ).state_dict(), files[target])
    return files


def convert(files: dict[str, Path], output: Path, residual: str | None = None) -> Path:
    from sepkit_openunmix.convert import convert as run

    run(files, output, residual=residual, overwrite=True)
    return output


# -- seams -----------------------------------------------------------------------------------------


def long_memory(separator, forget_bias: float) -> None:  # type: ignore[no-untyped-def]
    """Add ``forget_bias`` to every LSTM forget gate: a stand-in for a network that remembers long."""
    import torch

    with torch.no_grad():
        for network in separator.targets:
            for name, value in network.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    hidden = value.shape[0] // 4
                    value[hidden : 2 * hidden] += forget_bias  # gate order: input, forget, cell, output


def seams(args: argparse.Namespace, work: Path) -> dict:
    import torch

    import sepkit
    from sepkit.separation.windows import separate_features
    from sepkit_openunmix.separator import OpenUnmix
    from sepkit_plugins.synthetic.generator import generate_item

    path = args.model or convert(make_checkpoints(work, ("vocals",)), work / "vocals.safetensors")
    model = sepkit.load_model(path)
    long_memory(model.separator, args.forget_bias)
    item = generate_item(seed=0, domain="b", split="test", index=0, seconds=args.seconds, sample_rate=RATE, channels=2)
    with torch.inference_mode():
        features, _ = model.representation.encode(torch.from_numpy(item.mixture)[None])
    frames = features.shape[-1]
    state = {k: v for k, v in model.separator.state_dict().items() if k.startswith("targets.0.")}
    hop_s = model.representation.hop_length / model.sample_rate

    def separator(output_frames: int, context_frames: int) -> OpenUnmix:
        config = model.separator.config.model_copy(
            update={"output_frames": output_frames, "context_frames": context_frames, "residual": False}
        )
        built = OpenUnmix(config, num_sources=1, num_channels=model.channels, num_bins=features.shape[-2])
        built.load_state_dict(state)
        return built.eval()

    started = time.perf_counter()
    reference = separate_features(separator(frames, 0), features[0], overlap=0.0)
    whole_s = time.perf_counter() - started
    total = reference.square().sum()
    frame_energy = reference.square().sum(dim=(0, 1, 2)).clamp_min(1e-12)
    rows = []
    for context in [int(c) for c in args.contexts.split(",")]:
        for overlap in [float(o) for o in args.overlaps.split(",")]:
            started = time.perf_counter()
            windowed = separate_features(separator(args.output_frames, context), features[0], overlap=overlap, batch_size=4)
            seconds = time.perf_counter() - started
            error = (windowed - reference).square()
            per_frame = (error.sum(dim=(0, 1, 2)) / frame_energy).sqrt()
            worst = int(per_frame.argmax())
            inner = slice(args.output_frames, frames - args.output_frames)  # away from the track's ends
            inner_error = error[..., inner].sum() / reference[..., inner].square().sum()
            rows.append({
                "context_frames": context, "overlap": overlap,
                "relative_error": float((error.sum() / total).sqrt()),
                "interior_relative_error": float(inner_error.sqrt()),
                "sdr_db": float(10 * torch.log10(total / error.sum().clamp_min(1e-30))),
                "worst_frame_relative_error": float(per_frame[worst]),
                "worst_frame_s": round(worst * hop_s, 2),
                "seconds": round(seconds, 2),
            })
            print(json.dumps(rows[-1]), flush=True)
    return {"model": str(args.model) if args.model else "random umxhq-sized vocals network",
            "forget_bias": args.forget_bias, "frames": frames, "seconds_of_audio": args.seconds,
            "output_frames": args.output_frames, "whole_track_s": round(whole_s, 2), "rows": rows}


# -- speed -----------------------------------------------------------------------------------------


def sepkit_separate(song: Path, model: Path, out: Path, wiener: bool, threads: int | None = None) -> tuple[float, float]:
    """Wall time of the whole command, and its own time for the file (decode to written stems)."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    command = [sys.executable, "-m", "sepkit.cli.main", "separate", str(song), "--model", str(model), "-o", str(out),
               "--overwrite", "--json", "--precision", "fp32", "--device", "cpu"] + (["--wiener"] if wiener else [])
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, cwd=REPO, env=env)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"sepkit separate failed ({process.returncode}): {process.stderr.decode().strip()[-400:]}")
    return wall, json.loads(process.stdout)["files"][0]["time_s"]


def openunmix_separate(song: Path, files: dict[str, Path], out: Path, *, residual: bool, niter: int) -> float:
    """Open-Unmix's Separator with the given target files, timed from decoding to written stems."""
    import torch

    model = import_openunmix()
    targets = {}
    for target, path in files.items():
        network = model.OpenUnmix(**UMXHQ)
        network.load_state_dict(torch.load(path, weights_only=True))
        targets[target] = network.eval()
    separator = model.Separator(targets, niter=niter, residual=residual, n_fft=4096, n_hop=1024, nb_channels=2,
                                sample_rate=float(RATE), wiener_win_len=300, filterbank="torch").eval()
    names = list(files) + (["residual"] if residual else [])
    started = time.perf_counter()
    audio, rate = sf.read(str(song), dtype="float32", always_2d=True)
    with torch.inference_mode():
        estimates = separator(torch.from_numpy(audio.T.copy())[None])[0].numpy()
    out.mkdir(parents=True, exist_ok=True)
    for name, stem in zip(names, estimates):
        sf.write(str(out / f"{name}.wav"), stem.T, rate, subtype="PCM_16")
    return time.perf_counter() - started


def speed(args: argparse.Namespace, work: Path) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    song = make_song(work / "song.wav", args.minutes)
    files = make_checkpoints(work)
    four = convert(files, work / "umxhq-random.safetensors")
    karaoke = convert({"vocals": files["vocals"]}, work / "umxhq-vocals-random.safetensors", residual="accompaniment")
    settings = [
        ("vocals + residual", lambda: sepkit_separate(song, karaoke, work / "out-s", False, args.threads),
         lambda: openunmix_separate(song, {"vocals": files["vocals"]}, work / "out-o", residual=True, niter=0)),
        ("4 targets", lambda: sepkit_separate(song, four, work / "out-s", False, args.threads),
         lambda: openunmix_separate(song, files, work / "out-o", residual=False, niter=0)),
        ("4 targets, Wiener", lambda: sepkit_separate(song, four, work / "out-s", True, args.threads),
         lambda: openunmix_separate(song, files, work / "out-o", residual=False, niter=1)),
    ]
    rows = []
    chosen = [int(i) for i in args.settings.split(",")]
    for name, ours, theirs in [settings[i] for i in chosen]:
        times: dict[str, list[float]] = {"sepkit": [], "sepkit_file": [], "openunmix": []}
        for _ in range(args.runs):
            wall, file_s = ours()
            times["sepkit"].append(wall)
            times["sepkit_file"].append(file_s)
            times["openunmix"].append(theirs())
        row = {"setting": name, **{f"{k}_s": statistics.median(v) for k, v in times.items()},
               **{f"{k}_runs": [round(t, 2) for t in v] for k, v in times.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"audio_s": args.minutes * 60, "runs": args.runs, "threads": args.threads or "torch default", "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("seams", "speed"))
    parser.add_argument("--seconds", type=float, default=60.0, help="seams: song length.")
    parser.add_argument("--output-frames", type=int, default=1024, help="seams: frames per window.")
    parser.add_argument("--contexts", default="0,32,64,128,256", help="seams: context frames to try.")
    parser.add_argument("--overlaps", default="0,0.25", help="seams: overlaps to try.")
    parser.add_argument("--forget-bias", type=float, default=0.0,
                        help="seams: added to every LSTM forget gate (a long-memory stand-in; 0: the weights as they are).")
    parser.add_argument("--model", type=Path, help="seams: a converted model file to measure instead of random weights.")
    parser.add_argument("--minutes", type=float, default=3.0, help="speed: song length.")
    parser.add_argument("--runs", type=int, default=3, help="speed: runs per setting (median reported).")
    parser.add_argument("--settings", default="0,1,2",
                        help="speed: which settings (0 vocals + residual, 1 four targets, 2 four targets with Wiener).")
    parser.add_argument("--threads", type=int, help="speed: torch threads on both sides (default: torch's own).")
    parser.add_argument("--workdir", type=Path, help="Keep the generated files here (default: a temporary folder).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sepkit-bench-umx-") as scratch:
        work = args.workdir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        result = seams(args, work) if args.part == "seams" else speed(args, work)
    import torch

    result["machine"] = (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
                         f"({torch.get_num_threads()} threads), Python {platform.python_version()}")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
