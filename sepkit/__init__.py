"""sepkit: audio source separation with pluggable components.

Importing ``sepkit`` is cheap (no torch): heavy parts load when first used.
"""

from __future__ import annotations

from typing import Any

from .errors import SepkitError
from .hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["SepkitError", "__version__", "hookimpl", "load_model"]


def __getattr__(name: str) -> Any:  # lazy public API, so that `import sepkit` stays fast
    if name == "load_model":
        from .model import load_model

        return load_model
    raise AttributeError(f"module 'sepkit' has no attribute {name!r}")
