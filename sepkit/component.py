"""What every pluggable component shares: a validated pydantic ``Config`` that is its part of the recipe.

This module is light on purpose (no torch): recipe validation and ``sepkit --help`` import it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class ComponentConfig(BaseModel):
    """Base of every component's config: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EmptyConfig(ComponentConfig):
    """For components that take no settings."""


class Component:
    """Mixin for every registered class: it carries its ``Config`` and keeps the validated instance."""

    Config: ClassVar[type[ComponentConfig]] = EmptyConfig
    config: Any

    @classmethod
    def parse_config(cls, values: dict[str, Any] | ComponentConfig | None = None) -> ComponentConfig:
        """Validate ``values`` (a recipe table without its ``type`` key) against ``cls.Config``."""
        if isinstance(values, cls.Config):
            return values
        return cls.Config.model_validate(dict(values or {}))
