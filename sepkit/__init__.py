"""sepkit: audio source separation with pluggable components.

The Python API in three names (docs/api.md):

* ``sepkit.separate(audio, sample_rate, model="default", **options)``: a numpy array or torch tensor
  ``[channels, samples]`` (or ``[batch, channels, samples]``) in, ``{source: stems}`` of the same
  type, device and dtype out;
* ``sepkit.load_model(model="default", device="cpu")``: a model by name, path or URL, loaded once
  and reused with ``model.separate(...)`` or ``sepkit.separate(..., model=model)``;
* ``sepkit.list_models()``: the named models (``sepkit models`` on the command line).

The plugin API (docs/plugins.md): ``hookimpl``, the base classes ``Representation``, ``Separator``
(with ``Window``), ``Critic``, ``Divergence`` (with ``CriticLoss``) and ``Dataset`` (with
``DatasetConfig``, ``Track``, ``StemFile``, ``DatasetError``, ``MIXTURE``), ``TrainingLogger`` (with
``RunInfo``), ``ComponentConfig``, ``ConfigValues``, ``TomlOptional``, and the errors ``SepkitError`` and ``ShapeError``.

Importing ``sepkit`` is cheap (no torch, no pydantic): every name but ``hookimpl`` and the errors
is imported when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import SepkitError, ShapeError
from .hookspecs import hookimpl

__version__ = "0.1.0"

#: public name -> module holding it, imported on first use so that `import sepkit` stays fast
_LAZY = {
    "load_model": "sepkit.models",
    "list_models": "sepkit.models",
    "separate": "sepkit.api",
    "ComponentConfig": "sepkit.component",
    "ConfigValues": "sepkit.component",
    "TomlOptional": "sepkit.component",
    "Representation": "sepkit.representation",
    "Separator": "sepkit.separator",
    "Window": "sepkit.separator",
    "Critic": "sepkit.critic",
    "Divergence": "sepkit.divergence",
    "CriticLoss": "sepkit.divergence",
    "Dataset": "sepkit.dataset",
    "DatasetConfig": "sepkit.dataset",
    "DatasetError": "sepkit.dataset",
    "MIXTURE": "sepkit.dataset",
    "StemFile": "sepkit.dataset",
    "Track": "sepkit.dataset",
    "TrainingLogger": "sepkit.training.loggers",
    "RunInfo": "sepkit.training.loggers",
}

__all__ = sorted(["SepkitError", "ShapeError", "__version__", "hookimpl", *_LAZY])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups are plain attribute reads
        return value
    raise AttributeError(f"module 'sepkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})
