"""Small helpers for dataset plugins that read folders: checked roots, sorted audio files."""

from __future__ import annotations

from pathlib import Path

from ..audio import AUDIO_EXTENSIONS, is_audio_file
from ..dataset import DatasetError


def require_dir(path: str | Path, label: str, expected: str = "") -> Path:
    """``path`` as an existing folder, or a :class:`DatasetError` naming it (and the layout expected)."""
    folder = Path(path).expanduser()
    hint = f" (expected {expected})" if expected else ""
    if not folder.exists():
        raise DatasetError(f"{label}: folder {folder} does not exist{hint}")
    if not folder.is_dir():
        raise DatasetError(f"{label}: {folder} is not a folder{hint}")
    return folder


def subfolders(folder: Path) -> list[Path]:
    """Visible sub-folders, sorted by name."""
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def audio_files(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Audio files (by extension) in ``folder``, sorted by their path relative to it."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = [p for p in found if is_audio_file(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def files_by_stem(folder: Path, label: str) -> dict[str, Path]:
    """``{file name without extension: path}`` for the audio files of a track folder.

    Two files with the same name and different extensions are ambiguous: an error naming both.
    """
    out: dict[str, Path] = {}
    for path in audio_files(folder):
        name = path.stem
        if name in out:
            raise DatasetError(f"{label}: both {out[name].name} and {path.name} in {folder}; keep one of them")
        out[name] = path
    return out


def extensions_text() -> str:
    return ", ".join(AUDIO_EXTENSIONS)
