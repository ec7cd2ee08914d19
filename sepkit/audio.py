"""Reading audio files: decode with soundfile, check, pick channels, resample with soxr, clip.

Every problem with a file becomes an :class:`AudioError` whose one-line message names the file:
unreadable or unknown format, no samples, truncated, NaN or infinite samples, or a channel layout
that cannot be mapped to the channels asked for.

Order of operations (the paper's): decode -> channel selection / downmix (mean of channels) ->
resample (soxr 'HQ', the quality librosa uses by default) -> clip to [-1, 1].
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile
import soxr

from .errors import SepkitError
from .io import WriteError, write_with

#: Extensions read through libsndfile (mp3 needs libsndfile >= 1.1).
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".au", ".w64", ".rf64", ".caf")

#: soxr quality used for every resampling ("HQ" is librosa's default "soxr_hq").
RESAMPLE_QUALITY = "HQ"

_TRUNCATED_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


class AudioError(SepkitError):
    """A file that cannot be used as audio; the message starts with the file's path."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says (no decoding)."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


@contextmanager
def quiet_decoder(kind: str) -> Iterator[None]:
    """Silence what a decoder prints itself: mpg123 (libsndfile's MP3 decoder) writes notes about a
    damaged stream straight to file descriptor 2, and sepkit reports the damage in one line of its
    own. Other formats are left alone."""
    if kind.upper() != "MP3":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def is_audio_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def audio_info(path: str | Path) -> AudioInfo:
    """Read a file's header; raise :class:`AudioError` when it is missing, unreadable, empty or truncated."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "no such file")
    try:
        with quiet_decoder(path.suffix.lstrip(".")), soundfile.SoundFile(str(path)) as handle:
            info = AudioInfo(
                path=str(path),
                sample_rate=int(handle.samplerate),
                channels=int(handle.channels),
                frames=int(handle.frames),
                format=str(handle.format),
            )
            log = handle.extra_info
    except (soundfile.SoundFileError, RuntimeError, OSError) as exc:
        reason = _reason(exc)
        if "does not exist or is not a regular file" in reason and path.is_file():
            # libsndfile's words when a decoder (mpg123 for .mp3) rejects the bytes of a file that exists
            reason = f"not decodable audio: no {path.suffix.lstrip('.').upper() or 'audio'} stream in it"
        raise AudioError(path, f"cannot read audio ({reason})") from None
    if info.frames <= 0:
        raise AudioError(path, "the file holds no samples")
    declared = _TRUNCATED_DATA.search(log or "")
    if declared and int(declared.group(1)) > int(declared.group(2)) and int(declared.group(1)) < 0xFFFFFFFF:
        raise AudioError(
            path,
            f"truncated file: its header declares {declared.group(1)} bytes of audio, "
            f"only {declared.group(2)} are present",
        )
    return info


def write_failure(exc: BaseException, path: str | Path) -> OSError | None:
    """The operating-system error behind a libsndfile write failure, if there was one.

    libsndfile reports a failed ``write()`` (a full disk, a lost device) as "System error." and
    drops errno; the errno of its last call is still in cffi's thread-local copy.
    """
    if isinstance(exc, OSError):
        return exc
    try:
        from soundfile import _ffi  # the cffi handle soundfile calls libsndfile through

        code = int(_ffi.errno)
    except Exception:  # another soundfile: no errno to recover
        code = 0
    if "System error" in str(exc) and code:
        return OSError(code, os.strerror(code), str(path))
    return None


def write_wav(path: str | Path, frames: np.ndarray, sample_rate: int, *, subtype: str = "FLOAT") -> Path:
    """Write ``[L, C]`` samples as a WAV file atomically; a failure is a :class:`~sepkit.io.WriteError`."""
    def write(temporary: Path) -> None:
        try:
            soundfile.write(str(temporary), frames, int(sample_rate), subtype=subtype, format="WAV")
        except (soundfile.SoundFileError, RuntimeError) as exc:
            raise WriteError(path, write_failure(exc, path) or _reason(exc)) from None

    return write_with(path, write)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # soundfile repeats the path ("Error opening 'x.wav': Format not recognised."); keep the reason.
    return text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text


def decode(path: str | Path, *, channel: int | None = None) -> tuple[np.ndarray, AudioInfo]:
    """Decode a whole file to float32 ``[C, L]`` at its own rate (``channel`` picks one channel).

    Raises :class:`AudioError` for unreadable, empty, truncated or non-finite files.
    """
    info = audio_info(path)
    if channel is not None and not 0 <= channel < info.channels:
        raise AudioError(path, f"has {info.channels} channel(s), channel {channel} was asked for")
    try:
        with quiet_decoder(info.format):
            data, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, OSError) as exc:
        raise AudioError(path, f"cannot decode audio ({_reason(exc)})") from None
    if data.shape[0] < info.frames:
        raise AudioError(path, f"truncated file: header says {info.frames} frames, decoded {data.shape[0]}")
    if data.shape[0] == 0:
        raise AudioError(path, "the file holds no samples")
    audio = data.T if channel is None else data[:, channel][None, :]
    if not np.isfinite(audio).all():
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise AudioError(path, f"{bad} NaN or infinite sample(s)")
    return np.ascontiguousarray(audio, dtype=np.float32), info


def match_channels(audio: np.ndarray, channels: int | None, path: str | Path = "") -> np.ndarray:
    """``[C_file, L]`` -> ``[channels, L]``: keep, downmix to mono (mean), or copy mono to every channel."""
    have = audio.shape[0]
    if channels is None or channels == have:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True, dtype=np.float32)
    if have == 1:
        return np.repeat(audio, channels, axis=0)
    raise AudioError(path, f"has {have} channels; cannot map them to {channels} (only 1 -> N and N -> 1 are defined)")


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample ``[C, L]`` float32 with soxr (band-limited, quality :data:`RESAMPLE_QUALITY`)."""
    if source_rate == target_rate:
        return audio
    out = soxr.resample(np.ascontiguousarray(audio.T), source_rate, target_rate, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1, audio.shape[0]).T)


def read_resampled(
    path: str | Path, *, sample_rate: int, channels: int | None, channel: int | None = None
) -> tuple[np.ndarray, AudioInfo]:
    """Decode, map channels and resample (no clipping): what the data cache stores."""
    audio, info = decode(path, channel=channel)
    audio = match_channels(audio, channels, path)
    audio = resample(audio, info.sample_rate, int(sample_rate))
    if audio.shape[-1] == 0:
        raise AudioError(path, f"too short: no samples left after resampling to {sample_rate} Hz")
    return audio, info


def load_audio(
    path: str | Path,
    *,
    sample_rate: int,
    channels: int | None,
    clip: bool = True,
    channel: int | None = None,
) -> np.ndarray:
    """A file as float32 ``[C, L]`` at ``sample_rate``.

    ``channels=1`` downmixes by the mean of the channels, ``None`` keeps the file's channels, N > 1
    keeps an N-channel file or copies a mono one. ``channel`` reads only that channel of the file
    (iKala keeps accompaniment and voice in separate channels). ``clip`` clips to [-1, 1] after
    resampling, as the paper does.
    """
    audio, _ = read_resampled(path, sample_rate=sample_rate, channels=channels, channel=channel)
    if clip:
        np.clip(audio, -1.0, 1.0, out=audio)
    return audio


def is_silent(audio: np.ndarray, threshold: float = 0.0) -> bool:
    """True when no sample's magnitude exceeds ``threshold`` (digital silence by default)."""
    return audio.size == 0 or float(np.max(np.abs(audio))) <= threshold
