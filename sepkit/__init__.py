"""sepkit: audio source separation with pluggable components.

The Python API in three names (docs/api.md):

* ``sepkit.separate(audio, sample_rate, model="default", **options)``: a numpy array or torch tensor
  ``[channels, samples]`` (or ``[batch, channels, samples]``) in, ``{source: stems}`` of the same
  type, device and dtype out;
* ``sepkit.load_model(model="default", device="cpu")``: a model by name, path or URL, loaded once
  and reused with ``model.separate(...)`` or ``sepkit.separate(..., model=model)``;
* ``sepkit.list_models()``: the named models (``sepkit models`` on the command line).

Importing ``sepkit`` is cheap (no torch): heavy parts load when first used.
"""

from __future__ import annotations

from typing import Any

from .errors import SepkitError
from .hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["SepkitError", "__version__", "hookimpl", "list_models", "load_model", "separate"]

#: public name -> (module, attribute), imported on first use so that `import sepkit` stays fast
_LAZY = {
    "load_model": ("sepkit.models", "load_model"),
    "list_models": ("sepkit.models", "list_models"),
    "separate": ("sepkit.api", "separate"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value  # later look-ups are plain attribute reads
        return value
    raise AttributeError(f"module 'sepkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})
