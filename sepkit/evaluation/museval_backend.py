"""museval's metrics, without ffmpeg.

``import museval`` runs ``museval/__init__.py``, which imports musdb and stempeg; stempeg raises
at import time when ffmpeg is not installed. The metrics themselves (``museval/metrics.py``) need
only numpy and scipy, so this module loads that one file from the installed museval without
running its package ``__init__`` (or reuses ``museval.metrics`` when museval is already imported).
The numbers are museval's own: the same file, the same functions.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from functools import lru_cache
from types import ModuleType

import numpy as np

from ..errors import SepkitError

#: The name the metrics module is loaded under (not ``museval.metrics``: its package is not run).
MODULE_NAME = "sepkit.evaluation._museval_metrics"


class MusevalUnavailableError(SepkitError):
    """museval (or its metrics module) cannot be found or loaded."""


@lru_cache(maxsize=1)
def museval_metrics() -> ModuleType:
    """The ``museval.metrics`` module of the installed museval (loaded without ffmpeg)."""
    loaded = sys.modules.get("museval.metrics")
    if loaded is not None:
        return loaded
    try:
        spec = importlib.util.find_spec("museval")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MusevalUnavailableError(
            "museval is not installed; install it (pip install 'museval>=0.4.1') or use the fast path (--fast)"
        )
    for folder in spec.submodule_search_locations:
        path = f"{folder}/metrics.py"
        metrics_spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
        if metrics_spec is None or metrics_spec.loader is None:
            continue
        module = importlib.util.module_from_spec(metrics_spec)
        try:
            metrics_spec.loader.exec_module(module)
        except FileNotFoundError:
            continue
        except Exception as exc:
            raise MusevalUnavailableError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
        if not hasattr(module, "bss_eval"):
            raise MusevalUnavailableError(f"{path} has no bss_eval(); museval >= 0.4.1 is needed")
        return module
    raise MusevalUnavailableError(
        f"museval is installed at {', '.join(spec.submodule_search_locations)} but has no metrics.py"
    )


def museval_version() -> str:
    try:
        return importlib.metadata.version("museval")
    except Exception:  # noqa: BLE001 - only for the record
        return "unknown"


def _stack(signals: np.ndarray) -> np.ndarray:
    """``[J, C, N]`` (sepkit's layout) -> ``[J, N, C]`` float64 (museval's)."""
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim == 2:
        signals = signals[:, None, :]
    return np.ascontiguousarray(np.moveaxis(signals, 1, 2))


def museval_bss_eval_sources(references: np.ndarray, estimates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``museval.metrics.bss_eval_sources(refs, ests, compute_permutation=False)``: whole-track
    SDR, SIR, SAR ``[J]`` (BSS Eval v3 ``bss_eval_sources``, 512-tap time-invariant filters).
    Input ``[J, N]`` or ``[J, C, N]``; raises museval's ValueError for silent sources."""
    metrics = museval_metrics()
    sdr, sir, sar, _ = metrics.bss_eval_sources(_stack(references), _stack(estimates), compute_permutation=False)
    return sdr[:, 0], sir[:, 0], sar[:, 0]


def museval_bss_eval_v4(
    references: np.ndarray, estimates: np.ndarray, *, window: int, hop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """museval's BSS Eval v4 exactly as ``museval.evaluate(..., mode="v4")`` calls it: framewise
    SDR, ISR, SIR, SAR ``[J, windows]`` with filters fitted on the whole track."""
    metrics = museval_metrics()
    sdr, isr, sir, sar, _ = metrics.bss_eval(
        _stack(references),
        _stack(estimates),
        compute_permutation=False,
        window=window,
        hop=hop,
        framewise_filters=False,
        bsseval_sources_version=False,
    )
    return sdr, isr, sir, sar


__all__ = [
    "MusevalUnavailableError",
    "museval_bss_eval_sources",
    "museval_bss_eval_v4",
    "museval_metrics",
    "museval_version",
]
