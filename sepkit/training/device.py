"""Choosing the training device."""

from __future__ import annotations

import torch

from ..errors import SepkitError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; naming an absent device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SepkitError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SepkitError("--device mps: no MPS device is available")
    return torch.device(name)
