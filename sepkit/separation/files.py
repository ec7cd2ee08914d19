"""Separating audio files into stem files: ``OUTDIR/<input stem>/<source>.<ext>``.

Decoding, separation and writing stream block by block (see :mod:`sepkit.separation.engine`), so a
60-minute file needs about as much memory as a 3-minute one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import SepkitError
from ..io import no_space
from .engine import BLOCK_SECONDS, EngineOptions, run_pipeline
from .output import StemWriter, output_subtype
from .reader import find_audio_files, probe, read_blocks

if TYPE_CHECKING:
    from ..model import Model


@dataclass
class FileResult:
    """What happened to one input: its duration, the wall time it took and the stems written (or the error)."""

    file: Path
    duration: float = 0.0
    seconds: float = 0.0
    outputs: dict[str, Path] = field(default_factory=dict)
    error: str | None = None
    #: The output device is full: the files after this one are not attempted.
    disk_full: bool = False
    #: Not attempted (an earlier file found the disk full).
    skipped: bool = False

    @property
    def realtime_factor(self) -> float | None:
        """Seconds of audio per second of wall time (higher is faster)."""
        return self.duration / self.seconds if self.error is None and self.seconds > 0 else None

    def as_json(self) -> dict[str, object]:
        return {
            "file": str(self.file),
            "duration_s": round(self.duration, 3),
            "time_s": round(self.seconds, 3),
            "realtime_factor": None if self.realtime_factor is None else round(self.realtime_factor, 2),
            "outputs": {s: str(p) for s, p in self.outputs.items()},
            "error": self.error,
            "skipped": self.skipped,
        }


def expand_inputs(inputs: list[Path]) -> tuple[list[Path], list[FileResult]]:
    """Files to separate (folders searched for audio files), and an error result per unusable input."""
    files: list[Path] = []
    errors: list[FileResult] = []
    seen: set[Path] = set()
    for item in inputs:
        if item.is_dir():
            found = find_audio_files(item)
            if not found:
                errors.append(FileResult(item, error=f"{item}: no audio files in this folder"))
        elif item.exists():
            found = [item]
        else:
            errors.append(FileResult(item, error=f"{item}: no such file or folder"))
            found = []
        for path in found:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                files.append(path)
    return files, errors


def output_folder(out_dir: Path, path: Path) -> Path:
    return out_dir / path.stem


def output_folders(out_dir: Path, files: list[Path]) -> dict[Path, Path]:
    """Each file's output folder: ``OUTDIR/<name>``; files of one call that share a name but not an
    extension (``x.flac`` and ``x.ogg``) get ``OUTDIR/<name>-<ext>`` each, so that both are separated.
    (Files that share name and extension keep the plain folder: the first one claims it.)"""
    groups: dict[Path, list[Path]] = {}
    for path in files:
        groups.setdefault(output_folder(out_dir, path).resolve(), []).append(path)
    folders = {}
    for group in groups.values():
        suffixes = [p.suffix.lower() for p in group]
        distinct = len(group) > 1 and len(set(suffixes)) == len(group)
        for path, suffix in zip(group, suffixes):
            folders[path] = out_dir / f"{path.stem}-{suffix.lstrip('.')}" if distinct else output_folder(out_dir, path)
    return folders


def separate_file(
    model: "Model",
    path: Path,
    out_dir: Path,
    *,
    stems: list[str] | None = None,
    fmt: str = "wav",
    bit_depth: str | None = None,
    overwrite: bool = False,
    options: EngineOptions | None = None,
    protected: frozenset[Path] = frozenset(),
    progress: Callable[[int, int], object] | None = None,
    folder: Path | None = None,
) -> FileResult:
    """Separate one file into ``out_dir/<stem>/<source>.<fmt>`` at the file's own rate and channels.

    Never raises for a bad input: the returned result carries a one-line error naming the file, and
    nothing is left behind for it. ``progress(frames_done, total_frames)`` is called as stems are written.
    """
    path = Path(path)
    result = FileResult(path)
    started = time.perf_counter()
    try:
        subtype = output_subtype(fmt, bit_depth)
        wanted = stems or model.sources
        unknown = [s for s in wanted if s not in model.sources]
        if unknown:
            raise SepkitError(f"unknown stem(s) {', '.join(unknown)}; this model separates {', '.join(model.sources)}")
        info = probe(path)
        result.duration = info.seconds
        folder = folder if folder is not None else output_folder(Path(out_dir), path)
        indices = [model.sources.index(s) for s in wanted]
        with StemWriter(
            folder, wanted, fmt=fmt, subtype=subtype, sample_rate=info.sample_rate, channels=info.channels,
            overwrite=overwrite, protected=protected,
        ) as writer:
            frames = run_pipeline(
                model.pipeline_spec(),
                read_blocks(info, max(1, int(BLOCK_SECONDS * info.sample_rate))),
                sample_rate=info.sample_rate,
                channels=info.channels,
                sink=lambda block: writer.write(block[indices]),
                options=options or model.options(),
                progress=None if progress is None else (lambda done: progress(done, info.frames)),
            )
            result.duration = frames / info.sample_rate
            result.outputs = writer.commit()
    except SepkitError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        result.error = message if message.startswith(str(path)) else f"{path}: {message}"
        result.disk_full = no_space(exc)
    except OSError as exc:  # permissions, a lost device: this file fails, the others may not
        result.error = f"{path}: cannot write the stems: {exc.strerror or exc}"
        result.disk_full = no_space(exc)
    except MemoryError:
        result.error = f"{path}: out of memory"
    result.seconds = time.perf_counter() - started
    return result
