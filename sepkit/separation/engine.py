"""The separation engine: input-rate audio blocks in, separated input-rate audio blocks out.

Pipeline (every stage streams, so memory is bounded by the chunk and the batch, not the input):

  input blocks [n, C_in] -> (downmix) -> resample to the model rate -> clip -> channel lanes
  -> :class:`StreamingSeparator` (encode, windows, separator, overlap-add, [Wiener], decode)
  -> resample back to the input rate -> blocks [N, C_in, n] to a sink, trimmed to the input length.

:class:`StreamingSeparator` cuts the model-rate signal into long chunks (``chunk_seconds``) that
overlap by the frames the representation, the separator's context and the overlap-add need, and
takes its windows from the same global :class:`~sepkit.separation.windows.WindowPlan` as a
whole-signal pass; so the output equals one pass over the whole signal (up to float rounding from
different batch compositions), as long as a feature frame depends on no more than
:func:`frame_support` samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal

import numpy as np
import torch

from ..errors import SepkitError, ShapeError
from ..representation import Representation
from ..separator import Separator
from .defaults import BLOCK_SECONDS, DEFAULT_CHUNK_SECONDS, DEFAULT_PRECISION
from .precision import check_precision, prepare_separator, resolve_precision
from .recombine import HIGH_BAND_MODES, SILENCE_DB, Recombiner, SampleQueue
from .resample import StreamResampler
from .wiener import soft_mask_wiener
from .windows import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP, WindowPlan, check_overlap, overlap_add

__all__ = ["BLOCK_SECONDS", "DEFAULT_CHUNK_SECONDS", "EngineOptions", "StreamingSeparator", "run_pipeline"]

ChannelMode = Literal["per-channel", "downmix"]
CHANNEL_MODES: tuple[str, ...] = ("per-channel", "downmix")


@dataclass(frozen=True)
class EngineOptions:
    """How to separate.

    ``overlap``: fraction of each output window shared with the next (0: the paper's layout).
    ``batch_size``: windows per forward pass. ``wiener``: apply the soft-mask Wiener post-filter
    (:mod:`sepkit.separation.wiener`). ``channel_mode``: for a mono model and a multichannel input,
    ``per-channel`` separates every channel on its own (as a batch; stereo stays stereo) and
    ``downmix`` separates the mean of the channels and writes it to every channel; ``None`` takes the
    model's own setting (metadata key ``channel_mode``, else per-channel). ``chunk_seconds``: length
    of the chunks a long input is cut into (the result does not depend on it). ``precision``: the
    separator's arithmetic, ``fp32``, ``bf16`` or ``auto`` (bf16 where the device has fast bf16, see
    :mod:`sepkit.separation.precision`).

    After the model (:mod:`sepkit.separation.recombine`): ``high_band``: what happens to what the
    model does not hear, ``drop`` (the model's own estimates: the default here, and what
    ``sepkit evaluate`` scores), ``share`` (the stems add up to the input: the band above the model's
    Nyquist frequency shared out by each source's top-octave power, the rest of the residual by
    power; the default of ``sepkit separate`` and :func:`sepkit.separate`) or a source name (that
    source gets the whole high band). ``two_stems``: a source name, to get that source and the input
    minus it. ``silence_db``: input below this level (RMS per 10 ms, dBFS) gives silent stems (None:
    off). ``shifts``: test-time augmentation, the average of that many passes over the input delayed
    by random fractions of a window (1: one plain pass); ``seed`` picks the delays.
    """

    overlap: float = DEFAULT_OVERLAP
    batch_size: int = DEFAULT_BATCH_SIZE
    wiener: bool = False
    channel_mode: ChannelMode | None = None
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS
    precision: str = DEFAULT_PRECISION
    high_band: str = "drop"
    two_stems: str | None = None
    silence_db: float | None = SILENCE_DB
    shifts: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        check_overlap(self.overlap)
        check_precision(self.precision)
        if isinstance(self.shifts, bool) or not isinstance(self.shifts, int) or self.shifts < 1:
            raise SepkitError(f"shifts must be a whole number of passes, at least 1, got {self.shifts!r}")
        if self.silence_db is not None and not (-200.0 <= float(self.silence_db) <= 0.0):
            raise SepkitError(f"silence_db must be between -200 and 0 dBFS (or None), got {self.silence_db}")
        if not isinstance(self.high_band, str) or not self.high_band:
            raise SepkitError(f"high_band must be share, drop or a source name, got {self.high_band!r}")
        if int(self.batch_size) < 1:
            raise SepkitError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.channel_mode is not None and self.channel_mode not in CHANNEL_MODES:
            raise SepkitError(f"channel_mode must be one of {', '.join(CHANNEL_MODES)}, got {self.channel_mode!r}")
        if not (self.chunk_seconds > 0) or math.isinf(self.chunk_seconds):
            raise SepkitError(f"chunk_seconds must be a positive number, got {self.chunk_seconds}")


def frame_support(representation: Representation) -> int:
    """Samples one feature frame depends on (and one decoded sample depends on, in frames x hop).

    Taken from the representation's ``frame_length`` attribute if it has one, else its config's
    ``n_fft``, else four hops. Streaming is exact when this is not an underestimate.
    """
    for value in (getattr(representation, "frame_length", None), getattr(representation.config, "n_fft", None)):
        if isinstance(value, int) and value > 0:
            return value
    return 4 * representation.hop_length


class StreamingSeparator:
    """Model-rate waveform blocks ``[B, C, n]`` in, source waveforms ``[B, N, C, m]`` out, in order.

    Call :meth:`push` with consecutive blocks and :meth:`finish` at the end; the concatenated
    outputs have exactly as many samples as the input. See the module docstring for the guarantees.
    """

    def __init__(
        self,
        representation: Representation,
        separator: Separator,
        *,
        overlap: float = DEFAULT_OVERLAP,
        batch_size: int = DEFAULT_BATCH_SIZE,
        chunk_frames: int | None = None,
        wiener: bool = False,
        device: torch.device | str | None = None,
        precision: str = "fp32",
    ) -> None:
        self.representation = representation
        self.separator = separator
        self.window = separator.window
        self.overlap = check_overlap(overlap)
        self.batch_size = int(batch_size)
        self.wiener = wiener
        self.device = torch.device(device) if device is not None else _device_of(separator)
        self.precision = resolve_precision(precision, self.device)
        prepare_separator(separator, self.precision, self.device)
        self.hop = representation.hop_length
        self.encode_margin = -(-frame_support(representation) // self.hop) + 1
        self.decode_margin = self.encode_margin + 1
        if chunk_frames is None:
            chunk_frames = int(round(DEFAULT_CHUNK_SECONDS * representation.frames_per_second))
        self.chunk_frames = max(int(chunk_frames), self.window.output_frames)
        self._regular = WindowPlan(self.window, self.overlap, None)
        self._buffer: np.ndarray | None = None  # [B, C, n] model-rate samples from _buffer_start on
        self._buffer_start = 0
        self._received = 0
        self._next_frame = 0  # the first frame not yet emitted
        self._finished = False

    # -- public -------------------------------------------------------------------------------------

    def push(self, block: np.ndarray) -> np.ndarray | None:
        """Add samples; returns the separated samples that are final now (or None)."""
        if self._finished:
            raise RuntimeError("push after finish")
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 3:
            raise ShapeError(f"StreamingSeparator.push expects [batch, channels, samples], got {list(block.shape)}")
        if self._buffer is None:
            self._buffer = block.copy()
        else:
            self._buffer = np.concatenate([self._buffer, block], axis=-1)
        self._received += block.shape[-1]
        outputs = []
        while (ready := self._next_chunk()) is not None:
            outputs.append(self._run(*ready))
        return np.concatenate(outputs, axis=-1) if outputs else None

    def finish(self) -> np.ndarray:
        """Separate what is left; the stream's end is known now, so the last window can be placed."""
        if self._finished:
            raise RuntimeError("finish called twice")
        self._finished = True
        if self._buffer is None or self._received == 0:
            raise SepkitError("too short to separate: no samples at the model's sample rate")
        total_frames = self.representation.num_frames(self._received)
        plan = WindowPlan(self.window, self.overlap, total_frames)
        first = self._next_frame
        if first >= total_frames and first * self.hop >= self._received:
            return self._buffer[:, None, :, :0].repeat(self.separator.num_sources, axis=1)
        starts = plan.starts_touching(first - self.decode_margin, total_frames)
        return self._run(first, None, starts, plan, total_frames)

    # -- chunking -----------------------------------------------------------------------------------

    def _next_chunk(self) -> tuple[int, int, np.ndarray, WindowPlan, None] | None:
        """The next chunk, if enough samples have arrived to separate it exactly without knowing the end."""
        first = self._next_frame
        end = first + self.chunk_frames
        d = self.decode_margin
        starts = self._regular.starts_touching(first - d, end + d)
        window = self.window
        inputs_end = int(starts[-1]) + window.output_frames + window.context_after
        samples_needed = (inputs_end + self.encode_margin) * self.hop
        # Frames the whole signal must have for these windows to be regular ones with real inputs,
        # and for the shifted last window to start after everything this chunk needs.
        frames_needed = max(inputs_end, end + d + window.output_frames) + 1
        if self._received < samples_needed:
            return None
        if self.representation.num_frames(self._received) < frames_needed:
            return None
        return first, end, starts, self._regular, None

    def _run(
        self, first: int, end: int | None, starts: np.ndarray, plan: WindowPlan, total_frames: int | None
    ) -> np.ndarray:
        """Separate the frames ``[first, end)`` (to the end of the signal when ``end`` is None)."""
        window, hop, rep = self.window, self.hop, self.representation
        assert self._buffer is not None
        inputs_start = int(starts[0]) - window.context_before
        inputs_end = int(starts[-1]) + window.output_frames + window.context_after
        seg_start = max(0, (inputs_start - self.encode_margin) * hop)
        seg_end = self._received if end is None else (inputs_end + self.encode_margin) * hop
        if seg_start < self._buffer_start:
            raise AssertionError("streaming separation dropped samples it still needed")
        segment = self._buffer[..., seg_start - self._buffer_start : seg_end - self._buffer_start]
        seg_first_frame = seg_start // hop
        with torch.inference_mode():
            waveform = torch.from_numpy(np.ascontiguousarray(segment)).to(self.device)
            features, context = rep.encode(waveform)
            seg_frames = features.shape[-1]
            if total_frames is not None and seg_first_frame + seg_frames != total_frames:
                raise ShapeError(
                    f"representation '{type(rep).__name__}' is not shift-invariant in whole hops: "
                    f"{seg_end - seg_start} samples from sample {seg_start} give {seg_frames} frames, "
                    f"expected {total_frames - seg_first_frame}"
                )
            window_inputs = _frames(features, seg_first_frame, inputs_start, inputs_end)
            out_start = int(starts[0])
            out_end = int(starts[-1]) + window.output_frames
            if total_frames is not None:
                out_end = min(out_end, total_frames)
            estimates = overlap_add(
                self.separator,
                window_inputs,
                first_frame=inputs_start,
                starts=starts,
                weights=plan.weights(starts),
                out_start=out_start,
                out_frames=out_end - out_start,
                batch_size=self.batch_size,
                precision=self.precision,
            )
            sources = _place(estimates, out_start, seg_first_frame, seg_frames)
            if self.wiener:
                sources = soft_mask_wiener(rep, sources, features)
            decoded = rep.decode(sources, context, seg_end - seg_start)  # [B, N, C, samples]
            own_start = first * hop - seg_start
            own_end = (self._received if end is None else end * hop) - seg_start
            result = decoded[..., own_start:own_end].float().cpu().numpy()
        if end is not None:
            self._next_frame = end
            self._drop_before(end)
        return result

    def _drop_before(self, frame: int) -> None:
        """Forget samples no later chunk can need (those before its first window's input margin)."""
        starts = self._regular.starts_touching(frame - self.decode_margin, frame - self.decode_margin + 1)
        keep_from = max(0, (int(starts[0]) - self.window.context_before - self.encode_margin) * self.hop)
        if keep_from > self._buffer_start and self._buffer is not None:
            self._buffer = self._buffer[..., keep_from - self._buffer_start :].copy()
            self._buffer_start = keep_from


def _frames(features: torch.Tensor, have_from: int, start: int, end: int) -> torch.Tensor:
    """Frames ``[start, end)`` of the signal from ``features`` (which holds frames from ``have_from``),
    zeros where the signal (or ``features``) has none: the padding a whole-signal pass would add."""
    if start >= have_from and end <= have_from + features.shape[-1]:
        return features[..., start - have_from : end - have_from]
    out = features.new_zeros(*features.shape[:-1], end - start)
    lo, hi = max(start, have_from, 0), min(end, have_from + features.shape[-1])
    if hi > lo:
        out[..., lo - start : hi - start] = features[..., lo - have_from : hi - have_from]
    return out


def _place(estimates: torch.Tensor, first: int, seg_first: int, seg_frames: int) -> torch.Tensor:
    """Put estimates of frames ``first...`` into a zero tensor of the segment's frames."""
    out = estimates.new_zeros(*estimates.shape[:-1], seg_frames)
    lo = max(first, seg_first)
    hi = min(first + estimates.shape[-1], seg_first + seg_frames)
    if hi > lo:
        out[..., lo - seg_first : hi - seg_first] = estimates[..., lo - first : hi - first]
    return out


def _device_of(module: torch.nn.Module) -> torch.device:
    for parameter in module.parameters():
        return parameter.device
    return torch.device("cpu")


# -- channels ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelLayout:
    """How an input's channels meet a model's channels.

    ``lanes``: the model sees ``[lanes, model_channels, n]`` (a mono model separates every input
    channel as one batch lane). ``resampled_channels``: channels resampled on the way in (1 after a
    downmix); ``separated_channels``: channels of the separated audio before the final upmix.
    """

    mode: str
    input_channels: int
    model_channels: int

    @classmethod
    def choose(cls, input_channels: int, model_channels: int, channel_mode: str) -> "ChannelLayout":
        if input_channels == model_channels:
            return cls("same", input_channels, model_channels)
        if model_channels == 1:
            return cls("downmix" if channel_mode == "downmix" else "per-channel", input_channels, 1)
        if input_channels == 1:
            return cls("upmix", 1, model_channels)
        raise SepkitError(
            f"the model separates {model_channels}-channel audio; an input with {input_channels} "
            f"channels can be neither split into mono lanes nor duplicated (give it mono or "
            f"{model_channels}-channel audio)"
        )

    @property
    def resampled_channels(self) -> int:
        return 1 if self.mode == "downmix" else self.input_channels

    @property
    def separated_channels(self) -> int:
        return 1 if self.mode in ("downmix", "upmix") else self.input_channels

    def before_resampling(self, block: np.ndarray) -> np.ndarray:
        """``[n, C_in]`` -> ``[n, resampled_channels]``."""
        if self.mode == "downmix":
            return block.mean(axis=1, keepdims=True, dtype=np.float32)
        return block

    def to_lanes(self, block: np.ndarray) -> np.ndarray:
        """``[n, resampled_channels]`` -> ``[lanes, model_channels, n]``."""
        if self.mode == "per-channel":
            return np.ascontiguousarray(block.T[:, None, :])
        if self.mode == "upmix":
            return np.ascontiguousarray(np.repeat(block.T[None], self.model_channels, axis=1))
        return np.ascontiguousarray(block.T[None])

    def from_lanes(self, sources: np.ndarray) -> np.ndarray:
        """``[lanes, N, model_channels, n]`` -> ``[N, separated_channels, n]``."""
        if self.mode == "per-channel":
            return sources[:, :, 0].transpose(1, 0, 2)
        if self.mode == "upmix":
            return sources[0].mean(axis=1, keepdims=True, dtype=np.float32)
        return sources[0]

    def to_output(self, sources: np.ndarray) -> np.ndarray:
        """``[N, separated_channels, n]`` -> ``[N, input_channels, n]``."""
        if self.separated_channels == self.input_channels:
            return sources
        return np.repeat(sources, self.input_channels, axis=1)


# -- the whole pipeline --------------------------------------------------------------------------


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


Sink = Callable[[np.ndarray], None]


class ShiftedSeparator:
    """Test-time shifts: several :class:`StreamingSeparator` passes over the input delayed by
    ``delays`` samples (zeros in front), realigned and averaged. Same interface as one streamer."""

    def __init__(self, make: Callable[[], StreamingSeparator], delays: list[int]) -> None:
        self.streamers = [make() for _ in delays]
        self.delays = list(delays)
        self._skip = list(delays)
        self._queues = [SampleQueue() for _ in delays]
        self._started = False
        self._emitted = 0

    def push(self, block: np.ndarray) -> np.ndarray | None:
        if not self._started:
            self._started = True
            for k, delay in enumerate(self.delays):
                if delay:
                    self._collect(k, self.streamers[k].push(np.zeros((*block.shape[:-1], delay), dtype=np.float32)))
        for k, streamer in enumerate(self.streamers):
            self._collect(k, streamer.push(block))
        return self._take()

    def finish(self) -> np.ndarray:
        for k, streamer in enumerate(self.streamers):
            self._collect(k, streamer.finish())
        taken = self._take()
        if taken is None:
            raise SepkitError("too short to separate: no samples at the model's sample rate")
        return taken

    def _collect(self, k: int, out: np.ndarray | None) -> None:
        if out is None:
            return
        skip = min(self._skip[k], out.shape[-1])
        self._skip[k] -= skip
        self._queues[k].push(out[..., skip:])

    def _take(self) -> np.ndarray | None:
        ready = min(q.end for q in self._queues)
        if ready <= self._emitted:
            return None
        total = sum(q.read(self._emitted, ready) for q in self._queues) / len(self._queues)
        for q in self._queues:
            q.forget_before(ready)
        self._emitted = ready
        return np.asarray(total, dtype=np.float32)


def shift_delays(shifts: int, window_samples: int, seed: int) -> list[int]:
    """0 (the plain pass) and ``shifts - 1`` random delays in ``[1, window_samples)``: every position
    of the input relative to the window grid is equally likely."""
    rng = np.random.default_rng(seed)
    if window_samples <= 1:
        return [0] * shifts
    return [0, *(int(d) for d in rng.integers(1, window_samples, size=shifts - 1))]


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
    input frames. Raises :class:`SepkitError` for empty input or NaN/inf samples.
    """
    if options.wiener:
        from .wiener import check_wiener

        check_wiener(spec.representation, type(spec.representation).__name__)
    output_names(spec.sources, options)
    layout = ChannelLayout.choose(channels, spec.channels, options.channel_mode or spec.channel_mode)
    n_sources = len(spec.sources)
    recombiner = Recombiner(
        sources=n_sources,
        input_rate=sample_rate,
        model_rate=spec.sample_rate,
        separated_channels=layout.separated_channels,
        high_band=high_band_mode(options.high_band, spec.sources),
        complement=None if options.two_stems is None else spec.sources.index(options.two_stems),
        silence_db=options.silence_db,
    )
    with_seen = recombiner.needs_seen
    rows = n_sources + 1 if with_seen else n_sources
    down = StreamResampler(sample_rate, spec.sample_rate, layout.resampled_channels)
    up = StreamResampler(spec.sample_rate, sample_rate, rows * layout.separated_channels)

    def make_streamer() -> StreamingSeparator:
        return StreamingSeparator(
            spec.representation,
            spec.separator,
            overlap=options.overlap,
            batch_size=options.batch_size,
            chunk_frames=int(round(options.chunk_seconds * spec.representation.frames_per_second)),
            wiener=options.wiener,
            precision=options.precision,
        )

    if options.shifts > 1:
        window_samples = spec.separator.window.output_frames * spec.representation.hop_length
        streamer: StreamingSeparator | ShiftedSeparator = ShiftedSeparator(
            make_streamer, shift_delays(options.shifts, window_samples, options.seed)
        )
    else:
        streamer = make_streamer()
    heard = SampleQueue()  # [lanes, model channels, m]: what the model heard, until its estimates come
    read = 0
    written = 0
    estimated = 0  # model-rate samples the streamer has returned

    step = max(1, int(BLOCK_SECONDS * spec.sample_rate))

    def emit(model_rate: np.ndarray | None, last: bool) -> None:
        """Pass a chunk's estimates on in blocks of BLOCK_SECONDS: what follows (resampling,
        recombining, writing) then holds one block, not one chunk, in memory."""
        if model_rate is None:
            if last:
                emit_block(np.zeros((1, n_sources, spec.channels, 0), dtype=np.float32), True)
            return
        m = model_rate.shape[-1]
        for lo in range(0, max(m, 1), step):
            emit_block(model_rate[..., lo : lo + step], last and lo + step >= m)

    def emit_block(model_rate: np.ndarray, last: bool) -> None:
        nonlocal written, estimated
        m = model_rate.shape[-1]
        if with_seen:
            if m:
                mixture = heard.read(estimated, estimated + m)
                heard.forget_before(estimated + m)
            else:
                mixture = np.zeros((model_rate.shape[0], spec.channels, 0), dtype=np.float32)
            model_rate = np.concatenate([model_rate, mixture.reshape(mixture.shape[0], 1, *mixture.shape[1:])], axis=1)
        estimated += m
        separated = layout.from_lanes(model_rate)  # [rows, C', m]
        recombiner.push_estimates(separated[:n_sources])
        interleaved = separated.reshape(-1, separated.shape[-1]).T  # [m, rows * C']
        back = up.process(interleaved, last=last)
        block = back.T.reshape(rows, layout.separated_channels, -1)
        block = block[..., : max(0, read - written)] if last or written + block.shape[-1] > read else block
        if block.shape[-1]:
            block = np.ascontiguousarray(layout.to_output(block), dtype=np.float32)
            stems, seen = (block[:n_sources], block[n_sources]) if with_seen else (block, None)
            sink(recombiner(stems, seen, written))
            written += block.shape[-1]
            if progress is not None:
                progress(written)

    def model_input(resampled: np.ndarray) -> np.ndarray:
        if spec.clip:  # not in place: without resampling this is the caller's array
            resampled = np.clip(resampled, -1.0, 1.0)
        lanes = layout.to_lanes(resampled)
        if with_seen:
            heard.push(lanes)
        return lanes

    for block in blocks:
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[1] != channels:
            raise ShapeError(f"expected audio blocks [frames, {channels}], got {list(block.shape)}")
        if not np.isfinite(block).all():
            position = read + int(np.nonzero(~np.isfinite(block).all(axis=1))[0][0])
            raise SepkitError(f"contains NaN or infinite samples (first at {position / sample_rate:.3f} s)")
        read += block.shape[0]
        recombiner.push_input(block)
        resampled = down.process(layout.before_resampling(block))
        if resampled.shape[0]:
            emit(streamer.push(model_input(resampled)), last=False)
    if read == 0:
        raise SepkitError("contains no audio samples")
    tail = down.process(np.zeros((0, layout.resampled_channels), dtype=np.float32), last=True)
    if tail.shape[0]:
        emit(streamer.push(model_input(tail)), last=False)
    emit(streamer.finish(), last=True)
    if written < read:  # resampling back can come out a sample or two short: the input goes to the stems
        missing = read - written
        stems = np.zeros((n_sources, channels, missing), dtype=np.float32)
        seen = np.zeros((channels, missing), dtype=np.float32) if with_seen else None
        sink(recombiner(stems, seen, written))
        if progress is not None:
            progress(read)
    return read
