"""What every pluggable component shares: a validated pydantic ``Config`` that is its part of the recipe.

This module is light on purpose (no torch): recipe validation and ``sepkit --help`` import it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, TypeVar, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict

T = TypeVar("T")

_CHECK_VALUES = contextvars.ContextVar("sepkit_check_values", default=True)


def checks_values() -> bool:
    """Whether components should check their inputs' values (NaN, infinities): true except inside
    :func:`trusted_values`. Such a check reads a result back from the device, which on a GPU waits
    for all the work queued before it; shapes and dtypes are always checked."""
    return _CHECK_VALUES.get()


@contextlib.contextmanager
def trusted_values() -> Iterator[None]:
    """Skip value checks in this block: the trainer's inputs come from audio checked when it was
    loaded, and a non-finite value that appears anyway makes the loss non-finite, which the
    trainer's flag catches without waiting for the device."""
    token = _CHECK_VALUES.set(False)
    try:
        yield
    finally:
        _CHECK_VALUES.reset(token)


def none_from_toml(value: Any) -> Any:
    """TOML has no null: ``false`` (what resolved recipes write for None) or ``"none"`` mean None."""
    if value is False or (isinstance(value, str) and value.lower() == "none"):
        return None
    return value


#: THE type of an optional setting (recipe schema and every component's ``Config``):
#: ``TomlOptional[float]`` accepts a float, ``false`` or ``"none"``, and None. Resolved recipes write
#: None as ``false``, so a setting that may be None must use it to read them back.
TomlOptional = Annotated[T | None, BeforeValidator(none_from_toml)]


class ComponentConfig(BaseModel):
    """Base of every component's config: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EmptyConfig(ComponentConfig):
    """For components that take no settings."""


#: What a component's constructor accepts as its config: an instance of its ``Config`` (taken as
#: is), or the plain values of one (a recipe table without its ``type`` key, a dict in a test).
ConfigValues = Union[ComponentConfig, Mapping[str, Any], None]


class Component:
    """Base of every registered class: it carries its ``Config`` and keeps the validated instance.

    ``Component.__init__`` parses the config once: the recipe hands over the instance it validated
    (see :meth:`parse_config`), tests and notebooks may pass a dict. Subclasses read ``self.config``
    and never parse again.
    """

    Config: ClassVar[type[ComponentConfig]] = EmptyConfig
    config: Any

    def __init__(self, config: ConfigValues = None) -> None:
        self.config = type(self).parse_config(config)

    @classmethod
    def parse_config(cls, values: ConfigValues = None) -> ComponentConfig:
        """Validate ``values`` against ``cls.Config``; an instance of ``cls.Config`` is returned as is.

        This is what a recipe calls once per component table when it is validated; the class is then
        built from the result without a second validation.
        """
        if isinstance(values, cls.Config):
            return values
        return cls.Config.model_validate(dict(values or {}))
