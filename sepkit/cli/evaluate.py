"""`sepkit evaluate` (not implemented yet: see the open issues)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def evaluate() -> None:
        """Not implemented yet."""
        from ..errors import NotImplementedComponentError

        raise NotImplementedComponentError("`sepkit evaluate` is not implemented yet")
