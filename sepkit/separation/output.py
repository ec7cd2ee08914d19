"""Writing stems atomically: every stem goes to a hidden temporary file in its target folder
(:class:`sepkit.io.AtomicFile`) and is renamed into place only when all of them are complete, so an
interrupted or failed run leaves no truncated stem (and no stem of a half-separated song); the
temporary files a killed run leaves are removed by the next run that writes the same stems."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import numpy as np
import soundfile as sf

from ..audio import write_failure
from ..errors import SepkitError
from ..io import AtomicFile, WriteError

#: --format -> libsndfile major format
FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}
#: --bit-depth -> libsndfile subtype, per format
SUBTYPES = {
    "wav": {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"},
    "flac": {"16": "PCM_16", "24": "PCM_24"},
    "ogg": {},
}
DEFAULT_BIT_DEPTH = "16"


def output_subtype(fmt: str, bit_depth: str | None) -> str:
    """The libsndfile subtype for ``fmt`` and ``bit_depth`` (None: 16-bit PCM, Vorbis for ogg)."""
    if fmt not in FORMATS:
        raise SepkitError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "ogg":
        if bit_depth is not None:
            raise SepkitError("--bit-depth does not apply to ogg (Ogg Vorbis is lossy and has no bit depth)")
        return "VORBIS"
    depth = bit_depth or DEFAULT_BIT_DEPTH
    choices = SUBTYPES[fmt]
    if depth not in choices:
        raise SepkitError(f"--bit-depth {depth} is not available for {fmt}; use one of {', '.join(choices)}")
    return choices[depth]


class StemWriter:
    """One output file per source, written block by block and committed all at once.

    Refuses (before writing anything) a target that exists unless ``overwrite``, a target that is a
    folder, and a target that is one of the ``protected`` paths (the inputs).
    """

    def __init__(
        self,
        folder: Path,
        sources: list[str],
        *,
        fmt: str,
        subtype: str,
        sample_rate: int,
        channels: int,
        overwrite: bool = False,
        protected: frozenset[Path] = frozenset(),
    ) -> None:
        self.folder = Path(folder)
        self.sources = list(sources)
        self.targets = {s: self.folder / f"{s}.{fmt}" for s in self.sources}
        for target in self.targets.values():
            check_target(target, overwrite=overwrite, protected=protected)
        self._clip = subtype.startswith("PCM")
        self._created_folder = not self.folder.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise SepkitError(f"{self.folder}: cannot create the output folder: a file is in the way") from None
        except OSError as exc:
            raise SepkitError(f"{self.folder}: cannot create the output folder: {exc.strerror or exc}") from None
        self._fmt = fmt
        self._atomic: dict[str, AtomicFile] = {}
        self._files: dict[str, sf.SoundFile] = {}
        try:
            for source, target in self.targets.items():
                self._atomic[source] = AtomicFile(target)  # removes what a killed run left of it
                self._files[source] = sf.SoundFile(
                    str(self._atomic[source].temporary), mode="w", samplerate=int(sample_rate), channels=int(channels),
                    format=FORMATS[fmt], subtype=subtype,
                )
        except WriteError:
            self.abort()
            raise
        except Exception as exc:
            self.abort()
            raise SepkitError(f"{self.folder}: cannot write {fmt} files: {exc}") from None

    def write(self, stems: np.ndarray) -> None:
        """``[N, C, n]`` float32 samples, one row per source in ``sources`` order."""
        for source, stem in zip(self.sources, stems):
            data = stem.T
            if self._clip:  # PCM would wrap around; clip at full scale instead
                data = np.clip(data, -1.0, 1.0)
            try:
                self._files[source].write(np.ascontiguousarray(data))
            except (sf.SoundFileError, RuntimeError) as exc:
                raise self._failure(source, exc) from None

    def _failure(self, source: str, exc: Exception) -> SepkitError:
        """A libsndfile error as sepkit's: a full disk is a WriteError naming the stem."""
        cause = write_failure(exc, self.targets[source])
        if cause is not None:
            return WriteError(self.targets[source], cause)
        return SepkitError(f"{self.targets[source]}: cannot write {self._fmt}: {exc}")

    def commit(self) -> dict[str, Path]:
        """Close every file (the encoder's last bytes), flush them to the disk, rename them into place."""
        for source, handle in self._files.items():
            try:
                handle.close()
            except (sf.SoundFileError, RuntimeError) as exc:
                raise self._failure(source, exc) from None
        self._files = {}
        for atomic in self._atomic.values():
            atomic.commit()
        return dict(self.targets)

    def abort(self) -> None:
        """Close and delete the temporary files (and the folder, if this writer created it and it is empty)."""
        for handle in self._files.values():
            try:
                handle.close()
            except Exception:  # closing a broken encoder must not hide the original error
                pass
        self._files = {}
        for atomic in getattr(self, "_atomic", {}).values():
            atomic.discard()
        if self._created_folder:
            try:
                self.folder.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "StemWriter":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None:
            self.abort()


def check_target(target: Path, *, overwrite: bool, protected: frozenset[Path] = frozenset()) -> None:
    resolved = target.resolve()
    if resolved in protected:
        raise SepkitError(f"{target}: is one of the inputs; refusing to overwrite an input (choose another -o)")
    if target.is_dir():
        raise SepkitError(f"{target}: a folder is in the way of this output file")
    if target.exists() and not overwrite:
        raise SepkitError(f"{target}: already exists (pass --overwrite to replace it)")
