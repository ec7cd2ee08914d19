"""Constants, helpers and fixtures shared by the example's tests.

A module of its own rather than a ``conftest.py``: these tests also run from the sepkit repository's
root, next to sepkit's own ``tests/conftest.py``, and two top-level ``conftest`` modules would
shadow each other. Test modules import the fixtures they use (``isolated_cache`` is autouse).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from sepkit.testing.cli import invoke

EXAMPLE = Path(__file__).resolve().parent.parent
RECIPE = EXAMPLE / "recipes" / "waveform_demo.toml"

#: --set overrides that make the demo recipe train and evaluate in seconds: two updates, one epoch,
#: two-second generated songs, a track or two per data role.
TINY = [
    "training.updates_per_epoch=2",
    "training.max_epochs=1",
    "training.critic_iterations=1",
    *(
        f"data.{role}.{key}"
        for role in ("paired.0", "mixtures.0", "solo.vocals.0", "solo.accompaniment.0", "validation.0", "test.0", "test.1")
        for key in ("tracks=1", "seconds=2")
    ),
]


def installed() -> bool:
    """True when this example is installed (its entry point is what sepkit discovers)."""
    try:
        importlib.metadata.distribution("sepkit-waveform")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_install = pytest.mark.skipif(
    not installed(), reason="install the example first: pip install -e examples/sepkit-waveform"
)


@pytest.fixture
def sepkit_cli():
    """Run ``sepkit ARGS...`` in this process (the console script's own entry point)."""
    return invoke


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Generated data and decoded audio go to a temporary folder, not the user's cache."""
    monkeypatch.setenv("SEPKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "sepkit-cache"))
    monkeypatch.setenv("COLUMNS", "200")
