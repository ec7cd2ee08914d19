"""Shared test helpers: run the CLI in-process, write recipes, locate the offline corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sepkit.testing.cli import invoke

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "data" / "corpus"


@pytest.fixture
def run_cli():
    """Run ``sepkit ARGS...`` in this process; returns exit code, stdout and stderr."""
    return invoke


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Caches go to a temporary folder, never to the user's cache or ../shared."""
    monkeypatch.setenv("SEPKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "sepkit-cache"))
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def corpus() -> Path:
    if not (CORPUS / "test").is_dir():
        pytest.skip(f"offline corpus not found at {CORPUS}")
    return CORPUS


def minimal_recipe(**overrides: str) -> str:
    """A small valid recipe as TOML text; ``overrides`` replace whole sections by name."""
    sections = {
        "head": 'name = "tiny"\nsources = ["accompaniment", "vocals"]\n',
        "audio": "[audio]\nsample_rate = 8000\nchannels = 1\n",
        "representation": '[representation]\ntype = "magnitude-stft"\nn_fft = 256\nhop_length = 128\n',
        "separator": '[separator]\ntype = "unet"\ndepth = 2\nbase_filters = 4\ninput_frames = 62\n',
        "training": "[training]\nbatch_size = 4\nearly_stopping = false\n",
        "data": '[[data.paired]]\ntype = "stems"\nroot = "data/train"\n',
    }
    sections.update(overrides)
    return "\n".join(sections.values())


@pytest.fixture
def write_recipe(tmp_path):
    def write(text: str, name: str = "recipe.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


os.environ.setdefault("SEPKIT_TEST", "1")


def save_demo_sized_model(path: Path) -> Path:
    """A model of the demo recipe's size (recipes/demo.toml), randomly initialised, with non-zero
    biases as a trained model has (freshly initialised ones are zero, and zero in gives zero out).
    Needs the built-in plugins (``use_plugins(entry_points=True)``)."""
    import torch

    from sepkit.build import build_representation, build_separator
    from sepkit.model_file import save_model
    from sepkit.recipe import load_recipe

    recipe = load_recipe(REPO / "recipes" / "demo.toml", check_data=False).variants["baseline"]
    torch.manual_seed(0)
    representation = build_representation(recipe)
    separator = build_separator(recipe, representation)
    with torch.no_grad():
        for name, parameter in separator.named_parameters():
            if name.endswith("bias"):
                parameter.uniform_(0.01, 0.2)
    return save_model(path, recipe=recipe, representation=representation, separator=separator)
