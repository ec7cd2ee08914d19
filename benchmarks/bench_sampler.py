"""Excerpts per second of the ExcerptSampler in the paper's setting.

    python benchmarks/bench_sampler.py                  # CPU, and CUDA when present
    python benchmarks/bench_sampler.py --device cpu --minutes 10 --runs 7

Setting: 8192 Hz mono, magnitude STFT (n_fft 512, hop 256: 257 bins), the paper's U-Net window
(158 input frames = 46 + 66 + 46), batch 64, ``--minutes`` of audio per pool (synthetic noise: the
sampler's speed does not depend on the content). Three pools as in training: paired
(mixture + 2 sources, S = 3, no augmentation), unpaired mixtures (S = 1, loudness augmentation)
and a solo source pool (S = 1, loudness augmentation). Each run times ``--batches`` batches (with
device synchronisation); the median over ``--runs`` runs is reported.

One separator update of the paper's recipe draws 1 paired batch, 6 mixture batches (5 critic
iterations + the separator step) and 10 solo batches (5 critic iterations x 2 sources): 17 batches,
1088 excerpts. "ms / update" is that mix at the measured speeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from sepkit.data.sampler import ExcerptSampler
from sepkit.plugins import registry
from sepkit.separator import Window

RATE, N_FFT, HOP, BATCH = 8192, 512, 256, 64
WINDOW = Window(input_frames=158, output_frames=66, context_before=46, context_after=46, input_bins=350, output_bins=258)
TRACK_SECONDS = 30.0


def representation():
    entry = registry("representation").get("magnitude-stft")
    return entry.cls(entry.cls.parse_config({"n_fft": N_FFT, "hop_length": HOP}), sample_rate=RATE)


def tracks(minutes: float, stems: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    count = max(1, round(minutes * 60 / TRACK_SECONDS))
    return [(0.1 * rng.standard_normal((stems, 1, int(TRACK_SECONDS * RATE)))).astype(np.float32) for _ in range(count)]


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def excerpts_per_second(sampler: ExcerptSampler, device: torch.device, runs: int, batches: int) -> float:
    for _ in range(3):
        sampler.sample(BATCH)
    synchronise(device)
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(batches):
            sampler.sample(BATCH)
        synchronise(device)
        rates.append(batches * BATCH / (time.perf_counter() - start))
    return statistics.median(rates)


def bench(device: torch.device, minutes: float, runs: int, batches: int) -> dict:
    rep = representation()
    start = time.perf_counter()
    pools = {
        "paired (S=3)": ExcerptSampler(tracks(minutes, 3, 0), rep, WINDOW, device=device, seed=0),
        "mixtures (S=1, loudness)": ExcerptSampler(tracks(minutes, 1, 1), rep, WINDOW, device=device, seed=1, loudness=(0.2, 1.2)),
        "solo (S=1, loudness)": ExcerptSampler(tracks(minutes, 1, 2), rep, WINDOW, device=device, seed=2, loudness=(0.2, 1.2)),
    }
    synchronise(device)
    setup = time.perf_counter() - start
    rates = {name: excerpts_per_second(s, device, runs, batches) for name, s in pools.items()}
    paired, mixtures, solo = rates.values()
    update_ms = 1000 * BATCH * (1 / paired + 6 / mixtures + 10 / solo)
    return {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "minutes_per_pool": minutes,
        "setup_seconds": round(setup, 2),
        "excerpts_per_second": {k: round(v) for k, v in rates.items()},
        "ms_per_update": round(update_ms, 1),
        "excerpts_per_second_per_update_mix": round(17 * BATCH / update_ms * 1000),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all")
    parser.add_argument("--minutes", type=float, default=10.0, help="Minutes of audio per pool.")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--batches", type=int, default=20, help="Batches per timed run.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    devices = []
    if args.device in ("all", "cpu"):
        devices.append(torch.device("cpu"))
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    results = [bench(d, args.minutes, args.runs, args.batches) for d in devices]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"{r['device']}: {r['minutes_per_pool']} min per pool, setup {r['setup_seconds']} s, {r['torch_threads']} threads")
        for name, rate in r["excerpts_per_second"].items():
            print(f"  {name:28s} {rate:>10,} excerpts/s")
        print(f"  one separator update (17 batches of 64): {r['ms_per_update']} ms "
              f"= {r['excerpts_per_second_per_update_mix']:,} excerpts/s")


if __name__ == "__main__":
    main()
