"""Arithmetic of the separator's forward pass at inference: fp32, or bf16 autocast where it is fast.

bf16 halves memory traffic and, on CPUs with AMX tiles (Intel Sapphire Rapids and later) or on
CUDA cards with bf16 tensor cores, runs the convolutions several times faster. Only the separator
runs in bf16: features, overlap-add, Wiener filtering and decoding stay in float32. ``auto`` picks
bf16 where the hardware has it and fp32 elsewhere; docs/separate.md gives the measured cost in SDR.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from ..errors import SepkitError


def fast_bf16(device: torch.device) -> bool:
    """True where bf16 convolutions run on dedicated hardware (AMX on CPU, bf16 tensor cores on CUDA)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        is_amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(is_amx and is_amx())
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for this device; ``bf16`` where the device cannot do it is an error.

    ``precision`` is one of :data:`~sepkit.separation.defaults.PRECISIONS`, as checked by
    :class:`~sepkit.separation.options.EngineOptions`.
    """
    device = torch.device(device)
    if precision == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise SepkitError(f"precision bf16 is supported on cpu and cuda, not on {device.type}")
    return precision


def prepare_separator(separator: torch.nn.Module, precision: str, device: torch.device) -> None:
    """bf16 convolutions on CPU want channels-last tensors (oneDNN's AMX kernels); fp32 ones do not care."""
    if precision == "bf16" and device.type == "cpu":
        separator.to(memory_format=torch.channels_last)


@contextlib.contextmanager
def forward_precision(precision: str, device: torch.device) -> Iterator[None]:
    """The autocast context of one forward pass (nothing for fp32)."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


__all__ = ["fast_bf16", "forward_precision", "prepare_separator", "resolve_precision"]
