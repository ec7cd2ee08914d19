"""`sepkit data` (not implemented yet: see the open issues)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("data", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def data() -> None:
        """Not implemented yet."""
        from ..errors import NotImplementedComponentError

        raise NotImplementedComponentError("`sepkit data` is not implemented yet")
