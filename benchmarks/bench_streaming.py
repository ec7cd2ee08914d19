"""Streaming excerpts (data.residency = "stream") on a generated corpus: excerpts/s and peak memory.

    python benchmarks/bench_streaming.py                                 # 20 h and 2 h streamed, 2 h resident
    OMP_NUM_THREADS=1 python benchmarks/bench_streaming.py --repeats 5 --no-resident
    OMP_NUM_THREADS=1 python benchmarks/bench_streaming.py --compare ff28ede --no-resident   # + this code / a commit's

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
batches (1,088 excerpts); a timing is ``--updates`` such updates (synchronised on CUDA), and every
rate is the median of ``--repeats`` timings: excerpts/s over the update mix, and per pool, and
excerpts of the mix per CPU second of the process (with one thread a figure that other jobs' load
inflates much less than wall time: an estimate of what one quiet core does).

Side by side, in one process, timed in alternation (so that a shared machine's load hits both
alike; the ratios are steadier than rates measured one after the other): ``--compare REV`` streams
the large corpus with this tree's code and with the streaming code of commit ``REV`` (its
``sepkit/data/{tracks,sampler,streaming}.py`` and its magnitude-STFT ``encode``, loaded from git),
and checks that both draw the same excerpts; without ``--no-resident`` the small corpus is also
streamed and held as resident features.

Output: a table on stderr, then one JSON line on stdout (``--json``: the JSON line only).
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
UPDATE_EXCERPTS = sum(MIX.values()) * BATCH  # 1,088

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


def _pools(recipe: Path, cache: Path, device_name: str, residency: str | None = None):
    """(samplers by role, seconds to prepare them, the representation, the window, the device)."""
    from sepkit.training.data import prepare_data

    loaded, device, representation, window = _setup(recipe, device_name)
    if residency is not None:
        loaded = loaded.model_copy(update={"data": loaded.data.model_copy(update={"residency": residency})})
    started = time.perf_counter()
    data = prepare_data(loaded, representation, window, device, cache_dir=cache)
    return data.samplers(), time.perf_counter() - started, representation, window, device


def _timing(samplers: dict, updates: int, device) -> dict[str, float]:
    """Seconds per pool over ``updates`` separator updates' worth of batches, and the process's CPU
    seconds over all of them ("cpu")."""
    import torch

    seconds = dict.fromkeys(MIX, 0.0)
    cpu = time.process_time()
    for _ in range(updates):
        for name, count in MIX.items():
            start = time.perf_counter()
            for _ in range(count):
                samplers[name].sample(BATCH)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds[name] += time.perf_counter() - start
    return {**seconds, "cpu": time.process_time() - cpu}


def _rates(seconds: dict[str, float], updates: int) -> dict[str, float]:
    """Excerpts/s over the update mix ("per_update") and per pool; "per_cpu_second": excerpts of the
    update mix per CPU second of the process (less sensitive to other jobs' load than wall time
    with one thread; with several, it is not the wall-clock rate)."""
    rates = {"per_update": updates * UPDATE_EXCERPTS / sum(seconds[name] for name in MIX)}
    rates.update({name: updates * count * BATCH / seconds[name] for name, count in MIX.items()})
    rates["per_cpu_second"] = updates * UPDATE_EXCERPTS / seconds["cpu"]
    return rates


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def measure(recipe: Path, cache: Path, device_name: str, repeats: int, updates: int) -> dict:
    import torch

    from sepkit.data.streaming import StreamingSampler

    samplers, setup, representation, _, device = _pools(recipe, cache, device_name)
    _timing(samplers, 1, device)  # warm
    runs = [_rates(_timing(samplers, updates, device), updates) for _ in range(repeats)]
    rates = _medians(runs)
    paired = samplers["paired"]
    return {
        "residency": sorted({"stream" if isinstance(s, StreamingSampler) else "features" for s in samplers.values()}),
        "device": device_name, "threads": torch.get_num_threads(),
        "hours": round(paired.total_frames * representation.hop_length / representation.sample_rate / 3600, 2),
        "tracks": paired.num_tracks, "setup_seconds": round(setup, 1), "repeats": repeats, "updates": updates,
        "per_update_excerpts_per_second": round(rates["per_update"]),
        "excerpts_per_second": {name: round(rates[name]) for name in MIX},
        "per_update_excerpts_per_cpu_second": round(rates["per_cpu_second"]),
        "per_update_runs": [round(run["per_update"]) for run in runs],
        "ms_per_update": round(1000 * UPDATE_EXCERPTS / rates["per_update"], 1),
        "peak_rss_mb": round(peak_rss_bytes() / 2**20),
    }


def alternate(variants: dict[str, dict], repeats: int, updates: int, device) -> dict:
    """Two sets of samplers timed in alternation (A B, B A, A B, ...): per repeat the ratio of the
    first one's rate to the second's; medians of rates and ratios."""
    first, second = variants
    for samplers in variants.values():
        _timing(samplers, 1, device)  # warm
    runs: dict[str, list] = {label: [] for label in variants}
    ratios: list[dict[str, float]] = []
    for repeat in range(repeats):
        for label in (first, second) if repeat % 2 == 0 else (second, first):
            runs[label].append(_rates(_timing(variants[label], updates, device), updates))
        ratios.append({key: runs[first][-1][key] / runs[second][-1][key] for key in runs[first][-1]})
    return {
        "rates": {label: {key: round(value) for key, value in _medians(r).items()} for label, r in runs.items()},
        "ratio": {key: round(value, 2) for key, value in _medians(ratios).items()},
        "per_update_ratios": [round(r["per_update"], 2) for r in ratios],
    }


def legacy_samplers(revision: str, samplers: dict, representation) -> dict:
    """Samplers built by the streaming code of commit ``revision`` over the same tracks, with the same
    generator states: its ``tracks``, ``sampler`` and ``streaming`` modules and its magnitude-STFT
    ``encode`` (bound to a copy of this representation), loaded from git into this process."""
    import copy
    import types

    root = Path(__file__).resolve().parents[1]

    def source(path: str) -> str:
        done = subprocess.run(["git", "-C", str(root), "show", f"{revision}:{path}"], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"--compare {revision}: {done.stderr.strip()}")
        text = done.stdout.replace("from .tracks import", "from ._legacy_tracks import").replace(
            "from .sampler import", "from ._legacy_sampler import")
        # Names the old code imported that have moved since (the same values under today's names).
        return text.replace("from ..separation.engine import frame_support", "frame_support = lambda r: r.frame_length")

    def load(name: str, package: str, path: str) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__package__, module.__file__ = package, f"{revision}:{path}"
        sys.modules[name] = module
        try:
            exec(compile(source(path), module.__file__, "exec"), module.__dict__)
        except Exception as exc:  # the old code against today's base classes
            raise SystemExit(f"--compare {revision}: {path} does not load in this tree ({type(exc).__name__}: {exc})")
        return module

    tracks = load("sepkit.data._legacy_tracks", "sepkit.data", "sepkit/data/tracks.py")
    load("sepkit.data._legacy_sampler", "sepkit.data", "sepkit/data/sampler.py")
    streaming = load("sepkit.data._legacy_streaming", "sepkit.data", "sepkit/data/streaming.py")
    stft = load("sepkit_plugins.stft._legacy_representation", "sepkit_plugins.stft", "plugins/sepkit_plugins/stft/representation.py")
    old_representation = copy.copy(representation)
    old_representation._windows = {}
    old_representation.encode = types.MethodType(stft.MagnitudeSTFT.encode, old_representation)
    built = {}
    for name, sampler in samplers.items():
        audio = [
            tracks.TrackAudio([[tracks.StemPart(p.audio, p.gain) for p in parts] for parts in t.stems],
                              channels=t.channels, length=t.length, clip=t.clip)
            for t in sampler.tracks
        ]
        old = streaming.StreamingSampler(audio, old_representation, sampler.window, device=sampler.device,
                                         loudness=sampler.loudness)
        old.load_state_dict(sampler.state_dict())
        built[name] = old
    return built


def compare(recipe: Path, cache: Path, device_name: str, repeats: int, updates: int, revision: str) -> dict:
    """This tree's streaming against commit ``revision``'s, in alternation; first, one batch of each
    pool from both with the same generator state, which must agree."""
    import torch

    samplers, _, representation, _, device = _pools(recipe, cache, device_name)
    old = legacy_samplers(revision, samplers, representation)
    difference = {}
    for name in MIX:
        state = samplers[name].state_dict()
        new_batch, old_batch = samplers[name].sample(BATCH), old[name].sample(BATCH)
        difference[name] = float((new_batch - old_batch).abs().max())
        if not torch.allclose(new_batch, old_batch, rtol=1e-4, atol=1e-4):
            raise SystemExit(f"--compare {revision}: the two codes drew different {name} excerpts "
                             f"(max |difference| {difference[name]:.3g})")
        samplers[name].load_state_dict(state)
    result = alternate({"new": samplers, "old": old}, repeats, updates, device)
    return {"revision": revision, "device": device_name, "threads": torch.get_num_threads(), "repeats": repeats,
            "updates": updates, "max_abs_difference": difference, **result}


def resident(recipe: Path, cache: Path, device_name: str, repeats: int, updates: int) -> dict:
    """Streaming against resident features of the same corpus, in alternation."""
    import torch

    streamed, _, _, _, device = _pools(recipe, cache, device_name, "stream")
    held, _, _, _, _ = _pools(recipe, cache, device_name, "features")
    result = alternate({"stream": streamed, "features": held}, repeats, updates, device)
    return {"device": device_name, "threads": torch.get_num_threads(), "repeats": repeats, "updates": updates, **result}


def child(mode: str, recipe: Path, common: dict, extra: list[str] = ()) -> dict:
    command = [sys.executable, __file__, f"--{mode}", str(recipe), "--cache", str(common["cache"]),
               "--device", common["device"], "--repeats", str(common["repeats"]), "--updates", str(common["updates"]),
               *extra]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(summary: dict) -> str:
    lines = [f"{'corpus':>8} {'residency':>10} {'per update':>11} {'paired':>8} {'mixtures':>9} {'solo':>8} "
             f"{'/CPU s':>7} {'peak RSS':>9} {'setup':>7}   excerpts/s, median of {summary['repeats']}"]
    for r in summary["results"]:
        e = r["excerpts_per_second"]
        lines.append(f"{r['hours']:>7.2f}h {r['residency'][0]:>10} {r['per_update_excerpts_per_second']:>11} {e['paired']:>8} "
                     f"{e['mixtures']:>9} {e['solo.vocals']:>8} {r['per_update_excerpts_per_cpu_second']:>7} "
                     f"{r['peak_rss_mb']:>6} MB {r['setup_seconds']:>6}s")
    for key, label in (("compare", f"this code / {summary['compare'] and summary['compare']['revision']}"),
                       ("resident", "stream / features")):
        r = summary.get(key)
        if r:
            ratio = r["ratio"]
            lines.append(f"side by side, {label} (median of {r['repeats']} alternated timings): per update "
                         f"{ratio['per_update']} (per CPU second {ratio['per_cpu_second']}); paired {ratio['paired']}, "
                         f"mixtures {ratio['mixtures']}, solo {ratio['solo.vocals']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "sepkit-bench-streaming")
    parser.add_argument("--hours", type=float, default=20.0)
    parser.add_argument("--small-hours", type=float, default=2.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", "--runs", type=int, default=5, help="Timings per figure (the median is reported).")
    parser.add_argument("--updates", type=int, default=2, help="Separator updates' worth of batches (1,088 excerpts each) per timing.")
    parser.add_argument("--compare", metavar="REV", help="Also time the streaming code of commit REV against this tree's, side by side.")
    parser.add_argument("--no-resident", action="store_true", help="Skip resident features on the small corpus.")
    parser.add_argument("--json", action="store_true", help="Print the JSON line only.")
    for mode in ("measure", "compare-with", "resident-vs"):
        parser.add_argument(f"--{mode}", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--revision", help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    measured = (args.cache, args.device, args.repeats, args.updates)
    if args.measure is not None:
        print(json.dumps(measure(args.measure, *measured)))
        return
    if args.compare_with is not None:
        print(json.dumps(compare(args.compare_with, *measured, args.revision)))
        return
    if args.resident_vs is not None:
        print(json.dumps(resident(args.resident_vs, *measured)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    large, small = make_corpus(args.workdir, args.hours, args.small_hours)
    common = {"cache": args.workdir / "cache", "device": args.device, "repeats": args.repeats, "updates": args.updates}
    large_recipe, small_recipe = recipe_path(args.workdir, large, "stream"), recipe_path(args.workdir, small, "stream")
    filled = child("measure", large_recipe, {**common, "repeats": 1, "updates": 1})  # decodes the cache once
    print(f"audio cache ready ({filled['setup_seconds']} s to load the {filled['hours']} h corpus)", file=sys.stderr)
    summary = {
        "benchmark": "bench_streaming", "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "repeats": args.repeats, "updates": args.updates,
        "results": [child("measure", recipe, common) for recipe in (large_recipe, small_recipe)]
        + ([] if args.no_resident else [child("measure", recipe_path(args.workdir, small, "features"), common)]),
        "compare": child("compare-with", large_recipe, common, ["--revision", args.compare]) if args.compare else None,
        "resident": None if args.no_resident else child("resident-vs", small_recipe, common),
    }
    if not args.json:
        print(table(summary), file=sys.stderr)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
