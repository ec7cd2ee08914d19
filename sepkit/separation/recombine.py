"""After the model, at the input's sample rate: stems that add up, silence kept silent, a complement.

The model hears the input resampled to its own rate, so it knows nothing above its Nyquist
frequency, and its estimates need not sum to what it heard. :class:`Recombiner` gets, block by
block, the upsampled estimates ``s_i``, the input ``x`` and ``seen`` (the input as the model heard it,
upsampled the same way) and splits the residual ``x - sum(s_i)`` into

* the **high band** ``h = x - seen`` (what lies above the model's band, plus any clipping), given to
  the sources in proportion to the power of their estimates in the model's top octave
  (``share``, frame by frame), or all to one source, or dropped;
* the **in-band residual** ``e = seen - sum(s_i)``, given in proportion to each estimate's power.

Either way (unless ``drop``) the stems add up to the input, up to float rounding. Weights come from
power envelopes averaged over :data:`SHARE_SECONDS`, computed at the model rate and interpolated.

**Silence**: where the input is below :data:`SILENCE_DB` (RMS per channel over
:data:`SILENCE_FRAME_SECONDS`, so digital silence too) every stem is zero, with a one-frame linear
fade next to audible frames. Models answer silence with a low hum of their biases (the default
model: a 32 Hz click train at -51 dBFS); this keeps it out.
"""

from __future__ import annotations

import math

import numpy as np

from .defaults import HIGH_BAND_MODES

__all__ = ["HIGH_BAND_MODES", "SILENCE_DB", "Recombiner", "SampleQueue", "Shares", "SilenceGate"]

#: Input below this RMS (dB relative to full scale, per channel and frame) gives silent stems.
SILENCE_DB = -90.0
SILENCE_FRAME_SECONDS = 0.01
#: Length of the centred moving average of the power envelopes that weight the residual.
SHARE_SECONDS = 0.02
#: Power added to every source so that where all are silent the residual is split evenly.
POWER_FLOOR = 1e-12
#: Model samples per stored weight, and input samples between interpolated weights.
DECIMATION = 16
GRID = 32
#: Input samples recombined at a time (temporaries stay in the cache).
SUB_BLOCK = 1 << 15


class SampleQueue:
    """Samples ``[..., n]`` arriving in order, read by absolute position (and forgotten once used)."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self.start = 0  # absolute position of the first kept sample
        self.end = 0

    def push(self, block: np.ndarray) -> None:
        if block.shape[-1]:
            self._parts.append(block)
            self.end += block.shape[-1]

    def read(self, begin: int, stop: int) -> np.ndarray:
        """Samples ``[begin, stop)`` (clamped to what arrived): a view when they lie in one pushed block."""
        if begin < self.start or not self._parts:
            raise AssertionError("SampleQueue: reading samples that are not kept")
        stop = max(begin, min(stop, self.end))
        pieces, offset = [], self.start
        for part in self._parts:
            lo, hi = max(begin, offset), min(stop, offset + part.shape[-1])
            if hi > lo or (not pieces and lo == hi == stop):
                pieces.append(part[..., lo - offset : hi - offset])
            offset += part.shape[-1]
            if offset >= stop and pieces:
                break
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=-1)

    def forget_before(self, position: int) -> None:
        position = min(position, self.end)
        while self._parts and self.start + self._parts[0].shape[-1] <= position:
            self.start += self._parts.pop(0).shape[-1]
        if self._parts and position > self.start:
            self._parts[0] = self._parts[0][..., position - self.start :]
            self.start = position


#: Binomial high-pass ``(1 - z^-1)^4 / 16``: power gain sin^8(w/2), 1 at the Nyquist frequency,
#: 1/16 at half of it, 3e-4 at a quarter: it weighs the model's top octave.
_TOP_OCTAVE = np.array([1.0, -4.0, 6.0, -4.0, 1.0], dtype=np.float32) / 16


class Shares:
    """Per-source weights from the model-rate estimates: ``top`` (power in the model's top octave)
    and ``power`` (all of it), averaged over :data:`SHARE_SECONDS` (centred) and normalised to sum
    to one over the sources.

    They are kept every :data:`DECIMATION` model samples and read at the input rate on a grid of
    :data:`GRID` input samples, linearly interpolated in between (the envelopes change over tens of
    milliseconds; interpolating every sample would cost more than the rest of the stage).
    """

    def __init__(self, sources: int, channels: int, model_rate: int, input_rate: int, *, top: bool) -> None:
        self.sources, self.top = sources, top
        self.ratio = model_rate / input_rate
        self.kinds = 2 if top else 1
        self.width = max(1, int(round(SHARE_SECONDS * model_rate / DECIMATION)) | 1)  # blocks, odd
        self._history = np.zeros((sources * channels, len(_TOP_OCTAVE) - 1), dtype=np.float32)
        self._rest = np.zeros((self.kinds * sources, 0), dtype=np.float64)  # power not yet a full block
        self._sums = np.zeros((self.kinds * sources, 0), dtype=np.float64)  # block powers kept for the average
        self._blocks = 0  # blocks of power seen
        self.queue = SampleQueue()  # [kinds * (N - 1), blocks]: weights of all sources but the last
        self._grid: dict[int, np.ndarray] = {}  # the last grid values handed out, reused at block edges

    def push(self, separated: np.ndarray) -> None:
        """``[N, C, m]`` model-rate estimates of the next ``m`` samples."""
        n, c, m = separated.shape
        if m == 0:
            return
        separated = np.ascontiguousarray(separated, dtype=np.float32)
        powers = [np.einsum("ncm,ncm->nm", separated, separated)]
        if self.top:
            flat = np.concatenate([self._history, separated.reshape(n * c, m)], axis=-1)
            self._history = flat[:, -self._history.shape[1] :].copy()
            taps = len(_TOP_OCTAVE)
            high = sum(_TOP_OCTAVE[k] * flat[:, taps - 1 - k : flat.shape[1] - k] for k in range(taps))
            high = high.reshape(n, c, m)
            powers.insert(0, np.einsum("ncm,ncm->nm", high, high))
        power = np.concatenate([self._rest, np.concatenate(powers).astype(np.float64)], axis=-1)
        count = power.shape[1] // DECIMATION
        self._rest = power[:, count * DECIMATION :]
        if count:
            self._add_blocks(power[:, : count * DECIMATION].reshape(power.shape[0], count, DECIMATION).sum(axis=-1))

    def _add_blocks(self, blocks: np.ndarray) -> None:
        """Centred moving sums over ``width`` blocks, normalised over the sources, into the queue."""
        half = self.width // 2
        kept = np.concatenate([self._sums, blocks], axis=-1)
        first = self._blocks - self._sums.shape[1]  # block index of kept[:, 0]
        self._blocks += blocks.shape[1]
        # centre j is complete once block j + half has arrived; the queue continues at queue.end
        centres = np.arange(self.queue.end, self._blocks - half)
        if centres.size:
            cumulative = np.concatenate([np.zeros((kept.shape[0], 1)), np.cumsum(kept, axis=-1)], axis=-1)
            lo = np.clip(centres - half, first, None) - first
            hi = centres + half + 1 - first
            window = (cumulative[:, hi] - cumulative[:, lo]).reshape(self.kinds, self.sources, -1) + POWER_FLOOR
            weights = window[:, :-1] / window.sum(axis=1, keepdims=True)
            self.queue.push(weights.reshape(-1, centres.size).astype(np.float32))
        self._sums = kept[:, max(0, kept.shape[1] - 2 * half) :]

    def grid(self, begin: int, stop: int) -> tuple[int, np.ndarray]:
        """Weights on the grid points ``first ... last`` (every :data:`GRID` input samples) around
        input samples ``[begin, stop)``: ``(first, [kinds * (N - 1), points])``."""
        first, last = begin // GRID, -(-stop // GRID)
        points = np.arange(first, last + 1)
        # block j holds model samples [j D, (j + 1) D): its centre is at j D + (D - 1) / 2
        blocks = (points * GRID * self.ratio - (DECIMATION - 1) / 2) / DECIMATION
        if self.queue.end == 0:  # nothing separated yet (a very short input): split evenly
            return first, np.full((self.kinds * (self.sources - 1), points.size), 1.0 / self.sources, np.float32)
        lo = min(max(self.queue.start, int(math.floor(blocks[0])) - 1), self.queue.end - 1)
        known = self.queue.read(lo, int(math.ceil(blocks[-1])) + 2)
        index = np.arange(lo, lo + known.shape[-1], dtype=np.float64)
        values = np.stack([np.interp(blocks, index, row) for row in known]).astype(np.float32)
        for j, point in enumerate((first, first + 1)):  # points shared with the previous call keep their values
            if point in self._grid and j < values.shape[1]:
                values[:, j] = self._grid[point]
        self._grid = {int(points[i]): values[:, i].copy() for i in range(max(0, points.size - 2), points.size)}
        self.queue.forget_before(lo)
        return first, values

    @staticmethod
    def dense(first: int, values: np.ndarray, begin: int, stop: int) -> np.ndarray:
        """Linear interpolation of grid values to input samples ``[begin, stop)``: ``[rows, stop - begin]``."""
        a, b = begin // GRID - first, -(-stop // GRID) - first
        part = values[:, a : b + 1]
        ramp = np.arange(GRID, dtype=np.float32) / GRID
        dense = part[:, :-1, None] + (part[:, 1:] - part[:, :-1])[:, :, None] * ramp
        offset = begin - (first + a) * GRID
        return dense.reshape(part.shape[0], -1)[:, offset : offset + stop - begin]


class SilenceGate:
    """Per channel and frame of the input: 1 where audible, 0 where below the threshold, with a
    linear fade over a silent frame that borders an audible one."""

    def __init__(self, sample_rate: int, threshold_db: float = SILENCE_DB) -> None:
        self.frame = max(1, int(round(SILENCE_FRAME_SECONDS * sample_rate)))
        self.threshold = 10.0 ** (threshold_db / 20.0)

    def loud(self, audio: np.ndarray) -> np.ndarray:
        """``[C, k * frame (+ rest)]`` -> ``[C, frames]``: which frames are audible."""
        c, n = audio.shape
        whole = n // self.frame
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        framed = audio[:, : whole * self.frame].reshape(c, whole, self.frame)
        energy = [np.einsum("cfk,cfk->cf", framed, framed).astype(np.float64) / self.frame]
        if n > whole * self.frame:
            rest = audio[:, whole * self.frame :].astype(np.float64)
            energy.append(np.mean(np.square(rest), axis=-1, keepdims=True))
        return np.sqrt(np.concatenate(energy, axis=-1)) >= self.threshold

    def gains(self, loud: np.ndarray, first_frame: int, begin: int, stop: int) -> np.ndarray | None:
        """Gains ``[C, stop - begin]`` for input samples ``[begin, stop)``; ``loud`` covers frames
        ``first_frame...`` including one frame either side of the block. None: all audible."""
        f = self.frame
        lo, hi = begin // f, (stop - 1) // f + 1
        inside = loud[:, lo - first_frame : hi - first_frame]
        if inside.all():
            return None
        padded = np.pad(loud, ((0, 0), (1, 1)), constant_values=False)
        before = padded[:, lo - first_frame : hi - first_frame]  # frame k-1
        after = padded[:, lo - first_frame + 2 : hi - first_frame + 2]  # frame k+1
        ramp = (np.arange(f, dtype=np.float32) + 0.5) / f
        fade = np.maximum(before[:, :, None] * ramp[::-1], after[:, :, None] * ramp)  # [C, frames, f]
        gain = np.where(inside[:, :, None], np.float32(1.0), fade).reshape(loud.shape[0], -1)
        return gain[:, begin - lo * f : stop - lo * f].astype(np.float32)


class Recombiner:
    """Turns upsampled estimates into the stems that are written (see the module docstring).

    ``high_band``: ``share``, ``drop`` or a source index. ``complement``: a source index for
    two-stem output (that source and the input minus it). ``silence_db``: None disables the gate.
    """

    def __init__(
        self,
        *,
        sources: int,
        input_rate: int,
        model_rate: int,
        separated_channels: int,
        high_band: str | int = "share",
        complement: int | None = None,
        silence_db: float | None = SILENCE_DB,
    ) -> None:
        self.sources = sources
        self.input_rate, self.model_rate = int(input_rate), int(model_rate)
        self.high_band = high_band
        self.complement = complement
        self.distribute = high_band != "drop"
        self.gate = SilenceGate(input_rate, silence_db) if silence_db is not None else None
        self.shares = (
            Shares(sources, separated_channels, model_rate, input_rate, top=high_band == "share" and input_rate > model_rate)
            if self.distribute and sources > 1
            else None
        )
        self.inputs = SampleQueue()  # [C, n] the input at its own rate

    @property
    def needs_input(self) -> bool:
        return self.distribute or self.gate is not None or self.complement is not None

    @property
    def needs_seen(self) -> bool:
        """Whether the caller must upsample the model's input alongside the estimates."""
        return self.distribute

    @property
    def outputs(self) -> int:
        return 2 if self.complement is not None else self.sources

    def push_input(self, block: np.ndarray) -> None:
        """The next ``[n, C]`` input samples (before any resampling or clipping)."""
        if self.needs_input:
            self.inputs.push(np.ascontiguousarray(block.T, dtype=np.float32))

    def push_estimates(self, separated: np.ndarray) -> None:
        """The model-rate estimates ``[N, C', m]`` about to be upsampled (for the weights)."""
        if self.shares is not None:
            self.shares.push(separated)

    def __call__(self, stems: np.ndarray, seen: np.ndarray | None, begin: int) -> np.ndarray:
        """``[N, C, n]`` upsampled estimates of input samples ``[begin, begin + n)`` -> the stems to
        write (``stems`` and ``seen`` are modified in place)."""
        if not self.needs_input:
            return stems
        n = stems.shape[-1]
        stop = begin + n
        # one read for the input and, for the silence gate, a frame either side of it
        f = self.gate.frame if self.gate is not None else 1
        span_from = max(0, begin // f - 1) * f if self.gate is not None else begin
        span = self.inputs.read(span_from, ((stop - 1) // f + 2) * f if self.gate is not None else stop)
        x = span[:, begin - span_from : stop - span_from]
        if self.distribute:
            grid = self.shares.grid(begin, stop) if self.shares is not None else None
            for lo in range(0, n, SUB_BLOCK):
                hi = min(n, lo + SUB_BLOCK)
                weights = None
                if grid is not None:
                    weights = Shares.dense(*grid, begin + lo, begin + hi).reshape(-1, self.sources - 1, hi - lo)
                self._distribute(stems[..., lo:hi], None if seen is None else seen[..., lo:hi], x[..., lo:hi], weights)
        if self.complement is not None:
            chosen = stems[self.complement]
            stems = np.stack([chosen, x - chosen])
        if self.gate is not None:
            gains = self.gate.gains(self.gate.loud(span), span_from // f, begin, stop)
            if gains is not None:
                stems *= gains[None]
        self.inputs.forget_before(max(0, (stop // self.gate.frame - 1) * self.gate.frame) if self.gate else stop)
        return stems

    def _distribute(self, stems: np.ndarray, seen: np.ndarray | None, x: np.ndarray, weights: np.ndarray | None) -> None:
        """Add the residual to ``stems`` in place (the last source takes exactly what makes the sum)."""
        if self.sources == 1:
            stems[0] = x
            return
        assert seen is not None and weights is not None and self.shares is not None
        high = x - seen  # above the model's band (and whatever clipping took away)
        in_band = seen  # reused: what the model heard minus what its estimates add up to
        in_band -= stems.sum(axis=0)
        power = weights[-1]
        top = weights[0] if self.shares.top else power
        for i in range(self.sources - 1):
            if self.high_band == "share":
                stems[i] += top[i] * high
            elif self.high_band == i:
                stems[i] += high
            stems[i] += power[i] * in_band
        np.subtract(x, stems[:-1].sum(axis=0), out=stems[-1])
