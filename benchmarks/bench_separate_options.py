"""What `sepkit separate`'s options cost and gain in SDR: --shifts, --high-band, the silence gate.

    python benchmarks/bench_separate_options.py                    # the default model, the corpus test set
    python benchmarks/bench_separate_options.py --shifts 1,2,4 --json

Separates the 10 tracks of the offline corpus's test set (``../shared/data/corpus/test``: domain B,
16 kHz mono, 5 minutes in all; never used to train or select the default model) with the default
model (``sepkit.load_model("default")``, fp32 so that the numbers are reproducible) and scores them
with whole-track BSS Eval v3 (``sepkit.evaluation.bss_eval.bss_eval_sources``, the paper
protocol's metric): the mean over tracks of SDR per source.

* **At the model's rate** (tracks resampled to 8192 Hz, as the paper protocol does): ``--shifts``
  1, 2, 4, 8 (the gain and the separation time, which grows with the number of passes), the
  command's default overlap 0.25 and the paper's 0; ``high_band`` drop (the model's own estimates,
  what ``sepkit evaluate`` scores) against share (its in-band residual shared out by power, so that
  the stems add up); the silence gate on and off.
* **At the tracks' own rate** (16 kHz: the model hears 0-4096 Hz of 0-8000 Hz): ``high_band`` drop,
  share, and all of it to each source in turn.

Times are wall seconds of ``Model.separate`` for the 10 tracks (in-process, the model loaded once)
and the process's CPU seconds (all its threads), median of ``--runs`` runs; the machine and its
load average are printed with them. ``--only-shifts`` measures the shifts settings alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
CORPUS_TEST = REPO.parent / "shared" / "data" / "corpus" / "test"
SOURCES = ("accompaniment", "vocals")


def load_tracks(folder: Path) -> list[dict[str, np.ndarray | int | str]]:
    tracks = []
    for track in sorted(p for p in folder.iterdir() if p.is_dir()):
        stems = {}
        for stem in ("mixture", *SOURCES):
            audio, rate = sf.read(str(track / f"{stem}.flac"), dtype="float32", always_2d=True)
            stems[stem] = audio.T
        tracks.append({"name": track.name, "rate": rate, **stems})
    return tracks


def at_rate(tracks: list[dict], rate: int) -> list[dict]:
    from sepkit.audio import resample

    out = []
    for track in tracks:
        item = {"name": track["name"], "rate": rate}
        for stem in ("mixture", *SOURCES):
            item[stem] = resample(track[stem], int(track["rate"]), rate) if rate != track["rate"] else track[stem]
        out.append(item)
    return out


def score(model, tracks: list[dict], options: dict, runs: int) -> dict:
    """Mean SDR per source over the tracks, and the median separation time of ``runs`` runs."""
    from sepkit.evaluation.bss_eval import bss_eval_sources

    times, cpu = [], []
    for run in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        estimates = [model.separate(t["mixture"], int(t["rate"]), precision="fp32", **options) for t in tracks]
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    sdr = {s: [] for s in SOURCES}
    for track, estimate in zip(tracks, estimates):
        references = np.stack([track[s][0] for s in SOURCES])
        result = bss_eval_sources(references, np.stack([estimate[s][0] for s in SOURCES]))
        for j, source in enumerate(SOURCES):
            sdr[source].append(float(result.sdr[j]))
    audio_seconds = sum(t["mixture"].shape[-1] / t["rate"] for t in tracks)
    seconds = statistics.median(times)
    return {
        "options": options,
        "sdr": {s: round(float(np.mean(v)), 3) for s, v in sdr.items()},
        "time_s": round(seconds, 2),
        "cpu_s": round(statistics.median(cpu), 2),
        "runs_s": [round(t, 2) for t in times],
        "realtime_factor": round(audio_seconds / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus-test", type=Path, default=CORPUS_TEST, help="Folder of <track>/{mixture,accompaniment,vocals}.flac.")
    parser.add_argument("--model", default="default", help="Model name, path or URL.")
    parser.add_argument("--shifts", default="1,2,4,8", help="Comma-separated --shifts values to measure.")
    parser.add_argument("--runs", type=int, default=1, help="Timed runs per setting (median reported).")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    parser.add_argument("--only-shifts", action="store_true", help="Measure only the --shifts settings at the model's rate.")
    args = parser.parse_args()

    import torch

    import sepkit

    model = sepkit.load_model(args.model)
    tracks = load_tracks(args.corpus_test)
    model_rate = at_rate(tracks, model.sample_rate)
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.system()}",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_before": os.getloadavg(),
        "tracks": len(tracks),
        "model_rate": [],
        "track_rate": [],
    }
    settings = [{"high_band": "drop", "overlap": 0.0}]
    settings += [{"high_band": "drop", "shifts": int(n)} for n in args.shifts.split(",")]
    if args.only_shifts:
        settings = settings[1:]
    else:
        settings += [{"high_band": "share"}, {"high_band": "drop", "silence_db": None}]
    for options in settings:
        row = score(model, model_rate, options, args.runs)
        results["model_rate"].append(row)
        if not args.json:
            print(f"{model.sample_rate} Hz {json.dumps(options):45s} SDR {row['sdr']}  {row['time_s']} s ({row['realtime_factor']}x)", flush=True)
    for options in () if args.only_shifts else ({"high_band": "drop"}, {"high_band": "share"}, *({"high_band": s} for s in SOURCES)):
        row = score(model, tracks, options, args.runs)
        results["track_rate"].append(row)
        if not args.json:
            print(f"{tracks[0]['rate']} Hz {json.dumps(options):45s} SDR {row['sdr']}  {row['time_s']} s ({row['realtime_factor']}x)", flush=True)
    results["load_average_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
