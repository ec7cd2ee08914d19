"""museval vs sepkit's fast torch BSS Eval, on the same signals, with the numbers compared.

    python benchmarks/bench_metrics.py                 # both cases, CPU (and CUDA when present)
    python benchmarks/bench_metrics.py --case mono --runs 7 --threads 1
    python benchmarks/bench_metrics.py --json

Cases (two sources, accompaniment and vocals):
  mono    30 s, mono, 8192 Hz: a test track of the offline corpus (../shared/data/corpus/test/te000,
          resampled with soxr) when present, else generated audio.
  stereo  3 min, stereo, 44.1 kHz: generated audio (harmonic "voice" with vibrato over filtered
          noise chords, panned differently per channel).
Estimates are realistic: each reference plus a 20 % / 10 % leak of the other source plus noise
at -40 dB.

Timed per case (median of --runs runs, after one warm-up):
  * paper protocol: museval.metrics.bss_eval_sources on the estimates and on the mixture used as
    the estimate (for NSDR) vs one sepkit.evaluation.bss_eval_sources(..., mixture=...) call;
  * the metric alone: one museval bss_eval_sources call vs bss_eval_sources without mixture;
  * BSS Eval v4 (1 s windows): museval.metrics.bss_eval as museval.evaluate calls it vs
    sepkit.evaluation.bss_eval_images_framewise (--v4; slow with museval on the stereo case).
and the largest difference of the numbers (dB).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def _threads_from_argv() -> None:
    """``--threads N`` sets the thread pools' size before numpy and torch start them (the library
    itself never calls torch.set_num_threads)."""
    if "--threads" in sys.argv:
        value = sys.argv[sys.argv.index("--threads") + 1]
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[variable] = value


_threads_from_argv()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sepkit.evaluation.bss_eval import bss_eval_images_framewise, bss_eval_sources  # noqa: E402
from sepkit.evaluation.museval_backend import museval_bss_eval_sources, museval_bss_eval_v4  # noqa: E402

CORPUS_TRACK = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus" / "test" / "te000"


def generated(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """``[2, C, N]``: accompaniment (low-passed noise chords) and a vibrato "voice"."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    accompaniment = np.fft.irfft(spectrum / (1 + (freqs / 300.0) ** 2), n=n)
    accompaniment += sum(0.3 * np.sin(2 * np.pi * f * t) for f in (110.0, 164.8, 220.0))
    pitch = 330.0 * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.25 * t) ** 2)
    sources = np.stack([accompaniment / np.abs(accompaniment).max(), 0.5 * voice / np.abs(voice).max()])
    pans = [(0.6, 0.4), (0.45, 0.55)][:2]
    return np.stack([[s * (p[c] if channels > 1 else 1.0) for c in range(channels)] for s, p in zip(sources, pans)])


def corpus_mono() -> np.ndarray | None:
    if not (CORPUS_TRACK / "vocals.flac").exists():
        return None
    import soundfile as sf
    import soxr

    stems = []
    for name in ("accompaniment", "vocals"):
        audio, rate = sf.read(str(CORPUS_TRACK / f"{name}.flac"), dtype="float32")
        stems.append(soxr.resample(audio, rate, 8192, quality="HQ")[None, :])
    return np.stack(stems).astype(np.float64)


def estimates_of(references: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    acc, voc = references
    noise = 10 ** (-40 / 20) * np.sqrt(np.mean(references**2))
    return np.stack([acc + 0.2 * voc, voc + 0.1 * acc]) + noise * rng.standard_normal(references.shape)


CPU_TIMES: dict[int, float] = {}


def timed(function, runs: int, device: torch.device | None = None) -> tuple[float, object]:
    """Median wall-clock seconds over ``runs`` runs after a warm-up; the median process CPU
    seconds (all threads) is kept in CPU_TIMES[id(function)] (steadier on a shared machine)."""
    result = function()  # warm-up (and the numbers)
    times, cpu = [], []
    for _ in range(runs):
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU_TIMES[id(function)] = statistics.median(cpu)
    return statistics.median(times), result


def timed_with_cpu(function, runs: int, device: torch.device | None = None) -> tuple[float, float, object]:
    wall, result = timed(function, runs, device)
    return wall, CPU_TIMES.pop(id(function)), result


def run_case(name: str, references: np.ndarray, rate: int, *, runs: int, museval_runs: int, v4: bool, devices: list[torch.device]) -> dict:
    estimates = estimates_of(references)
    mixture = references.sum(axis=0)
    J, C, N = references.shape
    row: dict = {"case": name, "seconds": N / rate, "rate": rate, "channels": C, "sources": J}

    museval_metric = lambda: museval_bss_eval_sources(references, estimates)  # noqa: E731
    museval_mixture = lambda: museval_bss_eval_sources(references, np.broadcast_to(mixture, references.shape).copy())  # noqa: E731
    t_museval_metric, c_museval_metric, m = timed_with_cpu(museval_metric, museval_runs)
    t_museval_mix, c_museval_mix, m_mix = timed_with_cpu(museval_mixture, museval_runs)
    row["museval_metric_s"] = t_museval_metric
    row["museval_paper_s"] = t_museval_metric + t_museval_mix
    row["museval_paper_cpu_s"] = c_museval_metric + c_museval_mix
    for device in devices:
        tag = device.type
        t_metric, _ = timed(lambda: bss_eval_sources(references, estimates, device=device), runs, device)
        t_paper, c_paper, fast = timed_with_cpu(lambda: bss_eval_sources(references, estimates, mixture=mixture, device=device), runs, device)
        got = np.stack([fast.sdr.cpu(), fast.sir.cpu(), fast.sar.cpu(), fast.mixture_sdr.cpu()])
        want = np.stack([*m, m_mix[0]])
        row[f"fast_{tag}_metric_s"] = t_metric
        row[f"fast_{tag}_paper_s"] = t_paper
        row[f"fast_{tag}_paper_cpu_s"] = c_paper
        row[f"speedup_{tag}_paper"] = row["museval_paper_s"] / t_paper
        row[f"speedup_{tag}_paper_cpu"] = row["museval_paper_cpu_s"] / c_paper
        row[f"speedup_{tag}_metric"] = t_museval_metric / t_metric
        row[f"max_diff_{tag}_db"] = float(np.abs(got - want).max())
    row["sdr"] = [round(float(x), 3) for x in m[0]]
    if v4:
        window = rate
        t_museval_v4, mv = timed(lambda: museval_bss_eval_v4(references, estimates, window=window, hop=window), max(1, museval_runs // 2))
        row["museval_v4_s"] = t_museval_v4
        for device in devices:
            tag = device.type
            t_v4, fv = timed(lambda: bss_eval_images_framewise(references, estimates, window=window, device=device), runs, device)
            row[f"fast_{tag}_v4_s"] = t_v4
            row[f"speedup_{tag}_v4"] = t_museval_v4 / t_v4
            row[f"v4_sdr_max_diff_{tag}_db"] = float(np.nanmax(np.abs(mv[0] - fv.sdr.cpu().numpy())))
            medians = [np.nanmedian(a, axis=1) - np.nanmedian(b.cpu().numpy(), axis=1) for a, b in zip(mv[1:], (fv.isr, fv.sir, fv.sar))]
            row[f"v4_isr_sir_sar_median_diff_{tag}_db"] = float(np.abs(medians).max())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=["mono", "stereo", "all"], default="all")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of the fast path (median)")
    parser.add_argument("--museval-runs", type=int, default=3, help="timed runs of museval (median)")
    parser.add_argument("--v4", action="store_true", help="also time BSS Eval v4 (museval is slow on the stereo case)")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--threads", type=int, default=None, help="threads of numpy/scipy/torch (both sides)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    rows = []
    if args.case in ("mono", "all"):
        references = corpus_mono()
        name = "30 s mono 8192 Hz (corpus te000)" if references is not None else "30 s mono 8192 Hz (generated)"
        if references is None:
            references = generated(30.0, 8192, 1)
        rows.append(run_case(name, references[..., : 30 * 8192], 8192, runs=args.runs, museval_runs=args.museval_runs, v4=args.v4, devices=devices))
    if args.case in ("stereo", "all"):
        references = generated(180.0, 44100, 2)
        rows.append(run_case("3 min stereo 44.1 kHz (generated)", references, 44100, runs=args.runs, museval_runs=args.museval_runs, v4=args.v4, devices=devices))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for row in rows:
        print(f"\n{row['case']}: SDR {row['sdr']}")
        print(
            f"  museval paper protocol (metric + mixture for NSDR): {row['museval_paper_s']:.3f} s "
            f"(CPU {row['museval_paper_cpu_s']:.3f} s); metric alone {row['museval_metric_s']:.3f} s"
        )
        for device in devices:
            tag = device.type
            print(
                f"  fast {tag}: paper protocol {row[f'fast_{tag}_paper_s']:.3f} s ({row[f'speedup_{tag}_paper']:.1f}x; "
                f"CPU {row[f'fast_{tag}_paper_cpu_s']:.3f} s, {row[f'speedup_{tag}_paper_cpu']:.1f}x), "
                f"metric alone {row[f'fast_{tag}_metric_s']:.3f} s ({row[f'speedup_{tag}_metric']:.1f}x), "
                f"max |difference| {row[f'max_diff_{tag}_db']:.2e} dB"
            )
            if f"fast_{tag}_v4_s" in row:
                print(
                    f"  v4: museval {row['museval_v4_s']:.3f} s, fast {tag} {row[f'fast_{tag}_v4_s']:.3f} s "
                    f"({row[f'speedup_{tag}_v4']:.1f}x); SDR max |difference| {row[f'v4_sdr_max_diff_{tag}_db']:.1e} dB, "
                    f"ISR/SIR/SAR medians {row[f'v4_isr_sir_sar_median_diff_{tag}_db']:.3f} dB"
                )


if __name__ == "__main__":
    main()
