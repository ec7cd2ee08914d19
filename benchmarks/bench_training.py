"""Separator updates per second of the trainer, for the paper's configuration or a smaller one.

    python benchmarks/bench_training.py                        # paper networks, batch 8 on CPU
    python benchmarks/bench_training.py --batch 64 --device cuda --updates 20

One update = ``critic_iterations`` steps of every critic (fresh unpaired mixtures through the
separator without gradient, fresh solo excerpts, Wasserstein-GP) + one separator step on a paired
batch and a fresh unpaired batch (supervised + adversarial + additive penalty), exactly what
``sepkit run`` does. Data are random waveforms (a few minutes per role) encoded once by the real
excerpt sampler, so sampling costs what it costs in training.

The FLOPs of one update are COUNTED by PyTorch's own rules (``torch.utils.flop_counter.flop_registry``) on every
aten op the update executes, double backward of the gradient penalty included; achieved FLOP/s =
that count x updates per second. The median of ``--repeats`` timings is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sepkit.data.sampler import ExcerptSampler
from sepkit.recipe import load_recipe
from sepkit.training.data import TrainingData
from sepkit.training.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_components import executed_flops  # noqa: E402  (PyTorch's flop rules, safe with autograd.grad)


def make_data(recipe, trainer_cls_args, device, minutes: float, seed: int = 0) -> TrainingData:
    """Random waveforms per role, encoded once by the real sampler."""
    from sepkit.build import build_representation, build_separator

    rng = np.random.default_rng(seed)
    representation = build_representation(recipe)
    window = build_separator(recipe, representation).window
    rate = recipe.audio.sample_rate
    length = int(minutes * 60 * rate)

    def sampler(stems: int, loudness):
        tracks = [(0.1 * rng.standard_normal((stems, 1, length))).astype(np.float32) for _ in range(4)]
        return ExcerptSampler(tracks, representation, window, device=device, seed=seed, loudness=loudness)

    n = len(recipe.sources)
    return TrainingData(
        paired=sampler(1 + n, None),
        mixtures=sampler(1, recipe.training.loudness_augmentation),
        solo={s: sampler(1, recipe.training.loudness_augmentation) for s in recipe.critics},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "singing_voice.toml"))
    parser.add_argument("--variant", default="both-critics")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="default: 64 on CUDA, 8 on CPU")
    parser.add_argument("--updates", type=int, default=3, help="updates per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=1.0, help="minutes of random audio per track (4 tracks per role)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--channels-last", action="store_true", help="networks in channels-last memory format")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    batch = args.batch or (64 if device.type == "cuda" else 8)
    overrides = [f"training.batch_size={batch}", f"training.precision=\"{args.precision}\"",
                 f"training.compile={'true' if args.compile else 'false'}", "training.early_stopping=false"]
    recipe = load_recipe(args.recipe, overrides, check_data=False).select(args.variant)[args.variant]
    data = make_data(recipe, None, device, args.minutes)
    trainer = Trainer(recipe, Path(tempfile.mkdtemp()), variant=args.variant, device=str(device), progress=False, data=data)
    if args.channels_last:
        for network in (trainer.separator, *trainer.critics.values()):
            network.to(memory_format=torch.channels_last)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    trainer.train_update()  # warm-up (and compilation)
    sync()
    flops = executed_flops(trainer.train_update)
    times = []
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        for _ in range(args.updates):
            trainer.train_update()
        sync()
        times.append((time.perf_counter() - start) / args.updates)
    seconds = statistics.median(times)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "recipe": Path(args.recipe).name, "variant": args.variant, "batch": batch,
        "critic_iterations": recipe.training.critic_iterations, "critics": len(recipe.critics),
        "precision": args.precision, "compile": args.compile, "channels_last": args.channels_last,
        "seconds_per_update": seconds, "updates_per_second": 1 / seconds,
        "seconds_per_1000_updates": 1000 * seconds,
        "tflop_per_update": flops / 1e12, "achieved_tflops": flops / seconds / 1e12,
        "runs": times,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['device']}, torch {result['torch']}: {args.variant} of {result['recipe']}, batch {batch}, "
          f"{result['critic_iterations']} critic iterations x {result['critics']} critics, {args.precision}")
    print(f"  {seconds:.3f} s per separator update (median of {args.repeats} x {args.updates}); "
          f"{1 / seconds:.2f} updates/s; an epoch of 1000 updates: {1000 * seconds:.0f} s")
    print(f"  {flops / 1e12:.3f} TFLOP per update (counted by torch's flop rules); "
          f"achieved {flops / seconds / 1e12:.3f} TFLOP/s")


if __name__ == "__main__":
    main()
