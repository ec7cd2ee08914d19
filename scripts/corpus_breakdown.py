"""The offline-corpus experiment's test scores split by accompaniment kind (chorale instruments vs
real game music), from the per-track results that `sepkit run` wrote.

    python scripts/corpus_breakdown.py RUN_DIR [--corpus ../shared/data/corpus] [--reference VARIANT]

For each variant: the mean over seeds of each run's mean over the tracks of one kind, ± the sample
standard deviation over seeds, and the seed-paired difference to `baseline` (or `--reference`). The kinds come from
the corpus's manifest.json (`pair_chorale`, `pair_game`).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def kinds(corpus: Path) -> dict[str, str]:
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    return {item["id"]: item["kind"] for item in manifest["items"] if item["split"] == "test"}


def per_run(run_dir: Path, kind_of: dict[str, str]) -> dict[tuple[str, int], dict[str, dict[str, float]]]:
    """(variant, seed) -> kind -> "metric source" -> mean over that kind's tracks."""
    out = {}
    for evaluation in sorted(run_dir.glob("*/seed-*/evaluation")):
        variant, seed = evaluation.parent.parent.name, int(evaluation.parent.name.removeprefix("seed-"))
        groups: dict[str, list[dict]] = defaultdict(list)
        for path in evaluation.glob("*.json"):
            result = json.loads(path.read_text(encoding="utf-8"))
            if "track" in result and result["track"] in kind_of:
                groups[kind_of[result["track"]]].append(result["metrics"])
        out[(variant, seed)] = {
            kind: {f"{metric} {source}": float(np.mean([t[source][metric] for t in tracks]))
                   for source in ("accompaniment", "vocals") for metric in ("SDR", "SIR", "SAR")}
            for kind, tracks in groups.items()
        }
    return out


def cell(values: list[float], signed: bool = False) -> str:
    if not values:
        return "-"
    mean = float(np.mean(values))
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return text if len(values) < 2 else f"{text} ± {float(np.std(values, ddof=1)):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "data" / "corpus")
    parser.add_argument("--order", default="baseline,vocals-critic,both-critics,both-critics-js,both-critics-kl")
    parser.add_argument("--reference", default="baseline", help="the variant differences are paired against")
    args = parser.parse_args()
    runs = per_run(args.run_dir, kinds(args.corpus))
    ref = args.reference
    variants = [v for v in args.order.split(",") if any(k[0] == v for k in runs)]
    variants += sorted({v for v, _ in runs} - set(variants))
    for kind in ("pair_chorale", "pair_game"):
        rows = next(iter(runs.values()))[kind].keys()
        print(f"\n**{kind}** (mean ± std over seeds; then minus {ref}, paired by seed)\n")
        print("| metric | " + " | ".join(variants) + " |")
        print("|---|" + "---|" * len(variants))
        for row in rows:
            cells = []
            for variant in variants:
                seeds = sorted(s for v, s in runs if v == variant)
                values = [runs[(variant, s)][kind][row] for s in seeds]
                diffs = [runs[(variant, s)][kind][row] - runs[(ref, s)][kind][row]
                         for s in seeds if (ref, s) in runs and variant != ref]
                cells.append(cell(values) + (f" ({cell(diffs, signed=True)})" if diffs else ""))
            print(f"| {row} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
