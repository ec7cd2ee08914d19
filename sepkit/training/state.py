"""Training state on disk: one safetensors file (tensors) with a JSON skeleton in its metadata.

Optimiser states, RNG states and counters are nested Python structures holding tensors. ``pack``
moves every tensor into a flat ``{key: tensor}`` dict and leaves a JSON skeleton; ``unpack``
reverses it. No pickle anywhere: a corrupt file is an error, never code execution.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import SepkitError

FORMAT = "sepkit-train-state/1"


def pack(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().to("cpu").contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {"__dict__": {k: pack(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}}
        return {"__items__": [[k, pack(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [pack(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)], "tuple": isinstance(obj, tuple)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a training state")


def unpack(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {k: unpack(v, tensors) for k, v in skeleton["__dict__"].items()}
        if "__items__" in skeleton:
            return {k: unpack(v, tensors) for k, v in skeleton["__items__"]}
        if "__list__" in skeleton:
            items = [unpack(v, tensors) for v in skeleton["__list__"]]
            return tuple(items) if skeleton.get("tuple") else items
        raise ValueError("unknown node in training state")
    return skeleton


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically: a temporary file in the same folder, then a rename."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    skeleton = pack(state, tensors)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": FORMAT, "state": json.dumps(skeleton)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_state(path: Path) -> dict[str, Any]:
    """Read a state written by :func:`save_state`; a corrupt file is a one-line error."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise SepkitError(f"{path}: not a sepkit training state (format {metadata.get('format')!r})")
            tensors = {key: f.get_tensor(key) for key in f.keys()}
        return unpack(json.loads(metadata["state"]), tensors)
    except SepkitError:
        raise
    except FileNotFoundError:
        raise SepkitError(f"{path}: no training state to resume from") from None
    except Exception as exc:
        raise SepkitError(f"{path}: corrupt training state ({type(exc).__name__}: {exc})") from None
