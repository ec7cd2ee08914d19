"""The hooks a sepkit plugin may implement (pluggy project ``sepkit``, entry-point group ``sepkit``).

Each ``register_*`` hook receives a ``register(name, cls)`` callback (``register_models``: see its
docstring). Import heavy modules (torch)
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
def register_loggers(register):  # type: ignore[no-untyped-def]
    """Register :class:`sepkit.training.loggers.TrainingLogger` subclasses: ``register(name, cls)``.

    A recipe names them in ``training.loggers``; the trainer builds each with ``cls()`` and calls
    ``start``, ``log_metrics``, ``log_validation`` and ``close`` (docs/components/loggers.md).
    """


@hookspec
def register_models(register):  # type: ignore[no-untyped-def]
    """Register named, ready-to-use model files: ``register(name, source, *, sha256=None, ...)``.

    ``name``: what users type (``sepkit separate song.wav --model NAME``, ``sepkit.separate(x, sr,
    model=NAME)``), lowercase words joined by hyphens. ``source``: where the file is, one of

    * a file inside the plugin's package (``importlib.resources.files(__name__) / "model.safetensors"``)
      or any local path;
    * an ``https://`` (or ``http://``, ``file://``) URL, downloaded on first use into sepkit's model
      cache and verified: ``sha256`` (64 hex digits) is then required (optional for ``file://``);
    * a mapping ``{key: URL or path}`` for a model published as several files (one per target, say),
      with ``sha256`` a mapping with the same keys; it needs ``convert``.

    Keywords: ``sha256`` (checked for local files too, when given); ``description`` (one line);
    ``convert(files, target)``: for checkpoints in a foreign format, a function that reads the
    downloaded ``files`` (``{key: Path}``; the key of a single source is its file name) and writes a
    sepkit model file at ``target`` (use :func:`sepkit.model.save_model`; never unpickle, use
    ``torch.load(..., weights_only=True)``); it runs once, its result is cached. ``sample_rate``,
    ``sources`` and ``size`` (bytes to download) are shown by ``sepkit models`` before anything is
    downloaded; ``license`` states the terms of the weights. The provider (the plugin and its
    distribution) is recorded automatically. See docs/plugins.md and sepkit.models.
    """


@hookspec
def register_commands(app):  # type: ignore[no-untyped-def]
    """Add commands to the ``sepkit`` typer application ``app``."""
