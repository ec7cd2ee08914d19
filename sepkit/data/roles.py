"""Loading one role of a recipe: its datasets, the stems that role holds, the recipe's audio settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..build import build_datasets
from .derive import role_stems
from .loading import LoadResult, load_tracks

if TYPE_CHECKING:
    from ..dataset import Role
    from ..recipe.schema import Recipe


def load_role(
    recipe: "Recipe",
    role: "Role",
    source: str | None = None,
    *,
    cache_dir: Path | str | None = None,
    use_cache: bool = True,
    progress: bool = False,
    lazy: bool = False,
) -> LoadResult:
    """Every track of ``role`` (for ``solo``, of ``source``'s recordings) as ``[S, C, L]`` arrays with
    the stems of :func:`~sepkit.data.derive.role_stems`, at the recipe's rate, channels and clipping
    (``lazy``: left in the audio cache, see :func:`~sepkit.data.loading.load_tracks`)."""
    datasets = build_datasets(recipe, role, source)
    stems = role_stems(role, list(recipe.sources), source)
    return load_tracks(
        datasets,
        stems=stems,
        sample_rate=recipe.audio.sample_rate,
        channels=recipe.audio.channels,
        clip=recipe.audio.clip,
        cache_dir=cache_dir,
        use_cache=use_cache,
        progress=progress,
        lazy=lazy,
    )
