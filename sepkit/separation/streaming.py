"""Separating a model-rate signal that arrives block by block, in bounded memory.

:class:`StreamingSeparator` cuts the signal into long chunks (``chunk_seconds``) that overlap by the
frames the representation (:attr:`~sepkit.representation.Representation.margin_frames`), the
separator's context and the overlap-add need, and takes its windows from the same global
:class:`~sepkit.separation.windows.WindowPlan` as a whole-signal pass; so the output equals one
pass over the whole signal (up to float rounding from different batch compositions), as long as a
feature frame depends on no more than the representation's declared ``frame_length`` samples.
:class:`ShiftedSeparator` averages several such passes over delayed copies (test-time shifts).

Two units meet here: *samples* (``hop_length`` of them between consecutive frames) and *frames*
(``WindowPlan.step`` of them between consecutive windows).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..device import device_of
from ..errors import SepkitError, ShapeError
from ..representation import Representation
from ..separator import Separator
from .options import EngineOptions
from .precision import prepare_separator, resolve_precision
from .recombine import SampleQueue
from .wiener import soft_mask_wiener
from .windows import WindowPlan, overlap_add


class StreamingSeparator:
    """Model-rate waveform blocks ``[B, C, n]`` in, source waveforms ``[B, N, C, m]`` out, in order.

    Call :meth:`push` with consecutive blocks and :meth:`finish` at the end; the concatenated
    outputs have exactly as many samples as the input. ``options`` are used as they are (overlap,
    batch size, chunk length, Wiener filter, precision); see the module docstring for the guarantees.
    """

    def __init__(
        self,
        representation: Representation,
        separator: Separator,
        options: EngineOptions = EngineOptions(),
        *,
        device: torch.device | str | None = None,
    ) -> None:
        self.representation = representation
        self.separator = separator
        self.options = options
        self.window = separator.window
        self.device = torch.device(device) if device is not None else device_of(separator)
        self.precision = resolve_precision(options.precision, self.device)
        prepare_separator(separator, self.precision, self.device)
        #: samples between consecutive frames
        self.hop_length = representation.hop_length
        self.encode_margin = representation.margin_frames
        self.decode_margin = self.encode_margin + 1
        chunk_frames = int(round(options.chunk_seconds * representation.frames_per_second))
        self.chunk_frames = max(chunk_frames, self.window.output_frames)
        self._regular = WindowPlan(self.window, options.overlap, None)
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
        plan = WindowPlan(self.window, self.options.overlap, total_frames)
        first = self._next_frame
        if first >= total_frames and first * self.hop_length >= self._received:
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
        samples_needed = (inputs_end + self.encode_margin) * self.hop_length
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
        window, hop = self.window, self.hop_length
        assert self._buffer is not None
        inputs_start = int(starts[0]) - window.context_before
        inputs_end = int(starts[-1]) + window.output_frames + window.context_after
        seg_start = max(0, (inputs_start - self.encode_margin) * hop)
        seg_end = self._received if end is None else (inputs_end + self.encode_margin) * hop
        if seg_start < self._buffer_start:
            raise AssertionError("streaming separation dropped samples it still needed")
        segment = self._buffer[..., seg_start - self._buffer_start : seg_end - self._buffer_start]
        with torch.inference_mode():
            decoded = self._separate_segment(segment, seg_start, starts, plan, total_frames)
            own_start = first * hop - seg_start
            own_end = (self._received if end is None else end * hop) - seg_start
            result = decoded[..., own_start:own_end].float().cpu().numpy()
        if end is not None:
            self._next_frame = end
            self._drop_before(end)
        return result

    def _separate_segment(
        self, segment: np.ndarray, seg_start: int, starts: np.ndarray, plan: WindowPlan, total_frames: int | None
    ) -> torch.Tensor:
        """Encode a segment (samples from ``seg_start``), run the windows at ``starts`` over it,
        overlap-add, (Wiener-filter) and decode: ``[B, N, C, len(segment)]`` on the device."""
        window, rep = self.window, self.representation
        seg_first_frame = seg_start // self.hop_length
        features, context = rep.encode(torch.from_numpy(np.ascontiguousarray(segment)).to(self.device))
        seg_frames = features.shape[-1]
        if total_frames is not None and seg_first_frame + seg_frames != total_frames:
            raise ShapeError(
                f"representation '{type(rep).__name__}' is not shift-invariant in whole hops: "
                f"{segment.shape[-1]} samples from sample {seg_start} give {seg_frames} frames, "
                f"expected {total_frames - seg_first_frame}"
            )
        inputs_start = int(starts[0]) - window.context_before
        inputs_end = int(starts[-1]) + window.output_frames + window.context_after
        out_start = int(starts[0])
        out_end = int(starts[-1]) + window.output_frames
        if total_frames is not None:
            out_end = min(out_end, total_frames)
        estimates = overlap_add(
            self.separator,
            _frames(features, seg_first_frame, inputs_start, inputs_end),
            first_frame=inputs_start,
            starts=starts,
            weights=plan.weights(starts),
            out_start=out_start,
            out_frames=out_end - out_start,
            batch_size=self.options.batch_size,
            precision=self.precision,
        )
        sources = _place(estimates, out_start, seg_first_frame, seg_frames)
        if self.options.wiener:
            sources = soft_mask_wiener(rep, sources, features)
        return rep.decode(sources, context, segment.shape[-1])  # [B, N, C, samples]

    def _drop_before(self, frame: int) -> None:
        """Forget samples no later chunk can need (those before its first window's input margin)."""
        starts = self._regular.starts_touching(frame - self.decode_margin, frame - self.decode_margin + 1)
        keep_from = max(0, (int(starts[0]) - self.window.context_before - self.encode_margin) * self.hop_length)
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


def make_streamer(representation: Representation, separator: Separator, options: EngineOptions) -> StreamingSeparator | ShiftedSeparator:
    """One :class:`StreamingSeparator`, or with ``options.shifts > 1`` a :class:`ShiftedSeparator` of them."""
    if options.shifts == 1:
        return StreamingSeparator(representation, separator, options)
    window_samples = separator.window.output_frames * representation.hop_length
    return ShiftedSeparator(
        lambda: StreamingSeparator(representation, separator, options),
        shift_delays(options.shifts, window_samples, options.seed),
    )
