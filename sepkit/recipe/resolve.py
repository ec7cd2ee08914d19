"""The one resolved form of a recipe: plain JSON data with every component default written out.

Model files store it (JSON), run folders store it (``recipe.resolved.toml``) and output folders
compare it (``experiment.json``), so that a plugin changing a default later changes none of them,
and two folders hold "the same run" exactly when their resolved recipes agree.
"""

from __future__ import annotations

from typing import Any

from ..errors import SepkitError
from .load import recipe_from_dict
from .schema import ComponentSpec, Recipe

#: Where a run happens rather than what it is: folders that differ only here hold the same run
#: (training.loggers: where its records go; a resumed run may add or drop a logger).
PLACEMENT = (("training", "device"), ("training", "loggers"), ("data", "residency"), ("data", "memory_budget"))
#: Keys that only say when training ends. Nothing in an update depends on them (the learning rates
#: are constant, no schedule reads the budget), so a finished run continued with ``--resume`` and a
#: larger ``max_epochs`` is the run that would have trained that long from the start.
BUDGET = (("training", "max_epochs"),)


def _component(spec: ComponentSpec) -> dict[str, Any]:
    """A component table with its full config; one whose config was never parsed (a model file
    parses only its representation and separator) is kept as written."""
    if not spec.is_bound:
        return {"type": spec.type, **spec.params}
    values = spec.config.model_dump(mode="json")
    fields = type(spec.config).model_fields
    # None whose default is None is left out (TOML has no null); other Nones are written false.
    values = {k: v for k, v in values.items() if not (v is None and fields[k].default is None)}
    return {"type": spec.type, **values}


def resolve(recipe: Recipe) -> dict[str, Any]:
    """The recipe (no variants) with each component table expanded to its full validated config."""
    data = recipe.model_dump(mode="json", exclude={"variants", "representation", "separator", "critics", "divergence", "data"})
    data["representation"] = _component(recipe.representation)
    data["separator"] = _component(recipe.separator)
    if recipe.separator.init is not None:  # where training started from (model files leave it out)
        data["separator"]["init"] = recipe.separator.init
    data["divergence"] = _component(recipe.divergence)
    data["critics"] = {k: _component(v) for k, v in recipe.critics.items()}
    d = recipe.data
    data["data"] = {
        "paired": [_component(s) for s in d.paired],
        "mixtures": [_component(s) for s in d.mixtures],
        "solo": {k: [_component(s) for s in v] for k, v in d.solo.items()},
        "validation": [_component(s) for s in d.validation],
        "test": [_component(s) for s in d.test],
        "residency": d.residency,
    }
    if d.memory_budget is not None:
        data["data"]["memory_budget"] = d.memory_budget
    return data


def resolve_stored(stored: dict[str, Any]) -> dict[str, Any]:
    """A resolved recipe written by this or an earlier sepkit, as this version resolves it (keys
    added since filled in with their defaults), so that upgrading sepkit does not make a run "another
    recipe". One that no longer validates is returned as stored (it then differs, as it should)."""
    try:
        recipe = recipe_from_dict(stored, check_data=False).base
    except SepkitError:
        return stored
    return resolve(recipe)


def without_placement(resolved: dict[str, Any], *extra: tuple[str, str]) -> dict[str, Any]:
    """``resolved`` less where the run happens (and any ``extra`` ``(table, key)`` pairs)."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in resolved.items()}
    for table, key in (*PLACEMENT, *extra):
        if isinstance(out.get(table), dict):
            out[table].pop(key, None)
    return out
