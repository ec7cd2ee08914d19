"""``sepkit.separate``: the one-liner for audio already in memory (docs/api.md).

It accepts what people have at hand, a numpy array or a torch tensor, and gives back the same kind
of thing, so that it drops into a notebook or a training loop without conversions. The stems add
up to the input by default (``high_band="share"``, see :mod:`sepkit.separation.recombine`), as
those of ``sepkit separate`` do.
"""

from __future__ import annotations

import os  # noqa: F401 (os.PathLike in annotations)
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import SepkitError
from .model import Model
from . import models  # models.load_model looked up at each call (a patched loader is used)

__all__ = ["separate"]

#: Models loaded by name or path, kept for the next call (the least recently used one goes first).
_CACHE_SIZE = 2
_loaded: OrderedDict[tuple[str, int, int, str], Model] = OrderedDict()


def separate(
    audio: "np.ndarray | torch.Tensor",
    sample_rate: int,
    model: "str | os.PathLike[str] | Model" = "default",
    *,
    device: str | None = None,
    high_band: str = "share",
    **options: Any,
) -> "dict[str, np.ndarray | torch.Tensor]":
    """Separate ``audio`` at ``sample_rate`` Hz into ``{source: stem}``.

    ``audio``: a numpy array or a torch tensor of floating-point samples in [-1, 1], shaped
    ``[channels, samples]``, ``[batch, channels, samples]`` or ``[samples]``. Each stem has the
    input's type, shape, dtype and (for a tensor) device. ``model``: a name (``sepkit.list_models()``),
    a model file, a ``file://`` or ``https://`` URL (``URL#sha256=HEX``), or a model from
    :func:`sepkit.load_model`; named and file models are loaded once and kept for later calls.
    ``device``: where the model runs (default: the tensor's device, else the CPU).

    ``options``: ``high_band`` (``share``: the stems add up to the input; a source name: the band
    the model cannot hear goes to it; ``drop``: the model's own estimates), ``two_stems`` (a source:
    returns it and ``no_<source>``, the input minus it), ``shifts`` (test-time augmentation passes),
    ``overlap``, ``batch_size``, ``wiener``, ``channel_mode``, ``precision``, ``silence_db``,
    ``chunk_seconds``, ``seed``: those of :class:`sepkit.separation.engine.EngineOptions`.
    """
    is_tensor, where, dtype, array = _as_array(audio)
    if array.ndim not in (1, 2, 3):
        raise SepkitError(
            f"sepkit.separate expects [channels, samples], [batch, channels, samples] or [samples], got shape {list(array.shape)}"
        )
    loaded = _model(model, device or (str(where) if is_tensor else "cpu"))
    engine = loaded.options(high_band=high_band, **options)  # checked once, used for every item
    items = array if array.ndim == 3 else array[None]
    results: dict[str, list[np.ndarray]] = {}
    for item in items:
        stems = loaded.separate(item, sample_rate, options=engine)
        for name, stem in stems.items():
            results.setdefault(name, []).append(stem)
    stacked = {name: np.stack(parts) if array.ndim == 3 else parts[0] for name, parts in results.items()}
    return {name: _like(stem, is_tensor, where, dtype) for name, stem in stacked.items()}


def _as_array(audio: Any) -> tuple[bool, Any, Any, np.ndarray]:
    """``(is a tensor, its device, its dtype, float32 numpy samples)``."""
    if isinstance(audio, torch.Tensor):
        if not torch.is_floating_point(audio):
            raise SepkitError(
                f"sepkit.separate expects floating-point samples in [-1, 1], got a {audio.dtype} tensor "
                "(convert integer PCM first, e.g. x / 32768 for int16)"
            )
        return True, audio.device, audio.dtype, audio.detach().to("cpu", torch.float32).numpy()
    array = np.asarray(audio)
    if not np.issubdtype(array.dtype, np.floating):
        raise SepkitError(
            f"sepkit.separate expects floating-point samples in [-1, 1], got {array.dtype} "
            "(convert integer PCM first, e.g. x / 32768 for int16)"
        )
    return False, None, array.dtype, array.astype(np.float32, copy=False)


def _like(stem: np.ndarray, is_tensor: bool, device: Any, dtype: Any) -> np.ndarray | torch.Tensor:
    if is_tensor:
        return torch.from_numpy(stem).to(device=device, dtype=dtype)
    return stem.astype(dtype, copy=False)


def _model(model: Any, device: str) -> Model:
    """A loaded model for ``model`` on ``device``, from the cache when the same file was loaded before."""
    if isinstance(model, Model):
        return model  # the caller's model, on the device it put it on
    path = models.resolve_model(model).path
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, str(device))
    if key in _loaded:
        _loaded.move_to_end(key)
        return _loaded[key]
    loaded = models.load_model(path, device=device)
    _loaded[key] = loaded
    while len(_loaded) > _CACHE_SIZE:
        _loaded.popitem(last=False)
    return loaded
