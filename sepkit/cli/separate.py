"""`sepkit separate` (not implemented yet: see the open issues)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("separate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def separate() -> None:
        """Not implemented yet."""
        from ..errors import NotImplementedComponentError

        raise NotImplementedComponentError("`sepkit separate` is not implemented yet")
