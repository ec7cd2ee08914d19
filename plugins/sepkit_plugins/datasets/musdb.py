"""MUSDB18 / MUSDB18-HQ in the wav layout: ``<root>/{train,test}/<track>/<stem>.wav``.

Stems: ``mixture``, ``bass``, ``drums``, ``other``, ``vocals``; ``accompaniment`` is bass + drums +
other (MUSDB's own definition). The compressed ``.stem.mp4`` release needs ffmpeg, which sepkit does
not use: decode it to wav first (``musdbconvert`` from the musdb package) or use MUSDB18-HQ.
``split = "valid"`` is the official 14-track validation set of the train subset (musdb's
``mus.yaml``); ``"train"`` the other 86. Tracks are sorted by name within each subset.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sepkit.data.layout import files_by_stem, require_dir, subfolders
from sepkit.dataset import MIXTURE, DatasetError, StemFile, Track

from .common import LayoutConfig, LayoutDataset, StemFiles

NATIVE = ("bass", "drums", "other", "vocals")
ACCOMPANIMENT = ("bass", "drums", "other")

#: musdb's validation tracks (musdb/configs/mus.yaml), all from the train subset.
VALIDATION_TRACKS = frozenset({
    "Actions - One Minute Smile",
    "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants",
    "Leaf - Summerghost",
    "Skelpolu - Human Mistakes",
    "Young Griffo - Pennies",
    "ANiMAL - Rockshow",
    "James May - On The Line",
    "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
})


class MusdbConfig(LayoutConfig):
    subset: Literal["train", "test", "all"] = Field("train", description="MUSDB's own subsets (folders).")
    split: Literal["all", "train", "valid"] = Field(
        "all", description="Within the train subset: the official 14 validation tracks (valid), the others (train), or all."
    )


class MusdbDataset(LayoutDataset):
    """MUSDB18(-HQ), decoded: one folder per track with mixture.wav and four stems."""

    Config = MusdbConfig
    default_name = "MUSDB18"
    provides = (*NATIVE, "accompaniment")

    def tracks(self) -> list[Track]:
        self.check_sources()
        root = require_dir(self.root, f"dataset '{self.name}'", "<root>/train/<track>/mixture.wav")
        subsets = ["train", "test"] if self.config.subset == "all" else [self.config.subset]
        tracks: list[Track] = []
        for subset in subsets:
            folder = require_dir(root / subset, f"dataset '{self.name}'", f"<root>/{subset}/<track>/mixture.wav")
            encoded = sorted(folder.glob("*.stem.mp4"))
            track_folders = subfolders(folder)
            if encoded and not track_folders:
                raise DatasetError(
                    f"dataset '{self.name}': {folder} holds .stem.mp4 files, which need ffmpeg; decode them to "
                    "the wav layout <root>/{train,test}/<track>/{mixture,bass,drums,other,vocals}.wav "
                    "(e.g. `musdbconvert` from the musdb package) or use MUSDB18-HQ, and point root there"
                )
            for track_folder in track_folders:
                if subset == "train" and self.config.split != "all":
                    if (track_folder.name in VALIDATION_TRACKS) != (self.config.split == "valid"):
                        continue
                tracks.append(self._track(track_folder))
        if not tracks:
            raise DatasetError(f"dataset '{self.name}': no track folders in {root} for subset '{self.config.subset}'")
        return tracks

    def _track(self, folder) -> Track:  # type: ignore[no-untyped-def]
        files = files_by_stem(folder, f"dataset '{self.name}'")
        stems: dict[str, StemFiles] = {}
        if MIXTURE in files:
            stems[MIXTURE] = (StemFile(files[MIXTURE]),)
        for stem in NATIVE:
            if stem in files:
                stems[stem] = (StemFile(files[stem]),)
        if all(s in files for s in ACCOMPANIMENT):
            stems["accompaniment"] = tuple(StemFile(files[s]) for s in ACCOMPANIMENT)
        wanted = {MIXTURE, *self.sources}
        return self.make_track(folder.name, {k: v for k, v in stems.items() if k in wanted}, path=str(folder))
