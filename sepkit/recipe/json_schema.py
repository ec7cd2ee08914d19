"""The recipe's JSON schema, with each component table expanded to the registered types' configs."""

from __future__ import annotations

from typing import Any

from ..plugins import registry
from .schema import ComponentSpec, Recipe

SPEC_CLASSES = {cls.__name__: cls for cls in ComponentSpec.__subclasses__()}


def _component_schema(kind: str, defs: dict[str, Any]) -> dict[str, Any]:
    choices = []
    for entry in registry(kind).entries():
        schema = entry.cls.Config.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        properties = {"type": {"const": entry.name, "description": f"{kind} '{entry.name}'"}}
        properties.update(schema.get("properties", {}))
        choice = {
            "title": f"{kind} {entry.name}",
            "type": "object",
            "properties": properties,
            "required": ["type", *schema.get("required", [])],
            "additionalProperties": False,
        }
        if schema.get("description"):
            choice["description"] = schema["description"]
        choices.append(choice)
    return {"oneOf": choices} if choices else {"type": "object", "properties": {"type": {"type": "string"}}}


def recipe_json_schema() -> dict[str, Any]:
    schema = Recipe.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.setdefault("$defs", {})
    extra: dict[str, Any] = {}
    for name, cls in SPEC_CLASSES.items():
        if name in defs:
            defs[name] = _component_schema(cls.kind, extra)
    defs.update(extra)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
