"""Reading audio files block by block, so that a long file never sits in memory whole.

The header checks are :func:`sepkit.audio.audio_info`'s (missing, unreadable, non-audio, empty and
truncated files); this module adds block-wise decoding that notices a file ending early or failing
to decode part-way. NaN/inf samples are found by the engine as the blocks stream through. Every
error is a one-line :class:`~sepkit.errors.SepkitError` that starts with the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..audio import AUDIO_EXTENSIONS, AudioError, AudioInfo, audio_info, is_audio_file, quiet_decoder

__all__ = ["AUDIO_EXTENSIONS", "AudioInfo", "find_audio_files", "probe", "read_blocks"]

#: Formats whose frame count in the header is an estimate (reading fewer frames proves nothing).
_ESTIMATED_LENGTH = frozenset({"MP3"})


def find_audio_files(folder: Path) -> list[Path]:
    """Audio files under ``folder`` (recursively, sorted; hidden files and folders skipped)."""
    return [
        path
        for path in sorted(folder.rglob("*"))
        if not any(part.startswith(".") for part in path.relative_to(folder).parts) and is_audio_file(path)
    ]


def _decoded_until(handle: object, yielded: int) -> int:
    """How far the decoder got before it failed (libsndfile's position, which includes the frames of
    the failed block decoded before the damage), never less than what was delivered."""
    try:
        return max(int(handle.tell()), yielded)  # type: ignore[attr-defined]
    except Exception:  # a decoder in an error state may not answer
        return yielded


def probe(path: Path) -> AudioInfo:
    """The file's header, checked; errors name the file."""
    if path.exists() and not path.is_file():
        raise AudioError(path, "not a regular file")
    if path.exists() and path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    return audio_info(path)


def read_blocks(info: AudioInfo, block_frames: int) -> Iterator[np.ndarray]:
    """``[n, channels]`` float32 blocks of the whole file; a file that ends early or cannot be
    decoded to the end raises :class:`AudioError` (after the blocks before the damage)."""
    import soundfile

    path = info.path
    read = 0
    with quiet_decoder(info.format), soundfile.SoundFile(str(path)) as handle:
        while True:
            try:
                block = handle.read(block_frames, dtype="float32", always_2d=True)
            except (soundfile.SoundFileError, RuntimeError, OSError) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                where = _decoded_until(handle, read)
                raise AudioError(
                    path, f"truncated or corrupt audio: decoding fails at {where / info.sample_rate:.2f} s "
                    f"of {info.seconds:.2f} s ({reason.removeprefix('Error : ')})"
                ) from None
            if block.shape[0] == 0:
                break
            read += block.shape[0]
            yield block
    if read == 0:
        raise AudioError(path, "the file holds no samples")
    if read < info.frames and info.format not in _ESTIMATED_LENGTH:
        raise AudioError(path, f"truncated file: header says {info.frames} frames, decoded {read}")
