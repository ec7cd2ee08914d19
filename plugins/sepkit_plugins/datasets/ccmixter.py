"""ccMixter (Liutkus et al.): ``<root>/<track>/{mix,source-01,source-02}.wav``.

``source-01`` is the accompaniment (music), ``source-02`` the voice, ``mix`` the mixture (when a
track has no ``mix`` file the loader sums the sources). Tracks sorted by folder name; ``split``
takes the paper's thirds.
"""

from __future__ import annotations

from sepkit.data.layout import files_by_stem, require_dir, subfolders
from sepkit.dataset import MIXTURE, DatasetError, StemFile, Track

from .common import LayoutDataset, StemFiles, ThirdsConfig

FILES = {MIXTURE: "mix", "accompaniment": "source-01", "vocals": "source-02"}


class CCMixterConfig(ThirdsConfig):
    pass


class CCMixterDataset(LayoutDataset):
    """ccMixter's 50 songs with separate voice and music."""

    Config = CCMixterConfig
    default_name = "ccMixter"
    provides = ("vocals", "accompaniment")

    def tracks(self) -> list[Track]:
        self.check_sources()
        root = require_dir(self.root, f"dataset '{self.name}'", "<root>/<track>/source-02.wav")
        tracks = []
        for folder in subfolders(root):
            files = files_by_stem(folder, f"dataset '{self.name}'")
            if not files:
                continue
            stems: dict[str, StemFiles] = {
                stem: (StemFile(files[name]),) for stem, name in FILES.items() if name in files
            }
            wanted = {MIXTURE, *self.sources}
            tracks.append(self.make_track(folder.name, {k: v for k, v in stems.items() if k in wanted}, path=str(folder)))
        if not tracks:
            raise DatasetError(f"dataset '{self.name}': no track folders with audio files in {root} (expected <root>/<track>/source-02.wav)")
        return self.split_tracks(tracks)
