"""Named models ``umxhq`` and ``umxhq-vocals``: ``sepkit separate song.wav --model umxhq``.

Registered through sepkit's ``register_models`` hook with the published per-target URLs and their
full sha256: sepkit downloads each file once into its model cache, verifies it, and calls
:func:`convert_published` to make one sepkit model file (cached too). ``umxhq-vocals`` needs the
vocals file only and adds ``accompaniment`` as the residual (the mixture minus the vocals).

``umxl`` is not registered: only the 8-digit prefixes of its files' sha256 are published and sepkit
verifies every download by its full hash. Convert its files yourself (``sepkit convert open-unmix``
recognises them by that prefix and records their non-commercial licence).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import published

KARAOKE_RESIDUAL = "accompaniment"


def convert_published(files: dict[str, Path], target: Path, *, residual: str | None = None) -> None:
    """The registry's ``convert``: the downloaded target files -> one sepkit model file at ``target``."""
    from .convert import convert

    urls = {f.target: f.url for f in published.UMXHQ.files}
    convert(files, target, residual=residual, overwrite=True, urls={k: urls[k] for k in files if k in urls})


def register_published(register: Callable[..., None]) -> None:
    model = published.UMXHQ
    files = [f for f in model.files if f.sha256 is not None]
    register(
        "umxhq",
        {f.target: f.url for f in files},
        sha256={f.target: f.sha256 for f in files},
        description=model.description,
        convert=convert_published,
        sample_rate=44100,
        sources=[f.target for f in files],
        size=model.size,
        license=model.license,
    )
    vocals = next(f for f in files if f.target == "vocals")
    register(
        "umxhq-vocals",
        {"vocals": vocals.url},
        sha256={"vocals": vocals.sha256},
        description="Open-Unmix umxhq vocals network, accompaniment = the mixture minus the vocals",
        convert=lambda downloaded, target: convert_published(downloaded, target, residual=KARAOKE_RESIDUAL),
        sample_rate=44100,
        sources=["vocals", KARAOKE_RESIDUAL],
        size=vocals.size,
        license=model.license,
    )
