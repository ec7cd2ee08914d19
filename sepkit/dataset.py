"""The Dataset interface: where audio comes from, for one role of a recipe.

A dataset lists tracks; it does not decode audio. Each :class:`Track` names, for every stem it
provides, the file (and optionally the channel) that holds it. Stems a layout does not store are
derived by the loader (accompaniment = mixture - vocals; mixture = sum of sources), see
``sepkit.data.derive``; loading itself is ``sepkit.data.loading.load_tracks``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from .component import Component, ComponentConfig, ConfigValues
from .errors import SepkitError

#: The roles a dataset can play in a recipe.
Role = Literal["paired", "mixtures", "solo", "validation", "test"]

MIXTURE = "mixture"


class DatasetError(SepkitError):
    """A dataset that cannot be listed or loaded: missing root, empty folder, unknown source..."""


@dataclass(frozen=True)
class StemFile:
    """One stem on disk: a file, and the channel of it to read (``None``: all channels).

    ``gain`` scales the file before the files of one stem are summed: a layout whose accompaniment
    is "mixture minus vocals" lists ``(StemFile(mix), StemFile(vocals, gain=-1.0))``.
    """

    path: Path
    channel: int | None = None
    gain: float = 1.0


@dataclass(frozen=True)
class Track:
    """One item of a dataset: a name, the subset it belongs to, and its stems on disk.

    ``stems`` maps ``"mixture"`` and/or source names to files (a list of files is summed, as for
    MedleyDB's several vocal stems). An empty tuple is a stem known to be silent (an instrumental
    track's vocals): it is zeros as long as the track's other stems.
    """

    name: str
    stems: dict[str, tuple[StemFile, ...]]
    subset: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


class DatasetConfig(ComponentConfig):
    """Base of every dataset's config: what the core reads from it, declared here."""

    name: str = Field("", description="Subset label used in result tables (default: the dataset's own).")


class Dataset(Component, abc.ABC):
    """A collection of tracks for one role.

    ``sources`` are the recipe's sources (for paired/validation/test roles); for the ``solo`` role
    ``sources`` has one entry, the source the recordings are of; for ``mixtures`` it is the recipe's.
    A dataset's ``Config`` derives from :class:`DatasetConfig` (checked when the class is defined).
    """

    Config: ClassVar[type[DatasetConfig]] = DatasetConfig
    config: DatasetConfig

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not (isinstance(cls.Config, type) and issubclass(cls.Config, DatasetConfig)):
            raise TypeError(
                f"{cls.__module__}.{cls.__name__}.Config must derive from sepkit.dataset.DatasetConfig "
                f"(it declares the 'name' label), got {cls.Config!r}"
            )

    def __init__(self, config: ConfigValues, *, role: Role, sources: list[str]) -> None:
        super().__init__(config)
        self.role = role
        self.sources = list(sources)

    @abc.abstractmethod
    def tracks(self) -> list[Track]:
        """Every track, in a fixed, documented order (so that splits are reproducible)."""

    @property
    def name(self) -> str:
        """A label for tables: the config's ``name``, else the class name (layouts override it)."""
        return self.config.name or type(self).__name__

    @property
    def location(self) -> str:
        """Where the tracks come from, for messages and ``sepkit data inspect`` (a folder, a URL);
        empty (the default) when there is no such place."""
        return ""

    @staticmethod
    def resolve_root(root: str | Path) -> Path:
        return Path(root).expanduser()
