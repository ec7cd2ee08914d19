"""A plain stem folder: ``<root>/<track>/<stem>.<ext>``, one sub-folder per track.

Each audio file of a track folder is a stem named after the file (``vocals.flac`` -> ``vocals``,
lower-cased); ``mixture.<ext>`` is the mixture when present. ``stem_files`` builds a stem from
other files (a leading ``-`` subtracts): ``accompaniment = ["bass", "drums", "other"]`` or, for
solo accompaniment from multitracks, ``accompaniment = ["mixture", "-vocals"]``. Stems still
missing are derived by the loader (mixture = sum of the sources; one source = mixture - the others).
Track order: folder names sorted; ``split`` takes the paper's thirds of that order.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from sepkit.data.layout import files_by_stem, require_dir, subfolders
from sepkit.dataset import DatasetError, StemFile, Track

from .common import LayoutDataset, StemFiles, ThirdsConfig


class StemsConfig(ThirdsConfig):
    stem_files: dict[str, list[str]] = Field(
        default_factory=dict,
        description='A stem built from files of the track folder, summed; "-name" subtracts '
        '(e.g. accompaniment = ["bass", "drums", "other"]).',
    )

    @field_validator("stem_files")
    @classmethod
    def _not_empty(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for stem, names in value.items():
            if not names:
                raise ValueError(f"stem_files.{stem}: list at least one file name")
        return value


class StemsDataset(LayoutDataset):
    """``<root>/<track>/<stem>.<ext>`` folders, e.g. MUSDB18-HQ or the offline corpus."""

    Config = StemsConfig

    def tracks(self) -> list[Track]:
        root = require_dir(self.root, f"dataset '{self.name}'", "<root>/<track>/<stem>.<ext>")
        tracks = []
        for folder in subfolders(root):
            files = {name.lower(): path for name, path in files_by_stem(folder, f"dataset '{self.name}'").items()}
            if not files:
                continue
            stems: dict[str, StemFiles] = {name: (StemFile(path),) for name, path in files.items()}
            problems = []
            for stem, names in self.config.stem_files.items():
                built, missing = _build(names, files)
                if missing:
                    problems.append(f"stem_files.{stem} names {', '.join(missing)}, not in {folder}")
                    stems.pop(stem, None)
                else:
                    stems[stem] = built
            metadata = {"path": str(folder)}
            if problems:
                metadata["error"] = "; ".join(problems)
            tracks.append(self.make_track(folder.name, stems, **metadata))
        if not tracks:
            raise DatasetError(
                f"dataset '{self.name}': no track folders with audio files in {root} "
                "(expected <root>/<track>/<stem>.<ext>, e.g. <root>/song1/vocals.wav)"
            )
        return self.split_tracks(tracks)


def _build(names: list[str], files: dict[str, object]) -> tuple[StemFiles, list[str]]:
    built: list[StemFile] = []
    missing: list[str] = []
    for entry in names:
        gain = -1.0 if entry.startswith("-") else 1.0
        name = entry.lstrip("+-").strip().lower()
        if name not in files:
            missing.append(name)
        else:
            built.append(StemFile(files[name], gain=gain))  # type: ignore[arg-type]
    return tuple(built), missing
