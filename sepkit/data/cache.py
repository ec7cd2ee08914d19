"""A disk cache of decoded, resampled audio, so that a second run skips decoding.

Each entry is one file (or one channel of it) at one sample rate and channel count, stored as a
``.npy`` array (read back memory-mapped) plus a small ``.json`` with the file's own header values.
The key is ``(absolute path, size, mtime, channel, sample rate, channels, resampler quality,
format version)``: editing or replacing a file changes its size or mtime and so its key. Clipping
is not part of the key because entries are stored unclipped; the loader clips the final stems.

Location: the ``cache_dir`` argument, else ``$SEPKIT_CACHE_DIR``, else the user cache folder
(``platformdirs.user_cache_dir("sepkit")`` when platformdirs is installed, else
``$XDG_CACHE_HOME/sepkit`` or ``~/.cache/sepkit``). An unwritable cache is not an error: loading
goes on without it (one warning).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import RESAMPLE_QUALITY, AudioInfo, read_resampled
from ..io import AtomicFile, write_bytes
from ..userdirs import CACHE_ENV, cache_root
FORMAT_VERSION = 1
log = logging.getLogger("sepkit.data")


def default_cache_dir() -> Path:
    """``$SEPKIT_CACHE_DIR``, else the user's cache folder for sepkit, plus ``audio/``."""
    return cache_root() / "audio"


@dataclass(frozen=True)
class FileAudio:
    """One decoded file: ``[C, L]`` float32 at the requested rate, and its header values."""

    audio: np.ndarray
    info: AudioInfo


class AudioCache:
    """Decodes each (file, channel, rate, channels) once: from the disk cache when it holds it.

    ``directory=None`` keeps nothing on disk. ``hits``/``misses`` count disk-cache lookups (a miss
    decodes the file).
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else None
        self.hits = 0
        self.misses = 0
        self._writable = True

    def key(self, path: Path, *, channel: int | None, sample_rate: int, channels: int | None) -> str:
        resolved = Path(path).resolve()
        stat = resolved.stat()
        parts = [str(resolved), stat.st_size, stat.st_mtime_ns, channel, int(sample_rate), channels, RESAMPLE_QUALITY, FORMAT_VERSION]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:40]

    def load(self, path: Path, *, channel: int | None, sample_rate: int, channels: int | None) -> FileAudio:
        """The file decoded, channel-mapped and resampled (unclipped); raises ``AudioError``."""
        if self.directory is None or not Path(path).exists():
            audio, info = read_resampled(path, sample_rate=sample_rate, channels=channels, channel=channel)
            return FileAudio(audio, info)
        key = self.key(path, channel=channel, sample_rate=sample_rate, channels=channels)
        cached = self._read(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        audio, info = read_resampled(path, sample_rate=sample_rate, channels=channels, channel=channel)
        self._write(key, audio, info)
        # the entry just written, memory-mapped: a lazily loaded track then reads from disk too
        return self._read(key) or FileAudio(audio, info)

    def _paths(self, key: str) -> tuple[Path, Path]:
        assert self.directory is not None
        folder = self.directory / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.json"

    def _read(self, key: str) -> FileAudio | None:
        array_path, info_path = self._paths(key)
        if not (array_path.exists() and info_path.exists()):
            return None
        try:
            info = AudioInfo(**json.loads(info_path.read_text()))
            audio = np.load(array_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, TypeError, json.JSONDecodeError):
            return None  # a damaged entry is decoded again and rewritten
        if audio.dtype != np.float32 or audio.ndim != 2:
            return None
        return FileAudio(audio, info)

    def _write(self, key: str, audio: np.ndarray, info: AudioInfo) -> None:
        if not self._writable:
            return
        array_path, info_path = self._paths(key)
        try:
            array_path.parent.mkdir(parents=True, exist_ok=True)
            # Write beside the target and rename: a killed run never leaves a half-written entry.
            with AtomicFile(array_path) as handle:
                np.save(handle, audio, allow_pickle=False)  # type: ignore[arg-type]
            write_bytes(info_path, json.dumps(info.__dict__).encode())
        except OSError as exc:
            self._writable = False
            log.warning("audio cache %s is not writable (%s); continuing without it", self.directory, exc)

