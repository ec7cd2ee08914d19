"""Plugin discovery and the component registries.

Plugins are modules with ``@sepkit.hookimpl`` functions, found through the ``sepkit`` entry-point
group (the built-ins too). Registries are built lazily, the first time a component is needed, so that
``sepkit --help`` never imports torch.

A plugin that fails to import (or to add its commands) is skipped with a one-line warning naming
it and its error, so that one broken package does not break every command. ``SEPKIT_LOAD_PLUGINS``
limits loading to the distributions it names, comma-separated, as llm's ``LLM_LOAD_PLUGINS`` does;
sepkit's own built-ins (the ``sepkit`` distribution) always load, so ``SEPKIT_LOAD_PLUGINS=`` (empty)
loads the built-ins only. Unset: every installed plugin.

Tests call :func:`use_plugins` to disable entry-point discovery and register plugins directly.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import os
import re
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Iterator

import pluggy

from . import hookspecs
from .errors import PluginError

ENTRY_POINT_GROUP = "sepkit"
#: Set to 1 to skip entry-point discovery (plugins must then be registered with :func:`use_plugins`).
DISABLE_ENV = "SEPKIT_DISABLE_ENTRY_POINTS"
#: Comma-separated distributions whose plugins load (besides the built-ins); empty: the built-ins only.
LOAD_ENV = "SEPKIT_LOAD_PLUGINS"
#: The distribution of the built-in plugins, loaded whatever LOAD_ENV says.
BUILTIN_DISTRIBUTION = "sepkit"

#: kind -> (hook name, dotted path of the base class)
KINDS: dict[str, tuple[str, str]] = {
    "representation": ("register_representations", "sepkit.representation:Representation"),
    "separator": ("register_separators", "sepkit.separator:Separator"),
    "critic": ("register_critics", "sepkit.critic:Critic"),
    "divergence": ("register_divergences", "sepkit.divergence:Divergence"),
    "dataset": ("register_datasets", "sepkit.dataset:Dataset"),
    "logger": ("register_loggers", "sepkit.training.loggers:TrainingLogger"),
}

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Provider:
    """Who registered a component: the plugin (entry point or module) and its distribution."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"plugin '{self.plugin}' ({self.distribution} {self.version})"


@dataclass(frozen=True)
class Failure:
    """A plugin that was skipped: who it is, the hook it failed in (or ``import``), and why."""

    provider: Provider
    stage: str
    message: str


@dataclass(frozen=True)
class Implementation:
    """One loaded plugin and the hooks it implements."""

    provider: Provider
    hooks: tuple[str, ...]


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    cls: type
    provider: Provider


class Registry:
    """All registered components of one kind, by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, cls: type, provider: Provider) -> None:
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PluginError(
                f"{provider} registers {self.kind} {name!r}: names are lowercase words joined by "
                "hyphens (e.g. 'magnitude-stft')"
            )
        base = _import_object(KINDS[self.kind][1])
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(
                f"{provider} registers {self.kind} '{name}' as {cls!r}, which is not a subclass of "
                f"{base.__module__}.{base.__name__}"
            )
        if name in self._entries:
            first = self._entries[name].provider
            raise PluginError(
                f"{self.kind} '{name}' is registered twice: by {first} and by {provider}"
            )
        self._entries[name] = Entry(self.kind, name, cls, provider)

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise PluginError(
                f"unknown {self.kind} '{name}'; registered: {self.names_text()}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def names_text(self) -> str:
        return ", ".join(self.names()) or "(none)"

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def _import_object(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class PluginSystem:
    """A pluggy manager plus the distribution of each plugin and the lazily built registries."""

    def __init__(self, *, entry_points: bool = True, plugins: tuple[Any, ...] = ()) -> None:
        self.manager = pluggy.PluginManager("sepkit")
        self.manager.add_hookspecs(hookspecs)
        self._providers: dict[str, Provider] = {}
        self._registries: dict[str, Registry] | None = None
        #: Plugins skipped because they failed to import or to add their commands.
        self.failures: list[Failure] = []
        if entry_points:
            self._load_entry_points(wanted_distributions())
        for plugin in plugins:
            self.register(plugin)

    def _load_entry_points(self, wanted: set[str] | None) -> None:
        """Import every entry point of the group (of the ``wanted`` distributions and the built-ins,
        when given); one that fails to import is a warning and a :class:`Failure`, not an error."""
        found: set[str] = set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            provider = Provider(
                plugin=ep.name,
                distribution=dist.metadata["Name"] if dist else "unknown",
                version=dist.version if dist else "unknown",
            )
            key = normalise_distribution(provider.distribution)
            found.add(key)
            if wanted is not None and key not in wanted | {BUILTIN_DISTRIBUTION}:
                continue
            if self.manager.get_plugin(ep.name) is not None:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin names itself and is skipped
                self._skip(provider, "import", f"plugin '{ep.name}' from {provider.distribution} {provider.version} "
                           f"failed to import ({ep.value}): {_one_line(exc)}")
                continue
            self._add(module, ep.name, provider)
        for name in sorted((wanted or set()) - found):
            warn(f"{LOAD_ENV} names {name!r}, which is no installed distribution with sepkit plugins")

    def _skip(self, provider: Provider, stage: str, message: str) -> None:
        self.failures.append(Failure(provider, stage, message))
        warn(f"{message}; skipped")

    def register(self, plugin: ModuleType | Any, name: str | None = None) -> None:
        """Register a plugin object or module directly (tests, notebooks)."""
        if isinstance(plugin, str):
            plugin = importlib.import_module(plugin)
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        provider = Provider(plugin=name, distribution=_distribution_of(plugin), version=_version_of(plugin))
        self._add(plugin, name, provider)

    def _add(self, plugin: Any, name: str, provider: Provider) -> None:
        try:
            self.manager.register(plugin, name=name)
        except Exception as exc:
            raise PluginError(f"plugin '{name}' cannot be registered: {exc}") from exc
        self._providers[name] = provider
        self._registries = None

    @property
    def registries(self) -> dict[str, Registry]:
        if self._registries is None:
            self._registries = self._build_registries()
        return self._registries

    def _build_registries(self) -> dict[str, Registry]:
        registries = {kind: Registry(kind) for kind in KINDS}
        for kind, (hook_name, _) in KINDS.items():

            def registrar(provider: Provider, _kind: str = kind) -> Callable[[str, type], None]:
                return lambda name, cls: registries[_kind].add(name, cls, provider)

            self.call_each(hook_name, registrar)
        return registries

    def provider(self, plugin_name: str) -> Provider:
        """Who registered the plugin of this name (``unknown`` for one pluggy got elsewhere)."""
        return self._providers.get(plugin_name) or Provider(plugin_name, "unknown", "unknown")

    def implementations(self, hook_name: str, **arguments: Any) -> list[tuple[Provider, Callable[[], Any]]]:
        """Every plugin's implementation of ``hook_name`` with its provider, in pluggy's call order,
        each bound to the ``arguments`` it asks for (pluggy lets an implementation take fewer)."""
        hook = getattr(self.manager.hook, hook_name)
        return [
            (self.provider(impl.plugin_name), functools.partial(impl.function, *(arguments[a] for a in impl.argnames)))
            for impl in reversed(hook.get_hookimpls())
        ]

    def call_each(self, hook_name: str, registrar: Callable[[Provider], Callable[..., None]]) -> None:
        """Call every plugin's ``hook_name(register)`` on its own, in registration order, with
        ``register = registrar(provider)``: so that every registration knows who made it. A plugin
        that fails is a one-line :class:`PluginError` naming it."""
        hook = getattr(self.manager.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):
            provider = self.provider(impl.plugin_name)
            arguments = {"register": registrar(provider)}
            try:
                impl.function(*(arguments[a] for a in impl.argnames))
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"{provider} failed in {hook_name}: {type(exc).__name__}: {exc}") from exc

    def registry(self, kind: str) -> Registry:
        return self.registries[kind]

    def add_commands(self, app: Any) -> None:
        """Let every plugin add its commands to ``app``; one that fails is skipped with a warning
        (the CLI builds every command at start-up: one broken plugin must not stop them all)."""
        for provider, function in self.implementations("register_commands", app=app):
            try:
                function()
            except Exception as exc:
                self._skip(provider, "register_commands", f"{provider} failed in register_commands: {_one_line(exc)}")

    def loaded(self) -> list[Implementation]:
        """Every loaded plugin and the hooks it implements, by distribution and plugin name."""
        plugins = []
        for name, plugin in self.manager.list_name_plugin():
            provider = self.provider(name)
            hooks = tuple(sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or ()))
            plugins.append(Implementation(provider, hooks))
        return sorted(plugins, key=lambda p: (p.provider.distribution, p.provider.plugin))


def normalise_distribution(name: str) -> str:
    """A distribution name as packaging compares them: ``Sepkit_Foo.bar`` is ``sepkit-foo-bar``."""
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def wanted_distributions() -> set[str] | None:
    """The distributions ``SEPKIT_LOAD_PLUGINS`` names (normalised); None when it is unset."""
    value = os.environ.get(LOAD_ENV)
    if value is None:
        return None
    return {normalise_distribution(n) for n in value.split(",") if n.strip()}


def warn(message: str) -> None:
    """One warning line on stderr (plugins load before any command, so no console exists yet)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _distribution_of(plugin: Any) -> str:
    module = getattr(plugin, "__name__", "") if isinstance(plugin, ModuleType) else type(plugin).__module__
    top = (module or "").split(".")[0]
    dists = importlib.metadata.packages_distributions().get(top)
    return dists[0] if dists else "(not installed)"


def _version_of(plugin: Any) -> str:
    dist = _distribution_of(plugin)
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


_current: PluginSystem | None = None


def plugin_system() -> PluginSystem:
    """The process-wide plugin system (entry points loaded on first use unless disabled)."""
    global _current
    if _current is None:
        _current = PluginSystem(entry_points=os.environ.get(DISABLE_ENV, "") not in ("1", "true", "yes"))
    return _current


def registry(kind: str) -> Registry:
    """The registry of one kind: ``representation``, ``separator``, ``critic``, ``divergence``, ``dataset``,
    ``logger``."""
    return plugin_system().registry(kind)


@contextlib.contextmanager
def use_plugins(*plugins: Any, entry_points: bool = False) -> Iterator[PluginSystem]:
    """Use exactly these plugins (modules, module names or objects) for the duration of the block.

    With ``entry_points=False`` (the default) installed plugins are not discovered, so a test sees
    only what it registers.
    """
    global _current
    previous = _current
    _current = PluginSystem(entry_points=entry_points, plugins=plugins)
    try:
        yield _current
    finally:
        _current = previous
