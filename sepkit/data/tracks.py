"""A track's stems as signed sums of decoded files, read for any span without loading the track.

The loader (:mod:`sepkit.data.loading`) resolves each stem of a track to files with gains
(:mod:`sepkit.data.derive`) and decodes every file once into the audio cache, where it stays as a
``.npy`` file. :class:`TrackAudio` keeps that plan: ``read(start, stop)`` assembles ``[S, C, n]``
for any span (zeros outside the track) with exactly the arithmetic of a whole-track load, so an
excerpt read here equals the same samples of the loaded track bit for bit.

Files of the cache are read with ``pread`` rather than through a memory map: mapped pages count in
the process's resident memory as they are touched, so a sampler reading random excerpts from a
large corpus would grow towards the corpus size; a read lands in the page cache, which the kernel
shares and reclaims, and keeps the process's own memory at the size of the batch.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Per stem, its files as (index among the track's distinct files, gain), in order: tracks that
#: share it are assembled together.
Signature = tuple[tuple[tuple[int, float], ...], ...]

#: Samples per block when a track is scanned for silent stems: the scan stops at the first block in
#: which every stem has sound, so a lazily loaded corpus costs a few seconds of audio per track.
SCAN_SAMPLES = 1 << 16


@dataclass(frozen=True)
class StemPart:
    """One file of a stem: ``audio`` is ``[C, L]`` float32 (a memory map of the audio cache, or an
    array in memory), scaled by ``gain`` before the files of the stem are summed."""

    audio: np.ndarray
    gain: float


class _Descriptors:
    """Open file descriptors of cache files, the least recently used closed beyond ``limit``
    (a corpus has more files than a process may keep open)."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._open: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str) -> int:
        with self._lock:
            fd = self._open.get(path)
            if fd is not None:
                self._open.move_to_end(path)
                return fd
            fd = os.open(path, os.O_RDONLY)
            self._open[path] = fd
            while len(self._open) > self.limit:
                _, old = self._open.popitem(last=False)
                os.close(old)
            return fd


_DESCRIPTORS = _Descriptors()


def read_rows(audio: np.ndarray, start: int, out: np.ndarray) -> None:
    """``out[c] = audio[c, start : start + out.shape[-1]]`` for every row ``c`` of ``out``, inside the
    array's bounds. A memory map of a ``.npy`` file is read with ``pread`` (its pages never enter this
    process's resident memory); an array in memory is copied. A one-row ``audio`` fills every row."""
    count = out.shape[-1]
    if count == 0:
        return
    rows = out.shape[0]
    filename = getattr(audio, "filename", None) if isinstance(audio, np.memmap) else None
    if filename is None or not audio.flags.c_contiguous or audio.dtype != out.dtype:
        source = audio[:, start : start + count]
        out[...] = source if source.shape[0] == rows else source[:1]
        return
    fd = _DESCRIPTORS.get(filename)
    item = audio.dtype.itemsize
    length = audio.shape[-1]
    for row in range(rows):
        source_row = row if audio.shape[0] > 1 else 0
        if source_row != row:
            out[row] = out[0]
            continue
        offset = audio.offset + (source_row * length + start) * item
        _pread_into(fd, out[row], offset)


def _pread_into(fd: int, target: np.ndarray, offset: int) -> None:
    wanted = target.nbytes
    if hasattr(os, "preadv"):
        got = os.preadv(fd, [memoryview(target).cast("B")], offset)
        if got != wanted:
            raise OSError(f"short read from the audio cache ({got} of {wanted} bytes)")
        return
    data = os.pread(fd, wanted, offset)  # pragma: no cover - systems without preadv
    if len(data) != wanted:
        raise OSError(f"short read from the audio cache ({len(data)} of {wanted} bytes)")
    target[...] = np.frombuffer(data, dtype=target.dtype)


def is_identity(signature: Signature) -> bool:
    """Every stem is one file of its own at gain 1: the files are the stems."""
    return all(parts == ((stem, 1.0),) for stem, parts in enumerate(signature))


def assemble(files: np.ndarray, signature: Signature, clip: bool, out: np.ndarray | None = None) -> np.ndarray:
    """``files`` ``[..., U, C, n]`` (a track's distinct files) -> stems ``[..., S, C, n]`` (into
    ``out`` when given): per stem the sum of gain x file, in order, then clipped to [-1, 1] when
    ``clip``. The one place where stems are assembled, for whole tracks and excerpts alike (so they
    agree bit for bit); ``files`` may be ``out`` itself when the signature :func:`is_identity`."""
    if is_identity(signature):
        if out is None:
            out = files.copy()
        elif out is not files:
            out[...] = files
        if clip:
            np.clip(out, -1.0, 1.0, out=out)
        return out
    shape = files.shape[:-3] + (len(signature),) + files.shape[-2:]
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    for stem, parts in enumerate(signature):
        # 0 + gain * file, then + gain * file per further part, in float32; written without the
        # zeros and the temporaries (x * 1 = x and x + (-1 * y) = x - y exactly).
        target = out[..., stem, :, :]
        if not parts:
            target[...] = 0.0
        for position, (index, gain) in enumerate(parts):
            source = files[..., index, :, :]
            if position == 0:
                np.multiply(source, np.float32(gain), out=target)
            elif gain == 1.0:
                np.add(target, source, out=target)
            elif gain == -1.0:
                np.subtract(target, source, out=target)
            else:
                np.add(target, np.float32(gain) * source, out=target)
        if clip:
            np.clip(target, -1.0, 1.0, out=target)
    return out


class TrackAudio:
    """``[S, C, length]`` stems of one track, assembled from their files on demand.

    ``stems`` lists, per stem, its :class:`StemPart` files; ``length`` is the track's common length
    (files may be a little longer); ``clip`` clips each stem after summing, as the loader does.
    """

    def __init__(self, stems: Sequence[Sequence[StemPart]], *, channels: int, length: int, clip: bool) -> None:
        self.stems = [list(parts) for parts in stems]
        self.channels = int(channels)
        self.length = int(length)
        self.clip = bool(clip)
        #: The distinct files (a derived stem reuses the mixture's), each read once per span.
        self.files: list[np.ndarray] = []
        index: dict[int, int] = {}
        layout = []
        for parts in self.stems:
            entries = []
            for part in parts:
                key = id(part.audio)
                if key not in index:
                    index[key] = len(self.files)
                    self.files.append(part.audio)
                entries.append((index[key], float(part.gain)))
            layout.append(tuple(entries))
        self.signature: Signature = tuple(layout)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.stems), self.channels, self.length)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        return len(self.stems) * self.channels * self.length * 4

    def read_files(self, start: int, out: np.ndarray) -> None:
        """Every distinct file's samples ``[start, start + n)`` into ``out`` ``[U, C, n]``; zeros where
        the span leaves the track."""
        count = out.shape[-1]
        low, high = max(start, 0), min(start + count, self.length)
        if low > start or high < start + count:
            out[...] = 0.0
        if high <= low:
            return
        for index, audio in enumerate(self.files):
            read_rows(audio, low, out[index, :, low - start : high - start])

    def read(self, start: int, stop: int) -> np.ndarray:
        """Stems ``[S, C, stop - start]`` of samples ``[start, stop)``; zeros outside the track."""
        files = np.empty((len(self.files), self.channels, max(stop - start, 0)), dtype=np.float32)
        self.read_files(start, files)
        return assemble(files, self.signature, self.clip, out=files if is_identity(self.signature) else None)

    def materialise(self) -> np.ndarray:
        """The whole track ``[S, C, length]`` in memory."""
        return self.read(0, self.length)

    def silent_stems(self) -> list[bool]:
        """Per stem: no sample is non-zero (read in blocks, so a long track is never in memory)."""
        silent = [True] * len(self.stems)
        for start in range(0, self.length, SCAN_SAMPLES):
            block = self.read(start, min(start + SCAN_SAMPLES, self.length))
            for stem in range(len(self.stems)):
                if silent[stem] and bool(np.any(block[stem])):
                    silent[stem] = False
            if not any(silent):
                break
        return silent

    def __repr__(self) -> str:
        return f"TrackAudio(stems={len(self.stems)}, channels={self.channels}, length={self.length})"
