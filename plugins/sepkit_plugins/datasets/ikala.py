"""iKala: ``<root>/Wavfile/<id>.wav``, stereo, accompaniment in the left channel, voice in the right.

``accompaniment`` is channel 0, ``vocals`` channel 1 and the mixture their sum (as in the authors'
code). ``root`` may be the iKala folder or its ``Wavfile`` folder. Tracks sorted by file name (song
id then part, e.g. ``10161_chorus`` before ``10161_verse``); ``split`` takes the paper's thirds.
"""

from __future__ import annotations

from sepkit.data.layout import audio_files, require_dir
from sepkit.dataset import MIXTURE, DatasetError, StemFile, Track

from .common import LayoutDataset, ThirdsConfig

ACCOMPANIMENT_CHANNEL = 0
VOICE_CHANNEL = 1


class IKalaConfig(ThirdsConfig):
    pass


class IKalaDataset(LayoutDataset):
    """iKala's 30-second excerpts with accompaniment and voice in separate channels."""

    Config = IKalaConfig
    default_name = "iKala"
    provides = ("vocals", "accompaniment")

    def tracks(self) -> list[Track]:
        self.check_sources()
        root = require_dir(self.root, f"dataset '{self.name}'", "<root>/Wavfile/<id>.wav")
        folder = root / "Wavfile" if (root / "Wavfile").is_dir() else root
        files = audio_files(folder)
        if not files:
            raise DatasetError(f"dataset '{self.name}': no audio files in {folder} (expected <root>/Wavfile/<id>.wav)")
        tracks = []
        for path in files:
            accompaniment = StemFile(path, channel=ACCOMPANIMENT_CHANNEL)
            vocals = StemFile(path, channel=VOICE_CHANNEL)
            stems = {MIXTURE: (accompaniment, vocals), "accompaniment": (accompaniment,), "vocals": (vocals,)}
            wanted = {MIXTURE, *self.sources}
            tracks.append(self.make_track(path.stem, {k: v for k, v in stems.items() if k in wanted}, path=str(path)))
        return self.split_tracks(tracks)
