"""The separation engine: input-rate audio blocks in, separated input-rate audio blocks out.

Pipeline (every stage streams, so memory is bounded by the chunk and the batch, not the input):

  input blocks [n, C_in] -> (downmix) -> resample to the model rate -> clip -> channel lanes
  -> :class:`~sepkit.separation.streaming.StreamingSeparator` (encode, windows, separator,
  overlap-add, [Wiener], decode) -> resample back to the input rate -> recombine
  (:mod:`sepkit.separation.recombine`) -> blocks [K, C_in, n] to a sink, trimmed to the input length.

The stages live in their own modules: :mod:`~sepkit.separation.options` (what to do, validated once),
:mod:`~sepkit.separation.channels`, :mod:`~sepkit.separation.resample`,
:mod:`~sepkit.separation.streaming` and :mod:`~sepkit.separation.recombine`; this module checks
that the options fit the model and joins the stages for one input stream (:func:`run_pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import SepkitError, ShapeError
from ..representation import Representation
from ..separator import Separator
from .channels import ChannelLayout
from .defaults import BLOCK_SECONDS, DEFAULT_CHUNK_SECONDS
from .options import CHANNEL_MODES, ChannelMode, EngineOptions
from .recombine import HIGH_BAND_MODES, Recombiner, SampleQueue
from .resample import StreamResampler
from .streaming import ShiftedSeparator, StreamingSeparator, make_streamer
from .wiener import check_wiener

__all__ = [
    "BLOCK_SECONDS",
    "CHANNEL_MODES",
    "DEFAULT_CHUNK_SECONDS",
    "ChannelLayout",
    "ChannelMode",
    "EngineOptions",
    "PipelineSpec",
    "ShiftedSeparator",
    "StreamingSeparator",
    "check_compatible",
    "high_band_mode",
    "output_names",
    "run_pipeline",
]

Sink = Callable[[np.ndarray], None]


@dataclass(frozen=True)
class PipelineSpec:
    """What the pipeline needs to know about a model (kept small so the engine needs no Model)."""

    representation: Representation
    separator: Separator
    sources: tuple[str, ...]
    sample_rate: int
    channels: int
    clip: bool
    channel_mode: str


def high_band_mode(option: str, sources: tuple[str, ...] | list[str]) -> str | int:
    """``share``/``drop``, or the index of the source named by ``option``."""
    if option in HIGH_BAND_MODES:
        return option
    if option in sources:
        return list(sources).index(option)
    raise SepkitError(f"--high-band {option}: expected share, drop or one of the sources ({', '.join(sources)})")


def output_names(sources: tuple[str, ...] | list[str], options: EngineOptions) -> list[str]:
    """The names of what the pipeline's sink receives, in order: the sources, or a source and its complement."""
    if options.two_stems is None:
        return list(sources)
    if options.two_stems not in sources:
        raise SepkitError(f"--two-stems {options.two_stems}: not a source of this model ({', '.join(sources)})")
    return [options.two_stems, f"no_{options.two_stems}"]


def check_compatible(spec: PipelineSpec, options: EngineOptions) -> None:
    """What :class:`EngineOptions` cannot check alone: whether they fit this model (the Wiener
    filter needs a magnitude spectrogram, ``two_stems`` and a source-named ``high_band`` a source)."""
    if options.wiener:
        check_wiener(spec.representation, type(spec.representation).__name__)
    output_names(spec.sources, options)
    high_band_mode(options.high_band, spec.sources)


def run_pipeline(
    spec: PipelineSpec,
    blocks: Iterable[np.ndarray],
    *,
    sample_rate: int,
    channels: int,
    sink: Sink,
    options: EngineOptions = EngineOptions(),
    progress: Callable[[int], Any] | None = None,
) -> int:
    """Separate a stream of ``[n, channels]`` float blocks at ``sample_rate``.

    ``sink`` receives consecutive ``[K, channels, n]`` float32 blocks at ``sample_rate`` whose total
    length equals the input's, one row per :func:`output_names` entry; ``progress`` receives the
    number of frames handed to the sink so far (it moves a chunk at a time). Returns the number of
    input frames. Raises :class:`SepkitError` for options that do not fit the model, empty input or
    NaN/inf samples.
    """
    check_compatible(spec, options)
    run = _PipelineRun(spec, options, sample_rate=sample_rate, channels=channels, sink=sink, progress=progress)
    for block in blocks:
        run.push(block)
    return run.finish()


class _PipelineRun:
    """One input stream through the pipeline: the stages and the positions they share.

    ``read``: input frames received; ``written``: input-rate frames handed to the sink;
    ``estimated``: model-rate samples the streamer has returned. With a recombiner that needs what
    the model heard, ``heard`` keeps the model's input until its estimates come back.
    """

    def __init__(
        self,
        spec: PipelineSpec,
        options: EngineOptions,
        *,
        sample_rate: int,
        channels: int,
        sink: Sink,
        progress: Callable[[int], Any] | None,
    ) -> None:
        self.spec, self.sample_rate, self.channels = spec, sample_rate, channels
        self.sink, self.progress = sink, progress
        self.layout = ChannelLayout.choose(channels, spec.channels, options.channel_mode or spec.channel_mode)
        self.num_sources = len(spec.sources)
        self.recombiner = Recombiner(
            sources=self.num_sources,
            input_rate=sample_rate,
            model_rate=spec.sample_rate,
            separated_channels=self.layout.separated_channels,
            high_band=high_band_mode(options.high_band, spec.sources),
            complement=None if options.two_stems is None else spec.sources.index(options.two_stems),
            silence_db=options.silence_db,
        )
        self.with_seen = self.recombiner.needs_seen
        self.rows = self.num_sources + 1 if self.with_seen else self.num_sources
        self.down = StreamResampler(sample_rate, spec.sample_rate, self.layout.resampled_channels)
        self.up = StreamResampler(spec.sample_rate, sample_rate, self.rows * self.layout.separated_channels)
        self.streamer = make_streamer(spec.representation, spec.separator, options)
        self.heard = SampleQueue()  # [lanes, model channels, m]
        self.block_samples = max(1, int(BLOCK_SECONDS * spec.sample_rate))
        self.read = self.written = self.estimated = 0

    def push(self, block: np.ndarray) -> None:
        """One input block ``[n, channels]``: checked, resampled and handed to the streamer."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ShapeError(f"expected audio blocks [frames, {self.channels}], got {list(block.shape)}")
        if not np.isfinite(block).all():
            position = self.read + int(np.nonzero(~np.isfinite(block).all(axis=1))[0][0])
            raise SepkitError(f"contains NaN or infinite samples (first at {position / self.sample_rate:.3f} s)")
        self.read += block.shape[0]
        self.recombiner.push_input(block)
        resampled = self.down.process(self.layout.before_resampling(block))
        if resampled.shape[0]:
            self._emit(self.streamer.push(self._model_input(resampled)), last=False)

    def finish(self) -> int:
        """The end of the input: flush every stage; returns the number of input frames."""
        if self.read == 0:
            raise SepkitError("contains no audio samples")
        tail = self.down.process(np.zeros((0, self.layout.resampled_channels), dtype=np.float32), last=True)
        if tail.shape[0]:
            self._emit(self.streamer.push(self._model_input(tail)), last=False)
        self._emit(self.streamer.finish(), last=True)
        if self.written < self.read:  # resampling back can come out a sample or two short: the input goes to the stems
            missing = self.read - self.written
            stems = np.zeros((self.num_sources, self.channels, missing), dtype=np.float32)
            seen = np.zeros((self.channels, missing), dtype=np.float32) if self.with_seen else None
            self.sink(self.recombiner(stems, seen, self.written))
            if self.progress is not None:
                self.progress(self.read)
        return self.read

    def _model_input(self, resampled: np.ndarray) -> np.ndarray:
        """Model-rate ``[n, C']`` -> the streamer's lanes ``[lanes, model channels, n]`` (clipped)."""
        if self.spec.clip:  # not in place: without resampling this is the caller's array
            resampled = np.clip(resampled, -1.0, 1.0)
        lanes = self.layout.to_lanes(resampled)
        if self.with_seen:
            self.heard.push(lanes)
        return lanes

    def _emit(self, model_rate: np.ndarray | None, last: bool) -> None:
        """Pass a chunk's estimates on in blocks of BLOCK_SECONDS: what follows (resampling,
        recombining, writing) then holds one block, not one chunk, in memory."""
        if model_rate is None:
            if last:
                self._emit_block(np.zeros((1, self.num_sources, self.spec.channels, 0), dtype=np.float32), True)
            return
        m, step = model_rate.shape[-1], self.block_samples
        for lo in range(0, max(m, 1), step):
            self._emit_block(model_rate[..., lo : lo + step], last and lo + step >= m)

    def _emit_block(self, model_rate: np.ndarray, last: bool) -> None:
        """Model-rate estimates ``[lanes, N, C, m]`` -> input rate -> recombined -> the sink."""
        if self.with_seen:
            model_rate = np.concatenate([model_rate, self._heard_for(model_rate)], axis=1)
        self.estimated += model_rate.shape[-1]
        separated = self.layout.from_lanes(model_rate)  # [rows, C', m]
        self.recombiner.push_estimates(separated[: self.num_sources])
        back = self.up.process(separated.reshape(-1, separated.shape[-1]).T, last=last)  # [m', rows * C']
        block = back.T.reshape(self.rows, self.layout.separated_channels, -1)
        if last or self.written + block.shape[-1] > self.read:
            block = block[..., : max(0, self.read - self.written)]
        if block.shape[-1]:
            block = np.ascontiguousarray(self.layout.to_output(block), dtype=np.float32)
            stems, seen = (block[: self.num_sources], block[self.num_sources]) if self.with_seen else (block, None)
            self.sink(self.recombiner(stems, seen, self.written))
            self.written += block.shape[-1]
            if self.progress is not None:
                self.progress(self.written)

    def _heard_for(self, model_rate: np.ndarray) -> np.ndarray:
        """What the model heard for these estimates, as one more row: ``[lanes, 1, C, m]``."""
        m = model_rate.shape[-1]
        if m:
            mixture = self.heard.read(self.estimated, self.estimated + m)
            self.heard.forget_before(self.estimated + m)
        else:
            mixture = np.zeros((model_rate.shape[0], self.spec.channels, 0), dtype=np.float32)
        return mixture.reshape(mixture.shape[0], 1, *mixture.shape[1:])
