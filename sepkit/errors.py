"""User-facing errors: one line, naming the culprit, shown by the CLI without a traceback."""

from __future__ import annotations


class SepkitError(Exception):
    """An error caused by the user's input (recipe, files, options), not by a bug in sepkit.

    The CLI prints ``str(error)`` on one line and exits with ``exit_code``.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class RecipeError(SepkitError):
    """A recipe that cannot be used: malformed TOML, unknown keys, bad values."""

    exit_code = 2


class PluginError(SepkitError):
    """A plugin that cannot be loaded or registers something it may not."""

    exit_code = 3


class ShapeError(SepkitError, ValueError):
    """A tensor whose shape does not fit a component (too few frames, wrong channel count...)."""


class NotImplementedComponentError(SepkitError, NotImplementedError):
    """A registered component whose behaviour is not implemented yet."""
