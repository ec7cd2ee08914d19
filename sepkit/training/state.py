"""Training state on disk: one safetensors file (tensors) with a JSON skeleton in its metadata.

Optimiser states, RNG states and counters are nested Python structures holding tensors. ``pack``
moves every tensor into a flat ``{key: tensor}`` dict and leaves a JSON skeleton; ``unpack``
reverses it. No pickle anywhere: a corrupt file is an error, never code execution.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from ..errors import SepkitError
from ..io import write_bytes

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


def _digest(tensors: dict[str, torch.Tensor], skeleton: str) -> str:
    """sha256 over the skeleton and every tensor's name, dtype, shape and bytes: safetensors has no
    checksum of its own, and a flipped bit in a weight would otherwise resume silently."""
    digest = hashlib.sha256(skeleton.encode("utf-8"))
    for key in sorted(tensors):
        tensor = tensors[key]
        digest.update(f"{key}|{tensor.dtype}|{list(tensor.shape)}|".encode("utf-8"))
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically (a temporary file in the same folder, fsync, rename), with a
    checksum: a failed write keeps the previous state whole, a damaged file is never resumed."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = json.dumps(pack(state, tensors))
    metadata = {"format": FORMAT, "state": skeleton, "sha256": _digest(tensors, skeleton)}
    write_bytes(path, save(tensors, metadata=metadata))


def _metadata(path: Path, handle: Any) -> dict[str, str]:
    metadata = handle.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise SepkitError(f"{path}: not a sepkit training state (format {metadata.get('format')!r})")
    return metadata


def load_state(path: Path) -> dict[str, Any]:
    """Read a state written by :func:`save_state`; a corrupt file is a one-line error (and is left
    as it is)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = _metadata(path, f)
            tensors = {key: f.get_tensor(key) for key in f.keys()}
        expected = metadata.get("sha256")
        if expected is not None and _digest(tensors, metadata["state"]) != expected:
            raise SepkitError(
                f"{path}: corrupt training state (checksum mismatch: the file was damaged after it was written); "
                "resume from a copy, or start again with --overwrite"
            )
        return unpack(json.loads(metadata["state"]), tensors)
    except SepkitError:
        raise
    except FileNotFoundError:
        raise SepkitError(f"{path}: no training state to resume from") from None
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise SepkitError(f"{path}: corrupt training state ({type(exc).__name__}: {reason})") from None


def read_counters(path: Path) -> dict[str, Any]:
    """The counters (epoch, updates...) of a state file, from its metadata alone (no tensor read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            skeleton = json.loads(_metadata(path, f)["state"])
        return unpack(skeleton["__dict__"]["counters"], {})
    except SepkitError:
        raise
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise SepkitError(f"{path}: corrupt training state ({type(exc).__name__}: {reason})") from None
