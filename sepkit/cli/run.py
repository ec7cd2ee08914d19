"""`sepkit run` (not implemented yet: see the open issues)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def run() -> None:
        """Not implemented yet."""
        from ..errors import NotImplementedComponentError

        raise NotImplementedComponentError("`sepkit run` is not implemented yet")
