"""What the built-in dataset layouts share: ``root``/``name`` config keys, labels, source checks."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Iterable

from pydantic import Field

from sepkit.data.splits import ThirdsSplit, thirds
from sepkit.dataset import MIXTURE, Dataset, DatasetConfig, DatasetError, StemFile, Track

StemFiles = tuple[StemFile, ...]


class LayoutConfig(DatasetConfig):
    root: str = Field(description="The dataset's folder (relative paths are relative to the recipe file).")


class ThirdsConfig(LayoutConfig):
    split: ThirdsSplit = Field(
        "all",
        description="The paper's thirds of the tracks sorted by name: unpaired (first), validation "
        "(second), test (rest), or all.",
    )


class LayoutDataset(Dataset):
    """Base of the built-in layouts: a label for tables and the list of sources a layout provides."""

    #: Label when the config has no ``name``.
    default_name: ClassVar[str] = ""
    #: Sources this layout can provide (``None``: whatever files it finds).
    provides: ClassVar[tuple[str, ...] | None] = None

    @property
    def name(self) -> str:
        return self.config.name or self.default_name or Path(self.config.root).name

    @property
    def root(self) -> Path:
        return Path(self.config.root).expanduser()

    @property
    def location(self) -> str:
        return str(self.config.root)

    @property
    def wanted_sources(self) -> list[str]:
        """The sources this role needs from each track (every source, even for the mixtures role,
        so that a mixture can be summed from them when the layout has no mixture file)."""
        return list(self.sources)

    def check_sources(self, available: Iterable[str] | None = None) -> None:
        available = tuple(available if available is not None else (self.provides or ()))
        unknown = [s for s in self.sources if s not in available]
        if unknown:
            raise DatasetError(
                f"dataset '{self.name}' ({self.root}): no source {', '.join(repr(s) for s in unknown)}; "
                f"this layout provides {', '.join(available)}"
            )

    def split_tracks(self, tracks: list[Track]) -> list[Track]:
        return thirds(tracks, getattr(self.config, "split", "all"))

    def make_track(self, name: str, stems: dict[str, StemFiles], **metadata: str) -> Track:
        return Track(name=name, stems=stems, subset=self.name, metadata=dict(metadata))


def only(files: dict[str, StemFiles], keys: Iterable[str]) -> dict[str, StemFiles]:
    """The entries of ``files`` named in ``keys`` (and the mixture), in that order."""
    keys = [MIXTURE, *keys]
    return {k: files[k] for k in keys if k in files}
