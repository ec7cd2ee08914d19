"""A plain folder of recordings: every audio file under ``<root>`` is one track of one stem.

For the ``mixtures`` role each file is a mixture; for ``solo`` each file is a recording of the
role's source. Files are found recursively (``recursive = false`` for the top folder only) and
ordered by their path relative to the root; ``split`` takes the paper's thirds of that order.
The track name is that relative path without its extension.
"""

from __future__ import annotations

from pydantic import Field

from sepkit.data.layout import audio_files, extensions_text, require_dir
from sepkit.dataset import MIXTURE, DatasetError, StemFile, Track

from .common import LayoutDataset, ThirdsConfig


class FilesConfig(ThirdsConfig):
    recursive: bool = Field(True, description="Also read files in sub-folders.")


class FilesDataset(LayoutDataset):
    """Unpaired recordings: mixtures, or solo recordings of one source."""

    Config = FilesConfig

    def tracks(self) -> list[Track]:
        if self.role not in ("mixtures", "solo"):
            raise DatasetError(
                f"dataset '{self.name}' (files): a folder of single recordings has no references; use it "
                f"for data.mixtures or data.solo.<source>, not data.{self.role}"
            )
        stem = MIXTURE if self.role == "mixtures" else self.sources[0]
        root = require_dir(self.root, f"dataset '{self.name}'", "a folder of audio files")
        files = audio_files(root, recursive=self.config.recursive)
        if not files:
            raise DatasetError(f"dataset '{self.name}': no audio files ({extensions_text()}) in {root}")
        tracks = [
            self.make_track(path.relative_to(root).with_suffix("").as_posix(), {stem: (StemFile(path),)}, path=str(path))
            for path in files
        ]
        return self.split_tracks(tracks)
