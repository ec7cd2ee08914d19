"""DSD100: ``<root>/Mixtures/{Dev,Test}/<track>/mixture.wav`` and
``<root>/Sources/{Dev,Test}/<track>/{bass,drums,other,vocals}.wav``.

Splits (tracks sorted by name, i.e. by their number): ``train`` = the 50 Dev songs (the paper's
paired data); ``test`` = the 50 Test songs; ``test-validation`` / ``test-test`` = the first / last
25 of the Test songs (the paper's validation and test parts); ``all`` = Dev then Test.
``accompaniment`` is mixture - vocals, as in the authors' code (``accompaniment = "sum"``: bass +
drums + other).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from sepkit.data.layout import files_by_stem, require_dir, subfolders
from sepkit.data.splits import halves
from sepkit.dataset import MIXTURE, DatasetError, StemFile, Track

from .common import LayoutConfig, LayoutDataset, StemFiles

NATIVE = ("bass", "drums", "other", "vocals")

FOLDERS = {"train": ["Dev"], "test": ["Test"], "test-validation": ["Test"], "test-test": ["Test"], "all": ["Dev", "Test"]}


class Dsd100Config(LayoutConfig):
    split: Literal["train", "test", "test-validation", "test-test", "all"] = Field(
        "train",
        description="train (Dev, 50 songs), test (Test, 50), test-validation / test-test (first / last 25 "
        "of Test by name), or all.",
    )
    accompaniment: Literal["mixture-minus-vocals", "sum"] = Field(
        "mixture-minus-vocals", description="How accompaniment is made: mixture - vocals (the paper) or bass + drums + other."
    )


class Dsd100Dataset(LayoutDataset):
    """The DSD100 multitrack set (SiSEC 2016)."""

    Config = Dsd100Config
    default_name = "DSD100"
    provides = (*NATIVE, "accompaniment")

    def tracks(self) -> list[Track]:
        self.check_sources()
        root = require_dir(self.root, f"dataset '{self.name}'", "<root>/Mixtures and <root>/Sources")
        tracks: list[Track] = []
        for part in FOLDERS[self.config.split]:
            mixtures = require_dir(root / "Mixtures" / part, f"dataset '{self.name}'", f"<root>/Mixtures/{part}/<track>/mixture.wav")
            sources = require_dir(root / "Sources" / part, f"dataset '{self.name}'", f"<root>/Sources/{part}/<track>/vocals.wav")
            names = sorted({p.name for p in subfolders(mixtures)} | {p.name for p in subfolders(sources)})
            part_tracks = [self._track(name, mixtures / name, sources / name) for name in names]
            if self.config.split == "test-validation":
                part_tracks = halves(part_tracks, "first")
            elif self.config.split == "test-test":
                part_tracks = halves(part_tracks, "second")
            tracks += part_tracks
        if not tracks:
            raise DatasetError(f"dataset '{self.name}': no track folders under {root}/Mixtures for split '{self.config.split}'")
        return tracks

    def _track(self, name: str, mixture_folder: Path, source_folder: Path) -> Track:
        label = f"dataset '{self.name}'"
        files = files_by_stem(source_folder, label) if source_folder.is_dir() else {}
        mixes = files_by_stem(mixture_folder, label) if mixture_folder.is_dir() else {}
        stems: dict[str, StemFiles] = {s: (StemFile(files[s]),) for s in NATIVE if s in files}
        if MIXTURE in mixes:
            stems[MIXTURE] = (StemFile(mixes[MIXTURE]),)
        if self.config.accompaniment == "sum" and all(s in files for s in ("bass", "drums", "other")):
            stems["accompaniment"] = tuple(StemFile(files[s]) for s in ("bass", "drums", "other"))
        elif self.config.accompaniment == "mixture-minus-vocals" and MIXTURE in stems and "vocals" in stems:
            stems["accompaniment"] = (stems[MIXTURE][0], StemFile(files["vocals"], gain=-1.0))
        wanted = {MIXTURE, *self.sources}
        return self.make_track(name, {k: v for k, v in stems.items() if k in wanted}, path=str(source_folder))
