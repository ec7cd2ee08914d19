"""The hooks a sepkit plugin may implement (pluggy project ``sepkit``, entry-point group ``sepkit``).

Each ``register_*`` hook receives a ``register(name, cls)`` callback. Import heavy modules (torch)
inside the hook, not at the top of the plugin module: the CLI loads every plugin at start-up.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("sepkit")
hookimpl = pluggy.HookimplMarker("sepkit")


@hookspec
def register_representations(register):  # type: ignore[no-untyped-def]
    """Register :class:`sepkit.representation.Representation` subclasses: ``register(name, cls)``."""


@hookspec
def register_separators(register):  # type: ignore[no-untyped-def]
    """Register :class:`sepkit.separator.Separator` subclasses: ``register(name, cls)``."""


@hookspec
def register_critics(register):  # type: ignore[no-untyped-def]
    """Register :class:`sepkit.critic.Critic` subclasses: ``register(name, cls)``."""


@hookspec
def register_divergences(register):  # type: ignore[no-untyped-def]
    """Register :class:`sepkit.divergence.Divergence` subclasses: ``register(name, cls)``."""


@hookspec
def register_datasets(register):  # type: ignore[no-untyped-def]
    """Register :class:`sepkit.dataset.Dataset` subclasses: ``register(name, cls)``."""


@hookspec
def register_commands(app):  # type: ignore[no-untyped-def]
    """Add commands to the ``sepkit`` typer application ``app``."""
