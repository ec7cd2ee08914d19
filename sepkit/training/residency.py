"""Which training pools keep their features on the device and which stream from the audio cache.

``data.residency = "features"`` keeps every pool's encoded features on the training device (the
fast path), ``"stream"`` streams every pool (:class:`~sepkit.data.streaming.StreamingSampler`), and
``"auto"`` keeps the smallest pools resident while their features fit in ``data.memory_budget``
(default: 40% of the device's memory) and streams the rest. The features' size is known before
anything is encoded: frames per track from the representation, bins, stems and channels.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import ShapeError
from ..recipe.schema import DataConfig, parse_memory_budget
from ..representation import Representation
from ..separator import Window


def device_memory(device: torch.device) -> int:
    """Bytes of memory on ``device``: the GPU's, else the host's (within a cgroup's limit)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "mps":
        mps = getattr(torch, "mps", None)
        recommended = getattr(mps, "recommended_max_memory", None)
        if callable(recommended):
            return int(recommended())
    return host_memory()


def host_memory() -> int:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def memory_budget(config: DataConfig, device: torch.device) -> int:
    """``data.memory_budget`` in bytes on ``device``."""
    kind, value = parse_memory_budget(config.memory_budget)
    return int(value if kind == "bytes" else value * device_memory(device))


def choose_residency(residency: str, sizes: dict[str, int], budget: int) -> dict[str, str]:
    """``"features"`` or ``"stream"`` per pool (``sizes``: each pool's feature bytes)."""
    if residency != "auto":
        return {name: residency for name in sizes}
    chosen: dict[str, str] = {}
    used = 0
    for name in sorted(sizes, key=lambda n: sizes[n]):  # smallest first: the most pools stay fast
        fits = used + sizes[name] <= budget
        chosen[name] = "features" if fits else "stream"
        used += sizes[name] if fits else 0
    return {name: chosen[name] for name in sizes}


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError  # pragma: no cover


def feature_bytes(shapes: list[tuple[int, ...]], representation: Representation, window: Window) -> int:
    """Bytes of the float32 features (with context padding) of tracks of these ``[S, C, L]`` shapes:
    what keeping them resident costs. Tracks shorter than one output window are not counted."""
    total = 0
    for stems, channels, length in shapes:
        try:
            frames = representation.num_frames(int(length))
        except ShapeError:
            continue
        if frames >= window.output_frames:
            padded = frames + window.context_before + window.context_after
            total += stems * channels * representation.num_bins * padded * 4
    return total
