"""Data for training and evaluation: splits, stem derivation, loading with a disk cache, excerpt sampling.

* :func:`~sepkit.data.loading.load_tracks` - datasets as ``[S, C, L]`` float32 arrays;
* :func:`~sepkit.data.roles.load_role` - one role of a recipe, with the recipe's audio settings;
* :func:`~sepkit.data.derive.role_stems` - which stems a role holds, in order;
* :class:`~sepkit.data.sampler.ExcerptSampler` - random feature excerpts with context, on the device;
* :mod:`~sepkit.data.splits` - the paper's reproducible thirds and halves.

Importing this package does not import torch (the sampler does, when first used).
"""

from __future__ import annotations

from typing import Any

from .derive import resolve_stems, role_stems
from .loading import LoadedTrack, LoadResult, load_tracks
from .roles import load_role

__all__ = ["ExcerptSampler", "LoadResult", "LoadedTrack", "load_role", "load_tracks", "resolve_stems", "role_stems"]


def __getattr__(name: str) -> Any:
    if name == "ExcerptSampler":
        from .sampler import ExcerptSampler

        return ExcerptSampler
    raise AttributeError(f"module 'sepkit.data' has no attribute {name!r}")
