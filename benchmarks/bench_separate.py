"""Speed and peak memory of `sepkit separate` with the paper's U-Net.

    python benchmarks/bench_separate.py                      # CPU: 3-minute file, 60-minute file for memory
    python benchmarks/bench_separate.py --device cuda --skip-memory
    python benchmarks/bench_separate.py --runs 5 --json
    python benchmarks/bench_separate.py --extra "--high-band drop --clip-mode clamp"   # the model's estimates, clamped

What is measured:

* **Real-time factor** of the whole command on a 3-minute, 44.1 kHz, stereo, 16-bit WAV file:
  ``sepkit separate song.wav --model paper.safetensors`` run as a fresh process (Python start-up,
  torch import, model load, decoding, resampling to 8192 Hz, separation, resampling back to
  44.1 kHz, sharing the residual over the stems (``--high-band share``, the default;
  ``--extra "--high-band drop"`` leaves it out), the silence gate, and writing both stems as 16-bit
  WAV with ``--clip-mode rescale``'s peak tracking). RTF = audio seconds / wall seconds; the median of
  ``--runs`` runs. The in-process time of the file alone (``time_s`` of ``--json``: decode to
  written stems, without start-up and model load) is reported too, and the CPU seconds of the
  command (user + system, all its threads: steadier than wall time on a shared machine). For the paper's overlap 0 and
  the default overlap, and for both ways a mono model can treat a stereo file (``per-channel``: the
  default, each channel separated, twice the work; ``downmix``: the mean of the channels, as the
  paper trains).
* **Peak memory** (maximum resident set size of the separating process, from ``wait4``'s rusage)
  for the 3-minute file and a ``--long-minutes`` (60) file, and their ratio.

The model is the paper's configuration (``recipes/singing_voice.toml``: magnitude STFT n_fft 512 /
hop 256 at 8192 Hz, U-Net depth 4 with 158-frame windows) with randomly initialised weights saved
with ``save_model``: the speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
RATE = 44100


def make_model(path: Path) -> Path:
    import torch

    from sepkit.build import build_representation, build_separator
    from sepkit.model import save_model
    from sepkit.recipe import load_recipe

    recipe = load_recipe(REPO / "recipes" / "singing_voice.toml", check_data=False).variants["baseline"]
    torch.manual_seed(0)
    representation = build_representation(recipe)
    separator = build_separator(recipe, representation)
    return save_model(path, recipe=recipe, representation=representation, separator=separator,
                      metadata={"note": "randomly initialised, for benchmarks"})


def make_song(path: Path, minutes: float, seed: int = 0) -> Path:
    """A stereo 16-bit WAV of ``minutes`` minutes: chords, a vibrato 'voice' and noise, written in blocks."""
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * RATE)
    block = 30 * RATE
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=2, subtype="PCM_16") as handle:
        for start in range(0, total, block):
            t = (np.arange(start, min(total, start + block)) / RATE)[:, None]
            chord = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 138.6, 164.8)) * np.array([0.12, 0.08])
            voice = 0.2 * np.sin(2 * np.pi * 440.0 * t + 3 * np.sin(2 * np.pi * 5 * t)) * np.array([0.6, 0.9])
            noise = 0.02 * rng.standard_normal((len(t), 2))
            handle.write((chord + voice + noise).astype(np.float32))
    return path


#: Extra `sepkit separate` arguments for every run (--extra), e.g. "--high-band drop --clip-mode clamp".
EXTRA: list[str] = []


def run_separate(
    song: Path, model: Path, out: Path, *, overlap: float, channel_mode: str, device: str, precision: str = "auto"
) -> dict:
    """One fresh `sepkit separate` process: wall time, its JSON report and its peak RSS (MiB)."""
    command = [
        sys.executable, "-m", "sepkit.cli.main", "separate", str(song), "--model", str(model), "-o", str(out),
        "--overwrite", "--json", "--overlap", str(overlap), "--channel-mode", channel_mode, "--device", device,
        "--precision", precision, *EXTRA,
    ]
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise SystemExit(f"sepkit separate failed ({process.returncode}): {stderr.decode().strip()}")
    report = json.loads(stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # every thread of the command
    return {"wall_s": wall, "cpu_s": cpu, "file_s": report["files"][0]["time_s"], "duration_s": report["files"][0]["duration_s"]}


def peak_rss(song: Path, model: Path, out: Path, *, overlap: float, channel_mode: str, device: str) -> dict:
    """Peak resident memory (MiB) of one `sepkit separate` process, from the kernel's rusage of that child."""
    command = [
        sys.executable, "-m", "sepkit.cli.main", "separate", str(song), "--model", str(model), "-o", str(out),
        "--overwrite", "--json", "--overlap", str(overlap), "--channel-mode", channel_mode, "--device", device, *EXTRA,
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"sepkit separate failed ({process.returncode}): {process.stderr.read().decode().strip()}")
    return {"peak_rss_mib": usage.ru_maxrss / 1024, "wall_s": wall}  # ru_maxrss is in KiB on Linux


def baseline_rss(model: Path, device: str) -> float:
    """Peak RSS (MiB) of a process that only imports sepkit and loads the model: the fixed cost."""
    code = f"import sepkit; sepkit.load_model({str(model)!r}, device={device!r})"
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    _, _, usage = os.wait4(process.pid, 0)
    return usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="Timed runs per setting (median reported).")
    parser.add_argument("--minutes", type=float, default=3.0, help="Length of the speed test file.")
    parser.add_argument("--long-minutes", type=float, default=60.0, help="Length of the memory test file.")
    parser.add_argument("--overlaps", default="0,0.25", help="Comma-separated overlaps to time.")
    parser.add_argument("--channel-modes", default="per-channel,downmix", help="Comma-separated channel modes to time.")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto.")
    parser.add_argument("--precisions", default="fp32,auto", help="Comma-separated --precision values to time (auto: the command's default).")
    parser.add_argument("--skip-memory", action="store_true", help="Do not run the long file.")
    parser.add_argument("--workdir", type=Path, help="Keep the generated files here (default: a temporary folder).")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    parser.add_argument("--extra", default="", help='Extra `sepkit separate` arguments, e.g. "--high-band drop".')
    args = parser.parse_args()
    EXTRA.extend(shlex.split(args.extra))

    with tempfile.TemporaryDirectory(prefix="sepkit-bench-") as scratch:
        work = args.workdir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        model = make_model(work / "paper.safetensors")
        song = make_song(work / "song.wav", args.minutes)
        out = work / "separated"
        results: dict = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}",
            "load_average": os.getloadavg(),
            "device": args.device,
            "extra": args.extra,
            "speed": [],
        }
        import torch

        results["torch"] = torch.__version__
        run_separate(song, model, out, overlap=0.0, channel_mode="downmix", device=args.device)  # warm the disk cache
        from sepkit.separation.precision import resolve_precision

        settings = [(p, c, o) for p in args.precisions.split(",") for c in args.channel_modes.split(",")
                    for o in (float(x) for x in args.overlaps.split(","))]
        for precision, channel_mode, overlap in settings:
                runs = [run_separate(song, model, out, overlap=overlap, channel_mode=channel_mode, device=args.device,
                                     precision=precision) for _ in range(args.runs)]
                wall = statistics.median(r["wall_s"] for r in runs)
                file_s = statistics.median(r["file_s"] for r in runs)
                duration = runs[0]["duration_s"]
                row = {
                    "precision": f"{precision} ({resolve_precision(precision, args.device if args.device != 'auto' else 'cpu')})",
                    "channel_mode": channel_mode, "overlap": overlap, "audio_s": duration,
                    "command_s": round(wall, 2), "rtf_command": round(duration / wall, 1),
                    "file_s": round(file_s, 2), "rtf_file": round(duration / file_s, 1),
                    "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 2),
                    "runs": [round(r["wall_s"], 2) for r in runs],
                }
                results["speed"].append(row)
                if not args.json:
                    print(f"{row['precision']:12s} {channel_mode:12s} overlap {overlap:<5} command {wall:6.2f} s ({duration / wall:5.1f}x)  "
                          f"file only {file_s:6.2f} s ({duration / file_s:5.1f}x)  runs {row['runs']}", flush=True)
        if not args.skip_memory:
            long_song = make_song(work / "long.wav", args.long_minutes, seed=1)
            memory = {"baseline_mib": round(baseline_rss(model, args.device), 1)}
            for name, path in (("short", song), ("long", long_song)):
                measured = peak_rss(path, model, out, overlap=0.25, channel_mode="per-channel", device=args.device)
                memory[f"{name}_minutes"] = args.minutes if name == "short" else args.long_minutes
                memory[f"{name}_peak_mib"] = round(measured["peak_rss_mib"], 1)
                memory[f"{name}_wall_s"] = round(measured["wall_s"], 1)
            memory["ratio"] = round(memory["long_peak_mib"] / memory["short_peak_mib"], 3)
            results["memory"] = memory
            if not args.json:
                print(f"peak RSS: {memory['short_minutes']} min {memory['short_peak_mib']} MiB, "
                      f"{memory['long_minutes']} min {memory['long_peak_mib']} MiB (ratio {memory['ratio']}); "
                      f"import + model load alone {memory['baseline_mib']} MiB", flush=True)
        results["load_average_after"] = os.getloadavg()
        if args.json:
            print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
