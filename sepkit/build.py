"""Building component objects from a validated recipe, through the registries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .plugins import registry
from .warm_start import initialise_separator

if TYPE_CHECKING:
    from .critic import Critic
    from .dataset import Dataset, Role
    from .divergence import Divergence
    from .recipe.schema import ComponentSpec, Recipe
    from .representation import Representation
    from .separator import Separator


def _cls(spec: "ComponentSpec") -> type:
    return registry(spec.kind).get(spec.type).cls


def build_representation(recipe: "Recipe") -> "Representation":
    spec = recipe.representation
    return _cls(spec)(spec.config, sample_rate=recipe.audio.sample_rate)


def build_separator(recipe: "Recipe", representation: "Representation", *, initialise: bool = True) -> "Separator":
    """The recipe's separator, with the weights of ``separator.init`` when the recipe names a model
    file (unless ``initialise`` is false: sizes and windows do not depend on the weights)."""
    spec = recipe.separator
    separator = _cls(spec)(
        spec.config,
        num_sources=len(recipe.sources),
        num_channels=recipe.audio.channels,
        num_bins=representation.num_bins,
    )
    separator.bind_representation(representation)
    if spec.init is not None and initialise:
        initialise_separator(separator, recipe, spec.init)
    return separator


def build_critics(recipe: "Recipe", separator: "Separator") -> dict[str, "Critic"]:
    """One critic per source that asks for one; each sees that source's separator output."""
    shape = (separator.num_channels, separator.num_bins, separator.window.output_frames)
    return {source: _cls(spec)(spec.config, input_shape=shape) for source, spec in recipe.critics.items()}


def build_divergence(recipe: "Recipe") -> "Divergence":
    spec = recipe.divergence
    return _cls(spec)(spec.config)


def build_datasets(recipe: "Recipe", role: "Role", source: str | None = None) -> list["Dataset"]:
    """The datasets of one role (for ``solo``, of one source)."""
    if role == "solo":
        if source is None:
            raise ValueError("the solo role needs a source")
        specs = recipe.data.solo.get(source, [])
        sources = [source]
    else:
        specs = getattr(recipe.data, role)
        sources = list(recipe.sources)
    return [_cls(spec)(spec.config, role=role, sources=sources) for spec in specs]
