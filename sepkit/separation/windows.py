"""Cutting features into the separator's windows, running them in batches, overlap-adding the results.

Everything here works in *frames* of the representation and never looks at the architecture: the
separator's :class:`~sepkit.separator.Window` says how many frames it takes, how many it returns and
how much context sits on each side. Frames outside the signal are zeros (silence for a magnitude
representation), so the first and last windows get real-looking context on both sides.

The window layout (a :class:`WindowPlan`) is a function of the number of frames alone, so a long
signal can be processed in chunks (see :mod:`sepkit.separation.engine`) that pick their windows from
the same global layout and give the same result as one pass over the whole signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SepkitError, ShapeError
from ..separator import Separator, Window
from .defaults import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP
from .options import check_overlap
from .precision import forward_precision


def window_step(window: Window, overlap: float) -> int:
    """Output frames between the starts of consecutive windows: ``output_frames * (1 - overlap)``,
    rounded (``overlap`` already checked, see :func:`~sepkit.separation.options.check_overlap`).

    Not to be confused with a representation's ``hop_length``, the samples between frames.
    """
    return max(1, int(round(window.output_frames * (1.0 - overlap))))


def _taper(window: Window, step: int) -> np.ndarray:
    """Weights of a regular window: sin^2 ramps over the overlapping frames, flat in between.

    The ramps are sampled at half-frame offsets, so every weight is strictly positive and a ramp down
    plus the next window's ramp up sum to exactly 1 (sin^2 + cos^2). The engine divides by the sum of
    weights anyway, so any layout (the shifted last window, overlaps above 0.5) is normalised exactly.
    """
    frames = window.output_frames
    ramp = frames - step
    weights = np.ones(frames, dtype=np.float64)
    if ramp <= 0:
        return weights
    i = np.arange(frames, dtype=np.float64)
    up = np.sin(0.5 * np.pi * np.clip((i + 0.5) / ramp, 0.0, 1.0)) ** 2
    down = up[::-1]
    return up * down


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of a signal of ``num_frames`` frames go, and how their outputs are weighted.

    Output windows start every ``step`` frames from frame 0; the last one is shifted back to end at
    the final frame, so nothing past the end is computed (unless the whole signal is shorter than
    one output window: then one window starts at 0 and its extra frames are dropped).
    ``num_frames=None`` describes a signal whose end is not known yet: only the regular windows.

    With ``overlap == 0`` (the paper's layout) every frame comes from exactly one window: the shifted
    last window only fills the frames that the previous window did not cover. Otherwise the outputs
    are cross-faded with :func:`_taper` weights, normalised so that they sum to 1 on every frame.
    """

    window: Window
    overlap: float
    num_frames: int | None

    @cached_property
    def step(self) -> int:
        """Output frames between the starts of consecutive windows (:func:`window_step`)."""
        return window_step(self.window, self.overlap)

    @property
    def num_regular(self) -> int | None:
        """Windows at ``k * step`` (all windows but the shifted last one); None if the end is unknown."""
        if self.num_frames is None:
            return None
        out = self.window.output_frames
        if self.num_frames <= out:
            return 0
        return -(-(self.num_frames - out) // self.step)  # k * step + out < num_frames

    @property
    def last_start(self) -> int | None:
        if self.num_frames is None:
            return None
        return max(0, self.num_frames - self.window.output_frames)

    def all_starts(self) -> np.ndarray:
        if self.num_frames is None:
            raise ValueError("the plan of a signal of unknown length has no last window")
        regular = np.arange(self.num_regular, dtype=np.int64) * self.step
        return np.concatenate([regular, np.array([self.last_start], dtype=np.int64)])

    def starts_touching(self, first: int, end: int) -> np.ndarray:
        """Starts of the windows whose output frames intersect ``[first, end)``, in order."""
        out, step = self.window.output_frames, self.step
        lowest = max(0, (first - out) // step + 1)  # smallest k with k * step + out > first
        highest = -(-end // step) - 1  # largest k with k * step < end
        if self.num_frames is not None:
            highest = min(highest, self.num_regular - 1)
        regular = np.arange(lowest, highest + 1, dtype=np.int64) * step
        if self.num_frames is not None:
            last = self.last_start
            if last < end and last + out > first:
                regular = np.concatenate([regular, np.array([last], dtype=np.int64)])
        return regular

    def weights(self, starts: np.ndarray) -> np.ndarray:
        """``[len(starts), output_frames]`` float64 weights of these windows (starts from this plan)."""
        out = self.window.output_frames
        regular = _taper(self.window, self.step)
        weights = np.broadcast_to(regular, (len(starts), out)).copy()
        if self.num_frames is not None and self.overlap == 0.0 and self.num_regular > 0:
            # Paper layout: the shifted last window only fills what the last regular one left.
            covered_until = (self.num_regular - 1) * self.step + out
            is_last = starts == self.last_start
            if covered_until > self.last_start:
                weights[is_last, : covered_until - self.last_start] = 0.0
        return weights


def _channels_last(separator: torch.nn.Module) -> bool:
    """True when the separator's 4-D weights are stored channels-last (then so should its input be)."""
    return any(
        p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in separator.parameters()
    )


def overlap_add(
    separator: Separator,
    features: torch.Tensor,
    *,
    first_frame: int,
    starts: np.ndarray,
    weights: np.ndarray,
    out_start: int,
    out_frames: int,
    batch_size: int,
    precision: str = "fp32",
) -> torch.Tensor:
    """Run the windows at output ``starts`` and overlap-add them over frames ``[out_start, out_start + out_frames)``.

    ``features`` ``[B, C, F, T]`` holds frames ``first_frame ...`` of the signal (zeros already in
    place outside it) and must contain every window's input, context included. Returns
    ``[B, N, C, F, out_frames]`` normalised by the sum of weights; every output frame must be covered
    by some window with a non-zero weight. ``precision`` (``fp32`` or ``bf16``, already resolved)
    is the arithmetic of the separator's forward pass only; the result is float32 either way.
    """
    window = separator.window
    batch = features.shape[0]
    out = window.output_frames
    local = _input_positions(window, features.shape[-1], first_frame, starts)
    device = features.device
    views = features.unfold(-1, window.input_frames, 1)  # [B, C, F, positions, input_frames], no copy
    pairs = batch * len(starts)  # (example, window) pairs, example-major
    example_of = torch.arange(batch, device=device).repeat_interleave(len(starts))
    window_of = torch.arange(len(starts), device=device).repeat(batch)
    local = local.to(device)
    offsets = torch.as_tensor(starts - out_start, dtype=torch.long, device=device)
    weight_table = torch.as_tensor(weights, dtype=torch.float32, device=device)
    frame_range = torch.arange(out, device=device)
    channels_last = _channels_last(separator)

    total: torch.Tensor | None = None
    weight_sum = torch.zeros(batch * out_frames, dtype=weight_table.dtype, device=device)
    for begin in range(0, pairs, batch_size):
        examples = example_of[begin : begin + batch_size]
        windows = window_of[begin : begin + batch_size]
        outputs = _forward(separator, views[examples, :, :, local[windows]], channels_last, precision)
        if total is None:
            n_src, channels, bins = outputs.shape[1:4]
            total = torch.zeros(n_src, channels, bins, batch * out_frames, dtype=outputs.dtype, device=device)
        positions = offsets[windows][:, None] + frame_range  # [n, out] relative to out_start
        inside = (positions >= 0) & (positions < out_frames)
        w = torch.where(inside, weight_table[windows], 0.0)
        index = (examples[:, None] * out_frames + positions.clamp(0, out_frames - 1)).reshape(-1)
        weighted = outputs * w.to(outputs.dtype)[:, None, None, None, :]
        total.index_add_(-1, index, weighted.permute(1, 2, 3, 0, 4).reshape(*total.shape[:3], -1))
        weight_sum.index_add_(0, index, w.reshape(-1))
    assert total is not None
    if bool((weight_sum <= 0).any()):
        raise AssertionError("overlap_add: some output frames are covered by no window")
    total = total / weight_sum.to(total.dtype)
    return total.reshape(*total.shape[:3], batch, out_frames).permute(3, 0, 1, 2, 4)


def _input_positions(window: Window, frames: int, first_frame: int, starts: np.ndarray) -> torch.Tensor:
    """Where each window's input starts in features of ``frames`` frames that begin at ``first_frame``."""
    local = torch.as_tensor(starts - window.context_before - first_frame, dtype=torch.long)
    if len(starts) == 0 or int(local.min()) < 0 or int(local.max()) + window.input_frames > frames:
        raise ShapeError(
            f"overlap_add: features of {frames} frames from frame {first_frame} do not hold "
            f"the inputs of windows starting at {starts.min() if len(starts) else '-'}..{starts.max() if len(starts) else '-'}"
        )
    return local


def _forward(separator: Separator, inputs: torch.Tensor, channels_last: bool, precision: str) -> torch.Tensor:
    """``[n, C, F, input_frames]`` windows -> float32 ``[n, N, C, F, output_frames]``."""
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with forward_precision(precision, inputs.device):
        return separator(inputs).float()


def check_features(separator: Separator, features: torch.Tensor) -> None:
    expected = f"[channels={separator.num_channels}, bins={separator.num_bins}, frames] (or with a batch axis first)"
    if not isinstance(features, torch.Tensor) or features.dim() not in (3, 4):
        shape = list(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ShapeError(f"separate_features expects features {expected}, got {shape}")
    c, f, t = features.shape[-3:]
    if c != separator.num_channels or f != separator.num_bins or t < 1:
        raise ShapeError(f"separate_features expects features {expected}, got {list(features.shape)}")


def separate_features(
    separator: Separator,
    features: torch.Tensor,
    *,
    overlap: float = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> torch.Tensor:
    """Mixture features ``[C, F, T]`` or ``[B, C, F, T]`` -> source features ``[N, C, F, T]`` or ``[B, N, C, F, T]``.

    Pads with zero frames (the separator's context before, its context plus whatever fills the last
    window after), cuts windows of ``window.input_frames`` frames whose outputs start every
    ``output_frames * (1 - overlap)`` frames (the last one shifted back to end at the final frame),
    runs them ``batch_size`` at a time under ``torch.inference_mode`` on the features' device, and
    overlap-adds the outputs (see :class:`WindowPlan`). The separator must already be on that device
    and in eval mode. Memory grows with T (the result); for long signals use the streaming engine.
    """
    check_features(separator, features)
    if batch_size < 1:
        raise SepkitError(f"batch_size must be at least 1, got {batch_size}")
    unbatched = features.dim() == 3
    if unbatched:
        features = features.unsqueeze(0)
    window = separator.window
    frames = features.shape[-1]
    plan = WindowPlan(window, check_overlap(overlap), frames)
    starts = plan.all_starts()
    after = window.context_after + max(0, window.output_frames - frames)
    with torch.inference_mode():
        padded = F.pad(features, (window.context_before, after))
        result = overlap_add(
            separator,
            padded,
            first_frame=-window.context_before,
            starts=starts,
            weights=plan.weights(starts),
            out_start=0,
            out_frames=frames,
            batch_size=batch_size,
        )
    return result[0] if unbatched else result
