"""Choosing the torch device from a user's ``auto|cpu|cuda|mps`` (or ``cuda:1``), for training and
separation, and finding the device a module is on."""

from __future__ import annotations

import itertools

import torch

from .errors import SepkitError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA if available, else MPS if available, else CPU; a named device must be available."""
    if isinstance(name, torch.device):
        return name
    text = str(name).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise SepkitError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SepkitError(f"device {name!r} requested but CUDA is not available (use --device cpu or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SepkitError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise SepkitError(f"device {name!r} requested but MPS is not available (use --device cpu or auto)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise SepkitError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def device_of(module: torch.nn.Module) -> torch.device:
    """Where a module's first parameter (else buffer) lives; CPU for a module with neither."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return torch.device("cpu")
