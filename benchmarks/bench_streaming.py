"""Streaming excerpts (data.residency = "stream") against resident features, on a generated corpus.

    python benchmarks/bench_streaming.py                         # 20 h and 2 h, CPU
    python benchmarks/bench_streaming.py --hours 20 --small-hours 2 --runs 5 --device cpu --json
    OMP_NUM_THREADS=1 python benchmarks/bench_streaming.py ...  # one thread (a shared machine)

The corpus is written once into ``--workdir`` (default: ``$TMPDIR/sepkit-bench-streaming``) and
kept: ``--hours`` of 120 s tracks (``mixture.wav`` and ``vocals.wav``, 16-bit, 8192 Hz mono), then
decoded once into its own audio cache (``<workdir>/cache``, float32 ``.npy``), as a first training
run would; the small corpus is its first ``--small-hours`` (links to the same files, so the same
cache entries). Every measurement runs in a fresh process, which reports its own peak resident
memory (``VmHWM``).

The paper's setting, as ``bench_sampler.py``: 8192 Hz mono, magnitude STFT n_fft 512 / hop 256
(257 bins), the U-Net window of 158 input frames, batch 64, and the pools of the paper's recipe:
paired (mixture, accompaniment = mixture - vocals, vocals: S = 3), unpaired mixtures and solo
vocals (S = 1, loudness augmentation). One separator update draws 1 paired, 6 mixture and 10 solo
batches (1,088 excerpts): "per update" is that mix at the measured rates. Each rate is the median
of ``--runs`` timings of ``--batches`` batches (synchronised on CUDA). A last process holds both
residencies of the small corpus and times them in alternation: on a machine shared with other
jobs, its ratios (stream / features) are steadier than rates measured one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATE, TRACK_SECONDS, BATCH = 8192, 120, 64
MIX = {"paired": 1, "mixtures": 6, "solo.vocals": 10}

RECIPE = """
name = "bench-streaming"
sources = ["accompaniment", "vocals"]
[audio]
sample_rate = 8192
[representation]
type = "magnitude-stft"
n_fft = 512
hop_length = 256
[separator]
type = "unet"
input_frames = 158
[training]
early_stopping = false
[critics.vocals]
type = "dcgan"
[critics.accompaniment]
type = "dcgan"
[data]
residency = "{residency}"
[[data.paired]]
type = "stems"
root = "{root}"
[[data.mixtures]]
type = "stems"
root = "{root}"
[[data.solo.vocals]]
type = "stems"
root = "{root}"
[[data.solo.accompaniment]]
type = "stems"
root = "{root}"
stem_files = {{ accompaniment = ["mixture", "-vocals"] }}
"""


# -- the corpus ----------------------------------------------------------------------------------
def _track(rng, seconds: int):
    """A generated song: a gated harmonic "voice" with vibrato over noise bursts and a bass line."""
    import numpy as np

    n = seconds * RATE
    t = np.arange(n) / RATE
    f0 = rng.uniform(150, 400)
    phase = 2 * np.pi * f0 * (t + 0.003 * np.sin(2 * np.pi * 5.5 * t))
    voice = sum(np.sin(k * phase) / k for k in range(1, 5)) * (np.sin(2 * np.pi * 0.4 * t + rng.uniform(0, 6)) > -0.2)
    beats = np.zeros(n)
    beats[:: RATE // 2] = 1.0
    bursts = np.convolve(beats, np.exp(-np.arange(800) / 150.0))[:n] * rng.standard_normal(n)
    bass = np.sin(2 * np.pi * rng.uniform(40, 90) * t)
    vocals = 0.25 * voice
    return (vocals + 0.2 * bursts + 0.2 * bass).astype(np.float32), vocals.astype(np.float32)


def make_corpus(workdir: Path, hours: float, small_hours: float) -> tuple[Path, Path]:
    """``<workdir>/corpus-<hours>h`` (written once) and the small corpus linking to its first tracks."""
    import numpy as np
    import soundfile as sf

    count, small = round(hours * 3600 / TRACK_SECONDS), round(small_hours * 3600 / TRACK_SECONDS)
    large_root, small_root = workdir / f"corpus-{hours:g}h", workdir / f"corpus-{small_hours:g}h"
    done = large_root / ".complete"
    if not done.exists():
        rng = np.random.default_rng(0)
        started = time.perf_counter()
        for index in range(count):
            folder = large_root / f"song{index:05d}"
            folder.mkdir(parents=True, exist_ok=True)
            mixture, vocals = _track(rng, TRACK_SECONDS)
            sf.write(folder / "mixture.wav", mixture, RATE, subtype="PCM_16")
            sf.write(folder / "vocals.wav", vocals, RATE, subtype="PCM_16")
        done.write_text(f"{count} tracks of {TRACK_SECONDS} s\n")
        print(f"wrote {count} tracks ({hours:g} h) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    small_root.mkdir(parents=True, exist_ok=True)
    for index in range(small):
        link = small_root / f"song{index:05d}"
        if not link.exists():
            link.symlink_to(large_root / link.name, target_is_directory=True)
    return large_root, small_root


def recipe_path(workdir: Path, root: Path, residency: str) -> Path:
    path = workdir / f"{root.name}-{residency}.toml"
    path.write_text(RECIPE.format(root=root, residency=residency))
    return path


# -- one measurement, in its own process ----------------------------------------------------------
def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _setup(recipe: Path, device_name: str):
    """The recipe, the device, its representation and the separator's window."""
    import torch

    from sepkit.build import build_representation, build_separator
    from sepkit.recipe import load_recipe

    loaded = load_recipe(recipe).base
    representation = build_representation(loaded)
    return loaded, torch.device(device_name), representation, build_separator(loaded, representation).window


def measure(recipe: Path, cache: Path, device_name: str, runs: int, batches: int) -> dict:
    import torch

    from sepkit.training.data import prepare_data

    loaded, device, representation, window = _setup(recipe, device_name)
    started = time.perf_counter()
    data = prepare_data(loaded, representation, window, device, cache_dir=cache)
    setup = time.perf_counter() - started
    samplers = data.samplers()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    rates = {}
    for name in MIX:
        sampler = samplers[name]
        for _ in range(2):
            sampler.sample(BATCH)
        sync()
        timings = []
        for _ in range(runs):
            start = time.perf_counter()
            for _ in range(batches):
                sampler.sample(BATCH)
            sync()
            timings.append(batches * BATCH / (time.perf_counter() - start))
        rates[name] = statistics.median(timings)
    update_seconds = sum(count * BATCH / rates[name] for name, count in MIX.items())
    hours = sum(s.total_frames for s in (samplers["paired"],)) * representation.hop_length / loaded.audio.sample_rate / 3600
    return {
        "residency": sorted(set(data.residency.values())), "device": device_name, "threads": torch.get_num_threads(),
        "hours": round(hours, 2), "tracks": samplers["paired"].num_tracks, "setup_seconds": round(setup, 1),
        "excerpts_per_second": {k: round(v) for k, v in rates.items()},
        "per_update_excerpts_per_second": round(sum(MIX.values()) * BATCH / update_seconds),
        "ms_per_update": round(1000 * update_seconds, 1),
        "peak_rss_mb": round(peak_rss_bytes() / 2**20),
    }


def side_by_side(recipe: Path, cache: Path, device_name: str, runs: int, batches: int) -> dict:
    """Both residencies in one process, timed in alternation (stream, features, stream, ...), so
    that a shared machine's load hits both alike: the median ratio of each pair of runs."""
    import torch

    from sepkit.training.data import prepare_data

    loaded, device, representation, window = _setup(recipe, device_name)
    pools = {}
    for residency in ("stream", "features"):
        variant = loaded.model_copy(update={"data": loaded.data.model_copy(update={"residency": residency})})
        pools[residency] = prepare_data(variant, representation, window, device, cache_dir=cache).samplers()

    def rate(sampler) -> float:
        start = time.perf_counter()
        for _ in range(batches):
            sampler.sample(BATCH)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return batches * BATCH / (time.perf_counter() - start)

    result: dict = {"device": device_name, "threads": torch.get_num_threads(), "pools": {}}
    update_ratios = []
    for _ in range(runs):
        seconds = {"stream": 0.0, "features": 0.0}
        for name, count in MIX.items():
            for residency in seconds:
                pools[residency][name].sample(BATCH)  # warm
            pair = {residency: rate(pools[residency][name]) for residency in seconds}
            result["pools"].setdefault(name, []).append(pair)
            for residency in seconds:
                seconds[residency] += count * BATCH / pair[residency]
        update_ratios.append(seconds["features"] / seconds["stream"])
    summary = {}
    for name, pairs in result["pools"].items():
        summary[name] = {
            "stream": round(statistics.median(p["stream"] for p in pairs)),
            "features": round(statistics.median(p["features"] for p in pairs)),
            "ratio": round(statistics.median(p["stream"] / p["features"] for p in pairs), 2),
        }
    result["pools"] = summary
    result["per_update_ratio"] = round(statistics.median(update_ratios), 2)
    return result


def child(args: dict) -> dict:
    command = [sys.executable, __file__, "--measure" if not args.get("both") else "--side-by-side", str(args["recipe"]),
               "--cache", str(args["cache"]),
               "--device", args["device"], "--runs", str(args["runs"]), "--batches", str(args["batches"])]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "sepkit-bench-streaming")
    parser.add_argument("--hours", type=float, default=20.0)
    parser.add_argument("--small-hours", type=float, default=2.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--no-resident", action="store_true", help="Skip the resident run on the small corpus.")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--side-by-side", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.cache, args.device, args.runs, args.batches)))
        return
    if args.side_by_side is not None:
        print(json.dumps(side_by_side(args.side_by_side, args.cache, args.device, args.runs, args.batches)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    large, small = make_corpus(args.workdir, args.hours, args.small_hours)
    cache = args.workdir / "cache"
    common = {"cache": cache, "device": args.device, "runs": args.runs, "batches": args.batches}
    plan = [(large, "stream"), (small, "stream")] + ([] if args.no_resident else [(small, "features")])
    filled = child({**common, "runs": 1, "batches": 1, "recipe": recipe_path(args.workdir, large, "stream")})
    print(f"audio cache ready ({filled['setup_seconds']} s to load the {filled['hours']} h corpus)", file=sys.stderr)
    results = [child({**common, "recipe": recipe_path(args.workdir, root, residency)}) for root, residency in plan]
    paired = None if args.no_resident else child({**common, "both": True, "recipe": recipe_path(args.workdir, small, "stream")})
    if args.json:
        print(json.dumps({"omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "results": results,
                          "side_by_side": paired}, indent=2))
        return
    print(f"{'corpus':>8} {'residency':>10} {'paired':>8} {'mixtures':>9} {'solo':>8} {'per update':>11} {'peak RSS':>9} {'setup':>7}")
    for r in results:
        e = r["excerpts_per_second"]
        print(f"{r['hours']:>7.1f}h {r['residency'][0]:>10} {e['paired']:>8} {e['mixtures']:>9} {e['solo.vocals']:>8} "
              f"{r['per_update_excerpts_per_second']:>11} {r['peak_rss_mb']:>6} MB {r['setup_seconds']:>6}s")
    if paired:
        print(f"side by side on {args.small_hours:g} h (stream / features, median of {args.runs} alternated runs): "
              + ", ".join(f"{k} {v['ratio']}" for k, v in paired["pools"].items())
              + f"; per update {paired['per_update_ratio']}")


if __name__ == "__main__":
    main()
