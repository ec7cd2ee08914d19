"""MedleyDB (1.0 / 2.0): ``<root>/Audio/<Track>/<Track>_MIX.wav`` and ``<Track>_STEMS/*.wav``.

Each track's ``<Track>_METADATA.yaml`` (in the track folder, in ``<root>/Metadata/``, or in
``metadata_dir``) decides which stems are vocals: a stem whose instrument is one of
``vocal_instruments`` (singers, rappers, speakers, choir, vocalists, beatboxing, screamers).
``vocals`` is the sum of those stems, ``accompaniment`` the sum of all others, and the mixture is
vocals + accompaniment (``mixture = "sum"``, as in the authors' code, so that mixture = sum of
sources holds exactly) or the released mix (``mixture = "file"``). Instrumental tracks have silent
vocals; they are left out of the solo vocals role (and of every role with
``include_instrumental = false``). Tracks sorted by folder name; ``split`` takes the paper's thirds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from sepkit.data.layout import require_dir, subfolders
from sepkit.dataset import MIXTURE, DatasetError, StemFile, Track

from .common import LayoutDataset, StemFiles, ThirdsConfig
from .medleydb_metadata import MetadataError, TrackMetadata, parse_track_metadata

VOCAL_INSTRUMENTS = (
    "male singer",
    "female singer",
    "male speaker",
    "female speaker",
    "male rapper",
    "female rapper",
    "male screamer",
    "female screamer",
    "vocalists",
    "choir",
    "beatboxing",
)


class MedleyDBConfig(ThirdsConfig):
    metadata_dir: str = Field("", description="Folder of <Track>_METADATA.yaml files, if not beside the audio.")
    vocal_instruments: list[str] = Field(
        default_factory=lambda: list(VOCAL_INSTRUMENTS), description="MedleyDB instrument labels counted as vocals."
    )
    mixture: Literal["sum", "file"] = Field(
        "sum", description="sum: vocals + accompaniment stems (the paper's code); file: the released <Track>_MIX.wav."
    )
    include_instrumental: bool = Field(True, description="Keep tracks without vocal stems (silent vocals).")


class MedleyDBDataset(LayoutDataset):
    """MedleyDB multitracks, stems grouped into vocals and accompaniment by their metadata."""

    Config = MedleyDBConfig
    default_name = "MedleyDB"
    provides = ("vocals", "accompaniment")

    def tracks(self) -> list[Track]:
        self.check_sources()
        root = require_dir(self.root, f"dataset '{self.name}'", "<root>/Audio/<Track>/<Track>_MIX.wav")
        audio_root = root / "Audio" if (root / "Audio").is_dir() else root
        folders = subfolders(audio_root)
        if not folders:
            raise DatasetError(f"dataset '{self.name}': no track folders in {audio_root} (expected <root>/Audio/<Track>/)")
        tracks = self.split_tracks([self._track(root, folder) for folder in folders])
        tracks = [t for t in tracks if self._keep(t)]
        if not tracks:
            raise DatasetError(f"dataset '{self.name}': no track in split '{self.config.split}' has the stems this role needs")
        return tracks

    def _keep(self, track: Track) -> bool:
        if track.metadata.get("error"):
            return True  # reported (and skipped) by the loader
        instrumental = track.metadata.get("instrumental") == "yes"
        if instrumental and not self.config.include_instrumental:
            return False
        if self.role == "solo":
            return bool(track.stems.get(self.sources[0]))
        return True

    def _metadata_path(self, root: Path, folder: Path) -> Path | None:
        name = f"{folder.name}_METADATA.yaml"
        candidates = [folder / name, root / "Metadata" / name]
        if self.config.metadata_dir:
            candidates.insert(0, Path(self.config.metadata_dir).expanduser() / name)
        return next((p for p in candidates if p.is_file()), None)

    def _track(self, root: Path, folder: Path) -> Track:
        path = self._metadata_path(root, folder)
        if path is None:
            return self.make_track(folder.name, {}, path=str(folder), error=f"no {folder.name}_METADATA.yaml found")
        try:
            metadata = parse_track_metadata(path.read_text(encoding="utf-8"))
        except (MetadataError, OSError, UnicodeDecodeError) as exc:
            return self.make_track(folder.name, {}, path=str(path), error=f"cannot read {path}: {exc}")
        return self._stems(folder, metadata)

    def _stems(self, folder: Path, metadata: TrackMetadata) -> Track:
        stem_dir = folder / (metadata.stem_dir or f"{folder.name}_STEMS")
        vocal_labels = {label.lower() for label in self.config.vocal_instruments}
        vocals: list[StemFile] = []
        accompaniment: list[StemFile] = []
        for stem in metadata.stems:
            is_vocal = any(i.strip().lower() in vocal_labels for i in stem.instruments)
            (vocals if is_vocal else accompaniment).append(StemFile(stem_dir / stem.filename))
        stems: dict[str, StemFiles] = {"vocals": tuple(vocals), "accompaniment": tuple(accompaniment)}
        if self.config.mixture == "file":
            stems[MIXTURE] = (StemFile(folder / (metadata.mix_filename or f"{folder.name}_MIX.wav")),)
        else:
            stems[MIXTURE] = tuple(vocals) + tuple(accompaniment)
        wanted = {MIXTURE, *self.sources}
        return self.make_track(
            folder.name,
            {k: v for k, v in stems.items() if k in wanted},
            path=str(folder),
            instrumental="no" if vocals else "yes",
        )
