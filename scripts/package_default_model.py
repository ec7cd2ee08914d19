"""Package a trained run as the default model of `sepkit separate`, with its provenance.

    python scripts/package_default_model.py runs/default-model/default

Copies RUN/model.safetensors to plugins/sepkit_plugins/default_model/model.safetensors, adding a
``provenance`` entry to its metadata (recipe, data and their licences, what music it knows, the
epoch it was selected at, its test scores from RUN/evaluation/summary.json) and replacing this
machine's absolute data paths in the stored recipe by ``<corpus>/...``. Writes through a temporary
file and a rename. The weights are not touched.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save

from sepkit.io import write_bytes

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "plugins" / "sepkit_plugins" / "default_model" / "model.safetensors"

PROVENANCE = {
    "recipe": "recipes/default_model.toml",
    "trained_on": (
        "the offline corpus's domain-A ('studio') multitracks (supervised/train, 32 items, 16 minutes): "
        "Bach chorale soprano lines sung by a synthetic Japanese singing voice (HTS/Sinsy, one syllable per "
        "note) over the chorales' alto, tenor and bass played by General MIDI piano, organ, strings, cello "
        "and contrabass; 8192 Hz mono"
    ),
    "selected_on": "the domain-A validation multitracks (supervised/valid, 8 items), lowest supervised loss",
    "licences": [
        "chorales: public domain compositions, music21 corpus encodings (BSD-3-Clause, with the encoders' permission)",
        "voice: HTS voice nitech_jp_song070_f001 (c) Nagoya Institute of Technology, CC BY 3.0",
        "instruments: FluidR3_GM soundfont (c) Frank Wen and contributors, MIT",
    ],
    "expect": (
        "a demonstration model: it knows one synthetic voice and a few classical instruments; on other "
        "music (real singers, drums, pop production) expect much worse separation than on the corpus"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="A run folder of recipes/default_model.toml (holds model.safetensors).")
    parser.add_argument("--target", type=Path, default=TARGET)
    args = parser.parse_args()
    source = args.run / "model.safetensors"
    with safe_open(str(source), "pt") as handle:
        header = dict(handle.metadata() or {})
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    recipe = json.loads(header["recipe"])
    corpus = str(Path(recipe["paths"]["corpus"]))
    text = json.dumps(recipe, sort_keys=True)
    # absolute roots of this machine -> "<corpus>/..." (what the recipe's ${corpus} pointed at)
    text = re.sub(r'"/[^"]*?/data/corpus/', '"<corpus>/', text)
    header["recipe"] = text
    user = json.loads(header.get("metadata") or "{}")
    summary_path = args.run / "evaluation" / "summary.json"
    scores = {}
    if summary_path.exists():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        scores = {name: {"tracks": block["tracks"], "mean": block["mean"]} for name, block in summary["subsets"].items()}
    user["provenance"] = {
        **PROVENANCE,
        "epoch": user.get("epoch"),
        "updates": user.get("updates"),
        "validation": user.get("validation"),
        "test_scores_paper_protocol": scores,
        "corpus_path_in_recipe": corpus,
    }
    header["metadata"] = json.dumps(user, sort_keys=True)
    write_bytes(args.target, save(tensors, metadata=header))
    print(f"{args.target}: {args.target.stat().st_size / 1e6:.2f} MB, epoch {user.get('epoch')}, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
