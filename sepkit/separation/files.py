"""Separating audio files into stem files: ``OUTDIR/<input name>/<stem>.<ext>`` (or a ``--filename`` template).

Decoding, separation and writing stream block by block (see :mod:`sepkit.separation.engine`), so a
60-minute file needs about as much memory as a 3-minute one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import SepkitError
from ..io import no_space
from .engine import BLOCK_SECONDS, EngineOptions, output_names, run_pipeline
from .naming import DEFAULT_TEMPLATE, stem_targets
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
    #: The factor every stem was scaled by so that none clips (``--clip-mode rescale``; 1: none needed).
    gain: float = 1.0
    #: The sample rate of the stems (the input's, except Opus of another rate: 48 kHz).
    output_rate: int | None = None

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
            "rescaled_db": None if self.gain == 1.0 else round(20 * math.log10(self.gain), 2),
            "output_rate": self.output_rate,
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
    targets: dict[str, Path] | None = None,
    clip_mode: str = "clamp",
) -> FileResult:
    """Separate one file into ``out_dir/<name>/<stem>.<fmt>`` (or ``targets``: stem -> file) at the
    file's own rate and channels (Opus: 48 kHz unless the rate is one Opus has).

    ``stems``: which of the pipeline's outputs to write (the sources, or with ``options.two_stems``
    a source and ``no_<source>``). Never raises for a bad input: the returned result carries a
    one-line error naming the file, and nothing is left behind for it. ``progress(frames_done,
    total_frames)`` is called as stems are written.
    """
    path = Path(path)
    result = FileResult(path)
    started = time.perf_counter()
    try:
        options = options or model.options()
        names = output_names(model.sources, options)
        wanted = stems or names
        unknown = [s for s in wanted if s not in names]
        if unknown:
            raise SepkitError(f"unknown stem(s) {', '.join(unknown)}; this model separates {', '.join(names)}")
        if targets is None:
            targets = stem_targets(Path(out_dir), DEFAULT_TEMPLATE, track=path.stem, stems=wanted, ext=fmt, model="")
        writer_options = {"fmt": fmt, "subtype": output_subtype(fmt, bit_depth), "overwrite": overwrite,
                          "protected": protected, "clip_mode": clip_mode}
        _separate_into(result, model, options, names, targets, writer_options, progress)
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


def _separate_into(
    result: FileResult, model: "Model", options: EngineOptions, names: list[str], targets: dict[str, Path],
    writer_options: dict[str, object], progress: Callable[[int, int], object] | None,
) -> None:
    """Decode ``result.file`` block by block, separate it and write the ``targets`` stems (the
    pipeline's outputs ``names``); fills in ``result``, raises for a bad input."""
    info = probe(result.file)
    result.duration = info.seconds
    indices = [names.index(s) for s in targets]
    select = (lambda block: block) if indices == list(range(len(names))) else (lambda block: block[indices])
    with StemWriter(targets, sample_rate=info.sample_rate, channels=info.channels, **writer_options) as writer:  # type: ignore[arg-type]
        frames = run_pipeline(
            model.pipeline_spec(),
            read_blocks(info, max(1, int(BLOCK_SECONDS * info.sample_rate))),
            sample_rate=info.sample_rate,
            channels=info.channels,
            sink=lambda block: writer.write(select(block)),
            options=options,
            progress=None if progress is None else (lambda done: progress(done, info.frames)),
        )
        result.duration = frames / info.sample_rate
        result.outputs = writer.commit()
        result.gain = writer.gain
        result.output_rate = writer.sample_rate
