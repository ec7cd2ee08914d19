"""Where sepkit keeps per-user files (no heavy imports: the CLI lists cached models at start-up speed)."""

from __future__ import annotations

import os
from pathlib import Path

#: Overrides sepkit's cache folder (decoded audio in ``audio/``, downloaded models in ``models/``).
CACHE_ENV = "SEPKIT_CACHE_DIR"


def cache_root() -> Path:
    """``$SEPKIT_CACHE_DIR``, else the user cache folder for sepkit: ``platformdirs.user_cache_dir``
    when platformdirs is installed, else ``$XDG_CACHE_HOME/sepkit`` or ``~/.cache/sepkit``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    try:
        import platformdirs

        return Path(platformdirs.user_cache_dir("sepkit"))
    except ImportError:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sepkit"
