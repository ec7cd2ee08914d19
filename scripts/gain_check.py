"""Issue 13's acceptance check on an experiment folder: for each variant against a reference, the
seed-paired SDR gain per source (mean, sample std, worst seed) on a test subset, under each model
selection rule; and the validation score each variant reached (to choose configurations on
validation data only).

    python scripts/gain_check.py RUN_DIR [--reference baseline-ema] [--subset field] [--markdown]

"Done" in issue 13: mean gain >= +1.0 dB on every source, paired std below the mean gain, and no
seed more than 0.5 dB below its reference on any source.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from sepkit.report import find_runs
from sepkit.training.selection import RULES, subset_scores


def validation_score(folder: Path, rule: str, subsets: tuple[str, ...] | None) -> float:
    """The selection score of the epoch ``rule`` keeps (validation-sdr: mean SDR over sources)."""
    records = [json.loads(line) for line in (folder / "validation.jsonl").read_text().splitlines() if line.strip()]
    records = [r for r in records if "loss" in r]
    if not records:
        return math.nan
    scores = [subset_scores(r, subsets) for r in records]
    if rule == "last":
        return scores[-1]["validation-sdr"]
    key = rule
    best = min(scores, key=lambda s: s[key]) if key == "validation-loss" else max(scores, key=lambda s: s[key])
    return best["validation-sdr"]


def rows(run_dir: Path, reference: str, subset: str, validation_subsets: tuple[str, ...] | None) -> list[list[str]]:
    out = []
    for rule in RULES:
        runs = [r for r in find_runs(run_dir, f"evaluation-{rule}") if r.scores]
        by = {(r.variant, r.seed): r for r in runs}
        variants = list(dict.fromkeys(r.variant for r in runs))
        for variant in variants:
            seeds = sorted(s for v, s in by if v == variant)
            val = [validation_score(by[(variant, s)].folder, rule, validation_subsets) for s in seeds]
            cells = [variant, rule, ",".join(map(str, seeds)), f"{np.nanmean(val):.2f}"]
            paired = [s for s in seeds if (reference, s) in by]
            ok = bool(paired) and variant != reference
            for source in by[(variant, seeds[0])].scores[subset]:
                sdr = [by[(variant, s)].scores[subset][source]["SDR"] for s in seeds]
                cells.append(f"{np.mean(sdr):.2f} ± {np.std(sdr, ddof=1) if len(sdr) > 1 else math.nan:.2f}")
                if variant == reference or not paired:
                    cells.append("-")
                    continue
                d = np.array([by[(variant, s)].scores[subset][source]["SDR"] - by[(reference, s)].scores[subset][source]["SDR"] for s in paired])
                std = d.std(ddof=1) if len(d) > 1 else math.nan
                cells.append(f"{d.mean():+.2f} ± {std:.2f} (worst {d.min():+.2f}, n={len(d)})")
                ok = ok and d.mean() >= 1.0 and (len(d) > 1 and std < d.mean()) and d.min() >= -0.5
            cells.append("yes" if ok else "no" if variant != reference and paired else "-")
            out.append(cells)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--reference", default="baseline")
    parser.add_argument("--subset", default="field", help="test subset")
    parser.add_argument("--validation-subset", default="field", help="validation subset, or several joined by commas ('all' for every track)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    validation_subsets = None if args.validation_subset == "all" else tuple(args.validation_subset.split(","))
    table = rows(args.run_dir, args.reference, args.subset, validation_subsets)
    sources = ["accompaniment", "vocals"]
    header = ["variant", "selection", "seeds", f"validation SDR ({args.validation_subset})"]
    for s in sources:
        header += [f"test SDR {s}", f"minus {args.reference} (paired)"]
    header.append("issue-13 criterion")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        for row in [header, *table]:
            print("  ".join(row))


if __name__ == "__main__":
    main()
