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
from .resample import StreamResampler

#: --format -> (libsndfile major format, subtype of the lossy formats)
FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "mp3": "MP3", "opus": "OGG"}
#: Formats that compress with a perceptual codec: no bit depth, float samples into the encoder.
LOSSY = {"ogg": "VORBIS", "mp3": "MPEG_LAYER_III", "opus": "OPUS"}
#: --bit-depth -> libsndfile subtype, per lossless format
SUBTYPES = {
    "wav": {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"},
    "flac": {"16": "PCM_16", "24": "PCM_24"},
}
DEFAULT_BIT_DEPTH = "16"
#: The sample rates Opus supports; stems of other rates are written at 48 kHz.
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
#: --clip-mode: ``rescale`` (every stem of a track scaled by one factor so that none clips, only
#: when one would), ``clamp`` (samples beyond full scale set to it), ``none`` (written as they are:
#: float outputs only).
CLIP_MODES = ("rescale", "clamp", "none")
#: Input samples re-encoded at a time when a track is rescaled.
_REENCODE_FRAMES = 1 << 16


def output_subtype(fmt: str, bit_depth: str | None) -> str:
    """The libsndfile subtype for ``fmt`` and ``bit_depth`` (None: 16-bit PCM; the codec for lossy formats)."""
    if fmt not in FORMATS:
        raise SepkitError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt in LOSSY:
        if bit_depth is not None:
            raise SepkitError(f"--bit-depth does not apply to {fmt} ({LOSSY[fmt].title()} is lossy and has no bit depth)")
        return LOSSY[fmt]
    depth = bit_depth or DEFAULT_BIT_DEPTH
    choices = SUBTYPES[fmt]
    if depth not in choices:
        raise SepkitError(f"--bit-depth {depth} is not available for {fmt}; use one of {', '.join(choices)}")
    return choices[depth]


def check_clip_mode(clip_mode: str, subtype: str) -> str:
    """``--clip-mode`` checked against the sample format (before anything slow)."""
    if clip_mode not in CLIP_MODES:
        raise SepkitError(f"--clip-mode {clip_mode}: expected {', '.join(CLIP_MODES)}")
    if clip_mode == "none" and subtype.startswith("PCM"):
        raise SepkitError(
            "--clip-mode none needs float samples (--bit-depth 32f, or a lossy format): integer PCM cannot hold "
            "samples beyond full scale"
        )
    return clip_mode


def output_rate(fmt: str, sample_rate: int) -> int:
    """The rate stems of a ``sample_rate`` input are written at (the input's, except for Opus)."""
    return 48000 if fmt == "opus" and int(sample_rate) not in OPUS_RATES else int(sample_rate)


class StemWriter:
    """One output file per source, written block by block and committed all at once.

    ``targets``: source -> file. Refuses (before writing anything) a target that exists unless
    ``overwrite``, a target that is a folder, and a target that is one of the ``protected`` paths
    (the inputs). ``clip_mode`` (:data:`CLIP_MODES`): with ``rescale``, if any stem goes beyond full
    scale, all of them are re-encoded at :meth:`commit`, scaled by one factor (:attr:`gain`). The
    samples that needed it are kept unclipped in a float scratch file beside the stem: from the
    first block that clipped for lossless formats (the blocks before are read back from the stem:
    exact for float, within half a step of the bit depth for PCM), from the start for lossy ones (a
    decoded lossy stem is not the original). Opus stems of rates Opus lacks are resampled to 48 kHz
    on the way (:func:`output_rate`).
    """

    def __init__(
        self,
        targets: dict[str, Path],
        *,
        fmt: str,
        subtype: str,
        sample_rate: int,
        channels: int,
        overwrite: bool = False,
        protected: frozenset[Path] = frozenset(),
        clip_mode: str = "clamp",
    ) -> None:
        self.targets = {source: Path(target) for source, target in targets.items()}
        self.sources = list(self.targets)
        for target in self.targets.values():
            check_target(target, overwrite=overwrite, protected=protected)
        self._fmt, self._subtype, self._channels = fmt, subtype, int(channels)
        self.sample_rate = output_rate(fmt, sample_rate)
        self._resampler = (
            StreamResampler(sample_rate, self.sample_rate, len(self.sources) * self._channels)
            if self.sample_rate != int(sample_rate) else None
        )
        self._clip_mode = check_clip_mode(clip_mode, subtype)
        self.peak = 0.0
        #: The factor every stem was scaled by at commit (1.0: none needed it).
        self.gain = 1.0
        self._created: list[Path] = []
        self._atomic: dict[str, AtomicFile] = {}
        self._scratch: dict[str, AtomicFile] = {}
        self._scratch_from: int | None = None  # the first frame the scratch files hold
        self._frames = 0
        self._files: dict[str, sf.SoundFile] = {}
        for folder in dict.fromkeys(t.parent for t in self.targets.values()):
            self._make_folder(folder)
        try:
            for source, target in self.targets.items():
                self._atomic[source] = AtomicFile(target)  # removes what a killed run left of it
                self._files[source] = self._open(self._atomic[source])
            if self._clip_mode == "rescale" and fmt in LOSSY:
                self._start_scratch()
        except WriteError:
            self.abort()
            raise
        except Exception as exc:
            self.abort()
            raise SepkitError(f"{next(iter(self.targets.values())).parent}: cannot write {fmt} files: {exc}") from None

    def _make_folder(self, folder: Path) -> None:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise SepkitError(f"{folder}: cannot create the output folder: a file is in the way") from None
        except OSError as exc:
            raise SepkitError(f"{folder}: cannot create the output folder: {exc.strerror or exc}") from None
        self._created.extend(missing)  # deepest first: removed in this order if left empty

    def _open(self, atomic: AtomicFile) -> sf.SoundFile:
        return sf.SoundFile(
            str(atomic.temporary), mode="w", samplerate=self.sample_rate, channels=self._channels,
            format=FORMATS[self._fmt], subtype=self._subtype,
        )

    def _start_scratch(self) -> None:
        self._scratch_from = self._frames
        for source, target in self.targets.items():
            self._scratch[source] = AtomicFile(target.with_name(f".{target.name}.float"))

    def write(self, stems: np.ndarray) -> None:
        """``[N, C, n]`` float32 samples, one row per source in ``sources`` order."""
        if self._resampler is not None:
            stems = self._resample(stems, last=False)
        self._encode(stems)

    def _resample(self, stems: np.ndarray, *, last: bool) -> np.ndarray:
        assert self._resampler is not None
        n, c = len(self.sources), self._channels
        interleaved = np.ascontiguousarray(stems.reshape(n * c, -1).T) if stems.shape[-1] else np.zeros((0, n * c), np.float32)
        return self._resampler.process(interleaved, last=last).T.reshape(n, c, -1)

    def _encode(self, stems: np.ndarray) -> None:
        if stems.shape[-1] == 0:
            return
        frames = [_frames_first(stem) for stem in stems]
        if self._clip_mode == "rescale":
            peak = max(max(float(data.max()), -float(data.min())) for data in frames)
            self.peak = max(self.peak, peak)
            if peak > 1.0 and self._scratch_from is None:
                self._start_scratch()
        for source, data in zip(self.sources, frames):
            if self._scratch_from is not None:
                self._scratch[source].write(data.data)
            if self._clip_mode != "none":  # PCM would wrap around; clip at full scale instead
                np.clip(data, -1.0, 1.0, out=data)
            try:
                self._files[source].write(data)
            except (sf.SoundFileError, RuntimeError) as exc:
                raise self._failure(source, exc) from None
        self._frames += stems.shape[-1]

    def _failure(self, source: str, exc: Exception) -> SepkitError:
        """A libsndfile error as sepkit's: a full disk is a WriteError naming the stem."""
        cause = write_failure(exc, self.targets[source])
        if cause is not None:
            return WriteError(self.targets[source], cause)
        return SepkitError(f"{self.targets[source]}: cannot write {self._fmt}: {exc}")

    def _close(self) -> None:
        for source, handle in self._files.items():
            try:
                handle.close()
            except (sf.SoundFileError, RuntimeError) as exc:
                raise self._failure(source, exc) from None
        self._files = {}

    def _reencode(self) -> None:
        """Write every stem again, scaled by :attr:`gain`: the frames before the scratch files start
        read back from the stem itself, the rest from the scratch file."""
        assert self._scratch_from is not None
        gain, channels = np.float32(self.gain), self._channels
        for source, target in self.targets.items():
            old, new = self._atomic[source], AtomicFile(target)
            self._atomic[source] = new  # discarded by abort() if this fails
            try:
                with self._open(new) as handle:
                    if self._scratch_from:
                        with sf.SoundFile(str(old.temporary)) as written:
                            for block in written.blocks(_REENCODE_FRAMES, dtype="float32", always_2d=True, frames=self._scratch_from):
                                handle.write(np.clip(block * gain, -1.0, 1.0))
                    with open(self._scratch[source].temporary, "rb") as raw:
                        while block := raw.read(_REENCODE_FRAMES * channels * 4):
                            data = np.frombuffer(block, dtype=np.float32).reshape(-1, channels)
                            handle.write(np.clip(data * gain, -1.0, 1.0))
            except (sf.SoundFileError, RuntimeError) as exc:
                raise self._failure(source, exc) from None
            except OSError as exc:
                raise WriteError(target, exc) from None
            finally:
                old.discard()

    def commit(self) -> dict[str, Path]:
        """Close every file (the encoder's last bytes), rescale if needed, flush them to the disk and
        rename them into place."""
        if self._resampler is not None:
            self._encode(self._resample(np.zeros((len(self.sources), self._channels, 0), np.float32), last=True))
        self._close()
        if self._clip_mode == "rescale" and self.peak > 1.0:
            self.gain = 1.0 / self.peak
            self._reencode()
        for scratch in self._scratch.values():
            scratch.discard()
        for atomic in self._atomic.values():
            atomic.commit()
        return dict(self.targets)

    def abort(self) -> None:
        """Close and delete the temporary files (and the folders this writer created, if left empty)."""
        for handle in self._files.values():
            try:
                handle.close()
            except Exception:  # closing a broken encoder must not hide the original error
                pass
        self._files = {}
        for atomic in [*self._atomic.values(), *self._scratch.values()]:
            atomic.discard()
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "StemWriter":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None:
            self.abort()


def _frames_first(stem: np.ndarray) -> np.ndarray:
    """``[C, n]`` -> a new ``[n, C]`` float32 array, as libsndfile wants it (clipped in place later,
    so never a view of the caller's samples)."""
    data = np.ascontiguousarray(stem.T, dtype=np.float32)
    return data.copy() if np.may_share_memory(data, stem) else data


def check_target(target: Path, *, overwrite: bool, protected: frozenset[Path] = frozenset()) -> None:
    resolved = target.resolve()
    if resolved in protected:
        raise SepkitError(f"{target}: is one of the inputs; refusing to overwrite an input (choose another -o)")
    if target.is_dir():
        raise SepkitError(f"{target}: a folder is in the way of this output file")
    if target.exists() and not overwrite:
        raise SepkitError(f"{target}: already exists (pass --overwrite to replace it)")
