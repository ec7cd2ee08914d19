"""Separating audio with a trained model: windows, overlap-add, streaming, Wiener post-filter, files.

The public entry points are :func:`sepkit.load_model` (then ``model.separate(waveform, rate)``),
:func:`separate_features` (windows + overlap-add on features, also used by the trainer's
validation) and :func:`sepkit.separation.files.separate_file` (file in, stem files out).

Names are imported lazily so that ``sepkit.separation.defaults`` can be read without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from .defaults import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP

_LAZY = {
    "EngineOptions": "options",
    "StreamingSeparator": "streaming",
    "run_pipeline": "engine",
    "WindowPlan": "windows",
    "separate_features": "windows",
    "separate_file": "files",
}

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_CHUNK_SECONDS", "DEFAULT_OVERLAP", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
