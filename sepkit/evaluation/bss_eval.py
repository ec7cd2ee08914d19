"""BSS Eval in torch: the fast path for the metrics museval computes.

* :func:`bss_eval_sources`: the whole-track ``bss_eval_sources`` of BSS Eval v3 (mir_eval,
  ``museval.metrics.bss_eval_sources(..., compute_permutation=False)``): every source at once,
  one time-invariant 512-tap distortion filter per source over the whole track, no permutation.
* :func:`bss_eval_images_framewise`: museval's BSS Eval v4 (``museval.evaluate``): filters fitted
  on the whole track, image metrics (SDR, ISR, SIR, SAR) per window.
* :func:`simple_sdr`: ``10 log10(|s|^2 / |s - s_hat|^2)`` without distortion filters: a cheap
  per-step validation curve, *not* a BSS Eval number.

Why it is fast (and still equal to museval): museval builds the Gram matrix of the delayed
references and the reference/estimate cross-correlations with one FFT of the whole track per pair
of channels, then projects every estimate in the time domain. Only the lags ``-(L-1)..L-1`` of
those correlations are needed, so here they are summed over short segments (overlap-save, FFTs of
16k points, every channel transformed once); the energies of the projections and residuals are
then quadratic forms in the filters (``|A x|^2 = x' G x``, ``<e, A x> = x' D``), so no projection
is ever synthesised for ``bss_eval_sources``. Everything is float64; the linear systems are solved
with un-batched 2-D ``torch.linalg.solve`` calls (batched CPU solves are unreliable in torch 2.13
after ``torch.set_num_threads``), with museval's ``eps * I`` regularisation.

Shapes: references and estimates are ``[J, N]`` (mono) or ``[J, C, N]`` (J sources, C channels,
N samples); numpy arrays or tensors. Results are float64 tensors on the computing device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ShapeError

#: Taps of the distortion filters (BSS Eval's default, used by the paper and by museval).
FILTER_LENGTH = 512
#: FFT size of the segments the correlations are summed over.
SEGMENT_FFT = 16384
#: museval's regularisation of the normal equations: ``(G + eps I) x = D``.
EPS = float(np.finfo(float).eps)


@dataclass(frozen=True)
class SourcesScores:
    """Whole-track ``bss_eval_sources`` results, in dB, one value per source (``[J]``).

    ``mixture_sdr[j]`` is the SDR of the mixture used as the estimate of source ``j`` (for the
    normalised SDR); ``None`` when no mixture was given. Sources whose reference is silent, and
    estimates that are silent or not finite, are NaN (museval refuses such input altogether).
    """

    sdr: "torch.Tensor"
    sir: "torch.Tensor"
    sar: "torch.Tensor"
    mixture_sdr: "torch.Tensor | None" = None


@dataclass(frozen=True)
class FramewiseScores:
    """BSS Eval v4 image metrics per window, ``[J, windows]`` each (NaN where museval gives NaN:
    windows in which any reference or estimate is silent). ``mixture_sdr`` as for
    :class:`SourcesScores`, per window."""

    sdr: "torch.Tensor"
    isr: "torch.Tensor"
    sir: "torch.Tensor"
    sar: "torch.Tensor"
    mixture_sdr: "torch.Tensor | None" = None


# -- input handling ----------------------------------------------------------------------------------


def _as_signals(value: object, name: str, device: "torch.device | None") -> "torch.Tensor":
    """``[J, N]`` or ``[J, C, N]`` -> float64 ``[J, C, N]`` on ``device`` (default: where it is)."""
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if tensor.ndim == 2:
        tensor = tensor[:, None, :]
    if tensor.ndim != 3 or not tensor.dtype.is_floating_point:
        raise ShapeError(
            f"{name}: expected real audio [sources, samples] or [sources, channels, samples], got "
            f"shape {list(tensor.shape)} of {tensor.dtype}"
        )
    return tensor.to(device=device if device is not None else tensor.device, dtype=torch.float64)


def _as_mixture(value: object, references: "torch.Tensor") -> "torch.Tensor":
    """``[N]`` or ``[C, N]`` -> float64 ``[C, N]`` shaped like one reference."""
    _, C, N = references.shape
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    tensor = tensor.to(device=references.device, dtype=torch.float64)
    if tensor.ndim == 1:
        tensor = tensor[None, :]
    if tuple(tensor.shape) != (C, N):
        raise ShapeError(f"mixture: expected [{C}, {N}] (channels, samples) like the references, got {list(tensor.shape)}")
    return tensor


def _check_pair(references: "torch.Tensor", estimates: "torch.Tensor") -> None:
    if references.shape != estimates.shape:
        raise ShapeError(
            f"estimates have shape {list(estimates.shape)} but references have {list(references.shape)}; "
            "trim both to a common length first (sources, channels and samples must match)"
        )
    if references.shape[-1] == 0 or references.shape[0] == 0:
        raise ShapeError(f"references of shape {list(references.shape)} hold no samples")
    if not bool(_finite(references).all()):
        raise ShapeError("references hold NaN or infinite samples")


def _silent(signals: "torch.Tensor") -> "torch.Tensor":
    """``[J]``: museval's notion of a silent source: every sample, summed over channels, is zero
    (NaN is not silent)."""
    summed = signals[:, 0] if signals.shape[1] == 1 else signals.sum(dim=1)
    low, high = torch.aminmax(summed, dim=-1)
    return (low == 0) & (high == 0)


def _finite(signals: "torch.Tensor") -> "torch.Tensor":
    """``[J]``: no NaN or infinity in a source (a sum of audio cannot overflow float64, and NaN
    and infinities propagate through it), in one pass without temporaries."""
    return torch.isfinite(signals.sum(dim=(1, 2)))


def _energy(signals: "torch.Tensor") -> "torch.Tensor":
    """``[X, N]`` -> ``[X]`` sums of squares (dot products: no temporary)."""
    return (signals.unsqueeze(1) @ signals.unsqueeze(2)).reshape(-1)


def _db(numerator: "torch.Tensor", denominator: "torch.Tensor") -> "torch.Tensor":
    """``10 log10(num / den)`` with museval's rule: a zero denominator gives +inf (here also a
    negative one: an energy computed as ``|e|^2 - 2<e, Px> + |Px|^2`` can round below zero when
    the estimate is exactly explained)."""
    ratio = numerator / denominator.clamp_min(0.0)
    ratio = torch.where(denominator <= 0, torch.full_like(ratio, float("inf")), ratio)
    return 10.0 * torch.log10(ratio)


# -- correlations over short segments -----------------------------------------------------------------


class _SegmentCorrelator:
    """Cross-correlations ``r_xy[k] = sum_n x[n + k] y[n]`` for ``|k| < L`` between long signals.

    The signal is cut into segments of ``M`` samples; ``y``'s segments are plain, ``x``'s are
    extended by ``L - 1`` samples on each side, so that one circular correlation of size
    ``Q >= M + 2(L - 1)`` per segment holds every needed lag without wrap-around. The products of
    the segments' spectra are summed, and one small inverse FFT per pair gives the lags. Segments
    are processed in chunks of bounded size, so memory stays bounded for any track length.
    """

    #: Bytes of the largest temporary (the spectra products of one chunk).
    CHUNK_BYTES = 32 * 2**20

    def __init__(self, length: int, filter_length: int) -> None:
        self.length = int(length)
        self.lags = int(filter_length)
        span = 2 * (self.lags - 1)
        wanted = min(self.length, max(SEGMENT_FFT - span, 4 * self.lags))  # segment length M
        self.fft_size = 1 << int(np.ceil(np.log2(max(wanted + span, 2))))
        self.segment = self.fft_size - span
        self.segments = -(-self.length // self.segment)

    def correlate(self, x: "torch.Tensor", ys: list["torch.Tensor"]) -> "torch.Tensor":
        """``x`` ``[P, N]``, ``ys`` tensors ``[R_i, N]`` -> ``[P, sum R_i, 2L - 1]``; index
        ``k + L - 1`` holds lag ``k``."""
        M, L, Q, S = self.segment, self.lags, self.fft_size, self.segments
        P, R, bins = x.shape[0], sum(y.shape[0] for y in ys), Q // 2 + 1
        # accumulates sum_s conj(X) Y = conj(sum_s X conj(Y)): conjugating the P spectra of x
        # costs less than conjugating the R spectra of y
        spectrum = torch.zeros(P, R, bins, dtype=torch.complex128, device=x.device)
        step = max(1, self.CHUNK_BYTES // (max(R, P) * bins * 16))
        for first in range(0, S, step):
            last = min(S, first + step)
            xs = _span(x, first * M - (L - 1), last * M + (L - 1)).unfold(-1, M + 2 * (L - 1), M)  # [P, s, M+2L-2]
            x_spec = torch.fft.rfft(xs, n=Q).conj_physical()  # [P, s, F]
            offset = 0
            for y in ys:
                y_spec = torch.fft.rfft(_span(y, first * M, last * M).reshape(y.shape[0], last - first, M), n=Q)
                for p in range(P):
                    spectrum[p, offset : offset + y.shape[0]] += (x_spec[p] * y_spec).sum(dim=1)
                offset += y.shape[0]
        return torch.fft.irfft(spectrum.conj_physical(), n=Q)[..., : 2 * L - 1]


def _span(signal: "torch.Tensor", start: int, stop: int) -> "torch.Tensor":
    """``signal[:, start:stop]`` of a ``[X, N]`` tensor, zero outside ``[0, N)``."""
    n = signal.shape[-1]
    low, high = max(start, 0), min(stop, n)
    piece = signal[:, low:high]
    if low - start or stop - high:
        piece = F.pad(piece, (low - start, stop - high))
    return piece


def _solve(matrix: "torch.Tensor", rhs: "torch.Tensor") -> "torch.Tensor":
    """``(matrix + eps I) x = rhs`` as museval solves it (``np.linalg.solve``, LU with partial
    pivoting, museval's regularisation, least squares if that fails), with un-batched 2-D calls.
    (For these sizes LU is also faster than a Cholesky factorisation in torch.)"""
    regularised = matrix.clone()
    regularised.diagonal().add_(EPS)
    try:
        return torch.linalg.solve(regularised, rhs)
    except torch.linalg.LinAlgError:  # an exactly singular system: museval falls back to lstsq
        return torch.linalg.lstsq(matrix, rhs).solution


# -- the filters ----------------------------------------------------------------------------------------


class _Projection:
    """Least-squares distortion filters of every estimate channel, onto the delayed references.

    Rows are ``(source, channel, delay)`` as in museval (``_reshape_G``); columns are estimate
    channels. ``x_all`` projects onto every reference (BSS Eval's ``P_s``), ``x_own`` onto the
    target reference only (``P_{s_j}``), stored at the target's rows of a full-size matrix.
    """

    def __init__(
        self,
        references: "torch.Tensor",
        blocks: list["torch.Tensor"],
        expand: "torch.Tensor",
        targets: list[int],
        filter_length: int,
    ) -> None:
        """``blocks`` of distinct estimate channels ``[U_i, N]``; column ``i`` of the filters is
        distinct channel ``expand[i]`` scored against source ``targets[i]``."""
        J, C, N = references.shape
        L = filter_length
        P = J * C
        self.sources, self.channels, self.taps = J, C, L
        flat_refs = references.reshape(P, N)
        correlations = _SegmentCorrelator(N, L).correlate(flat_refs, [flat_refs, *blocks])  # [P, P+U, 2L-1]
        delays = torch.arange(L, device=references.device)
        # G[(p, a), (q, b)] = <r_p delayed by a, r_q delayed by b> = r_pq[b - a], i.e. lag index
        # b - a + L - 1: windows of the lags (row L - 1 - a, column b), rows reversed
        toeplitz = correlations[:, :P].unfold(-1, L, 1).flip(-2)  # [P, Q, a, b]
        self.gram = toeplitz.permute(0, 2, 1, 3).reshape(P * L, P * L)
        # D[(p, a), e] = <r_p delayed by a, e> = r_pe[-a]
        cross = correlations[:, P:, (L - 1) - delays].permute(0, 2, 1).reshape(P * L, -1)
        self.cross = cross[:, expand]
        # one solve for every column: the references' Gram matrix is shared
        self.x_all = _solve(self.gram, self.cross)
        self.x_own = torch.zeros_like(self.x_all)
        for j in range(J):
            cols = [i for i, t in enumerate(targets) if t == j]
            if cols:
                rows = slice(j * C * L, (j + 1) * C * L)
                self.x_own[rows, cols] = _solve(self.gram[rows, rows], self.cross[rows][:, cols])

    def filters_spectrum(self, filters: "torch.Tensor", fft_size: int) -> "torch.Tensor":
        """``[P*L, E]`` filters -> ``[P, E, F]`` spectra for convolving references."""
        P = self.sources * self.channels
        return torch.fft.rfft(filters.reshape(P, self.taps, -1).permute(0, 2, 1), n=fft_size)


def _estimate_columns(
    estimates: "torch.Tensor", mixture: "torch.Tensor | None"
) -> tuple[list["torch.Tensor"], "torch.Tensor", list[int], "torch.Tensor"]:
    """Distinct estimate channels as a list of ``[U_i, N]`` blocks (each estimate's channels, then
    the mixture's once), the column -> distinct channel index, the target source of each column,
    and which columns are usable (finite, and the estimate as a whole not silent). Unusable
    channels are zeroed so that they cannot spoil the others (every column is solved on its own)."""
    J, C, N = estimates.shape
    usable = _finite(estimates) & ~_silent(estimates)
    columns = estimates if bool(usable.all()) else torch.where(usable[:, None, None], estimates, 0.0)
    blocks = [columns.reshape(J * C, N)]
    expand = list(range(J * C))
    targets = [j for j in range(J) for _ in range(C)]
    column_ok = usable.repeat_interleave(C)
    if mixture is not None:
        mix_ok = bool(_finite(mixture[None]).all()) and not bool(_silent(mixture[None]).all())
        blocks.append(mixture if mix_ok else torch.zeros_like(mixture))
        for j in range(J):
            expand += [J * C + c for c in range(C)]
            targets += [j] * C
        column_ok = torch.cat([column_ok, torch.full((J * C,), mix_ok, device=estimates.device)])
    return blocks, torch.tensor(expand, device=estimates.device), targets, column_ok


def _per_estimate(values: "torch.Tensor", channels: int) -> "torch.Tensor":
    """Sum per-column values over the channels of each estimate: ``[E*C]`` -> ``[E]``."""
    return values.reshape(-1, channels).sum(dim=1)


# -- public functions ---------------------------------------------------------------------------------------


def bss_eval_sources(
    references: object,
    estimates: object,
    *,
    mixture: object | None = None,
    filter_length: int = FILTER_LENGTH,
    device: "str | torch.device | None" = None,
) -> SourcesScores:
    """Whole-track SDR, SIR, SAR of every estimate, all sources at once (BSS Eval v3
    ``bss_eval_sources``, no permutation: estimate ``j`` is scored against reference ``j``).

    ``references``/``estimates``: ``[J, N]``, ``[J, C, N]``, or a batch ``[B, J, C, N]`` of
    equally long examples (each scored on its own; results ``[B, J]``). ``mixture`` (``[N]`` or
    ``[C, N]``; ``[B, C, N]`` for a batch), when given, is also scored as the estimate of every
    source (``mixture_sdr``, for the normalised SDR) at little extra cost: the references' Gram
    matrix is shared. A silent reference spans nothing, so the others are scored exactly as if it
    were absent and its own scores are NaN.
    """
    device = torch.device(device) if device is not None else None
    if getattr(references, "ndim", None) == 4:
        return _batch_sources(references, estimates, mixture, filter_length, device)
    refs = _as_signals(references, "references", device)
    ests = _as_signals(estimates, "estimates", refs.device)
    _check_pair(refs, ests)
    J, C, N = refs.shape
    mix = None
    if mixture is not None:
        mix = _as_mixture(mixture, refs)
    if filter_length < 1:
        raise ShapeError(f"filter_length must be at least 1, got {filter_length}")

    distinct, expand, targets, column_ok = _estimate_columns(ests, mix)
    projection = _Projection(refs, distinct, expand, targets, filter_length)
    gram, cross = projection.gram, projection.cross
    x_all, x_own = projection.x_all, projection.x_own

    energy = torch.cat([_energy(block) for block in distinct])[expand]
    projected_all = (x_all * (gram @ x_all)).sum(dim=0)  # |P_s e|^2
    residual_all = energy - 2.0 * (x_all * cross).sum(dim=0) + projected_all  # |e - P_s e|^2
    projected_own = (x_own * (gram @ x_own)).sum(dim=0)  # |P_sj e|^2
    residual_own = energy - 2.0 * (x_own * cross).sum(dim=0) + projected_own  # |e - P_sj e|^2
    difference = x_all - x_own
    interference = (difference * (gram @ difference)).sum(dim=0)  # |P_s e - P_sj e|^2

    def scores(values: "torch.Tensor") -> "torch.Tensor":
        return _per_estimate(values, C)

    target_energy = scores(projected_own)
    sdr = _db(target_energy, scores(residual_own))
    sir = _db(target_energy, scores(interference))
    sar = _db(scores(projected_all), scores(residual_all))

    silent_reference = _silent(refs)
    estimate_ok = column_ok.reshape(-1, C).all(dim=1)
    valid = estimate_ok & ~silent_reference.repeat(len(estimate_ok) // J)
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=refs.device)
    sdr, sir, sar = (torch.where(valid, v, nan) for v in (sdr, sir, sar))
    mixture_sdr = sdr[J:] if mix is not None else None
    return SourcesScores(sdr=sdr[:J], sir=sir[:J], sar=sar[:J], mixture_sdr=mixture_sdr)


def _batch_sources(
    references: object, estimates: object, mixture: object | None, filter_length: int, device: torch.device | None
) -> SourcesScores:
    """:func:`bss_eval_sources` of a batch ``[B, J, C, N]``, example by example; results ``[B, J]``."""
    items = [
        bss_eval_sources(
            references[b], estimates[b],  # type: ignore[index]
            mixture=None if mixture is None else mixture[b],  # type: ignore[index]
            filter_length=filter_length, device=device,
        )
        for b in range(len(references))  # type: ignore[arg-type]
    ]
    if not items:
        raise ShapeError("references: an empty batch")
    mixture_sdr = torch.stack([i.mixture_sdr for i in items]) if mixture is not None else None  # type: ignore[misc]
    return SourcesScores(
        sdr=torch.stack([i.sdr for i in items]),
        sir=torch.stack([i.sir for i in items]),
        sar=torch.stack([i.sar for i in items]),
        mixture_sdr=mixture_sdr,
    )


# Long on purpose: one pass over chunks of windows whose dozen tensors (filter spectra, frames, target
# rows, per-chunk projections) are shared by the four metrics; split, they would travel as arguments.
def bss_eval_images_framewise(
    references: object,
    estimates: object,
    *,
    window: int,
    hop: int | None = None,
    mixture: object | None = None,
    filter_length: int = FILTER_LENGTH,
    device: "str | torch.device | None" = None,
    chunk_windows: int = 16,
) -> FramewiseScores:
    """museval's BSS Eval v4 (``museval.evaluate`` / ``metrics.bss_eval`` with
    ``framewise_filters=False, bsseval_sources_version=False``): distortion filters fitted once on
    the whole track, then SDR, ISR, SIR, SAR of each window of ``window`` samples every ``hop``
    (default: ``window``). Windows are museval's: only whole windows, or one window of the whole
    track when it is shorter than ``window``.
    """
    device = torch.device(device) if device is not None else None
    refs = _as_signals(references, "references", device)
    ests = _as_signals(estimates, "estimates", refs.device)
    _check_pair(refs, ests)
    J, C, N = refs.shape
    hop = window if hop is None else hop
    if window < 1 or hop < 1:
        raise ShapeError(f"window and hop must be positive numbers of samples, got {window} and {hop}")
    mix = None
    if mixture is not None:
        mix = _as_mixture(mixture, refs)

    blocks, expand, targets, column_ok = _estimate_columns(ests, None)
    columns = blocks[0]
    projection = _Projection(refs, blocks, expand, targets, filter_length)
    estimate_ok = column_ok.reshape(J, C).all(dim=1)
    L = filter_length
    if window < N:
        count = (N - window + hop) // hop
        length = window
    else:
        count, length = 1, N
    fft_size = _fft_size(length + L - 1)
    # filters onto all references and onto each target's own, side by side: [P, 2E, F]
    spectra = projection.filters_spectrum(torch.cat([projection.x_all, projection.x_own], dim=1), fft_size)
    E = projection.x_all.shape[1]

    def frames(signals: "torch.Tensor") -> "torch.Tensor":  # [X, N] -> [W, X, length]
        return signals[:, : (count - 1) * hop + length].unfold(-1, length, hop).permute(1, 0, 2)

    flat_refs = refs.reshape(J * C, N)
    out = {name: torch.empty(J, count, dtype=torch.float64, device=refs.device) for name in ("sdr", "isr", "sir", "sar", "mix")}
    # the reference channel each estimate channel is compared with (s_true of its column)
    target_row = torch.tensor([t * C + i % C for i, t in enumerate(targets)], device=refs.device)
    for first in range(0, count, chunk_windows):
        last = min(count, first + chunk_windows)
        ref_frames = frames(flat_refs)[first:last]  # [w, P, length]
        est_frames = frames(columns)[first:last]  # [w, E, length]
        ref_spec = torch.fft.rfft(ref_frames, n=fft_size)  # [w, P, F]
        product = ref_spec[:, 0, None] * spectra[0]  # sum over the P reference channels
        for p in range(1, ref_spec.shape[1]):
            product.addcmul_(ref_spec[:, p, None], spectra[p])
        projected = torch.fft.irfft(product, n=fft_size)[..., : length + L - 1]
        proj_all, proj_own = projected[:, :E], projected[:, E:]
        target = ref_frames[:, target_row]  # [w, E, length]: s_true of each column
        pad = (0, L - 1)
        target_padded = torch.nn.functional.pad(target, pad)
        est_padded = torch.nn.functional.pad(est_frames, pad)

        def per_source(values: "torch.Tensor") -> "torch.Tensor":  # [w, E] -> [J, w]
            return values.reshape(values.shape[0], J, C).sum(dim=-1).T

        true_energy = per_source((target * target).sum(-1))
        sdr = _db(true_energy, per_source(((est_frames - target) ** 2).sum(-1)))
        isr = _db(true_energy, per_source(((proj_own - target_padded) ** 2).sum(-1)))
        sir = _db(per_source((proj_own**2).sum(-1)), per_source(((proj_all - proj_own) ** 2).sum(-1)))
        sar = _db(per_source((proj_all**2).sum(-1)), per_source(((est_padded - proj_all) ** 2).sum(-1)))
        # museval: a window where any reference or estimate is silent is NaN for every source
        # (estimates already unusable as a whole are left out: they are NaN anyway)
        silent_frame = _frame_silent(ref_frames, J, C) | _frame_silent(est_frames, J, C, estimate_ok)
        for name, value in (("sdr", sdr), ("isr", isr), ("sir", sir), ("sar", sar)):
            out[name][:, first:last] = torch.where(silent_frame[None, :], float("nan"), value)
        if mix is not None:
            mix_frames = frames(mix)[first:last]  # [w, C, length]
            error = mix_frames[:, None] - ref_frames.reshape(-1, J, C, length)
            mix_sdr = _db(true_energy, (error**2).sum(dim=(-1, -2)).T)
            mix_silent = _frame_silent(ref_frames, J, C) | _frame_silent(mix_frames, 1, C)
            out["mix"][:, first:last] = torch.where(mix_silent[None, :], float("nan"), mix_sdr)

    ok = (estimate_ok & ~_silent(refs))[:, None]
    results = {name: torch.where(ok, value, float("nan")) for name, value in out.items() if name != "mix"}
    mixture_sdr = torch.where(~_silent(refs)[:, None], out["mix"], float("nan")) if mix is not None else None
    return FramewiseScores(mixture_sdr=mixture_sdr, **results)


def _fft_size(n: int) -> int:
    """The smallest 5-smooth number (2^a 3^b 5^c) >= n: a fast FFT length close to n (a power of
    two can be almost twice as long)."""
    best = 1 << int(np.ceil(np.log2(max(n, 1))))
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            size = power35
            while size < n:
                size *= 2
            best = min(best, size)
            power35 *= 3
        power5 *= 5
    return best


def _frame_silent(
    frames: "torch.Tensor", sources: int, channels: int, considered: "torch.Tensor | None" = None
) -> "torch.Tensor":
    """``[w, S*C, length]`` -> ``[w]``: some (considered) source's channel sum is zero over the
    whole window."""
    summed = frames.reshape(frames.shape[0], sources, channels, -1).sum(dim=2)
    silent = (summed == 0).all(dim=-1)
    if considered is not None:
        silent = silent & considered[None, :]
    return silent.any(dim=-1)


def simple_sdr(reference: object, estimate: object, *, dims: tuple[int, ...] = (-1,)) -> "torch.Tensor":
    """``10 log10(|s|^2 / |s - s_hat|^2)`` over ``dims``, batched over the rest: a cheap SDR
    **without distortion filters** for training curves (not comparable to BSS Eval numbers; it
    penalises any gain or filtering of the estimate). NaN where the reference is silent.

    Computed in the input's precision on its device (gradients flow, so it can serve as a loss).
    """
    s = reference if isinstance(reference, torch.Tensor) else torch.as_tensor(np.asarray(reference))
    s_hat = estimate if isinstance(estimate, torch.Tensor) else torch.as_tensor(np.asarray(estimate), device=s.device)
    if s.shape != s_hat.shape:
        raise ShapeError(f"simple_sdr: estimate shape {list(s_hat.shape)} differs from reference shape {list(s.shape)}")
    signal = (s * s).sum(dim=dims)
    error = ((s - s_hat) ** 2).sum(dim=dims)
    value = 10.0 * torch.log10(signal / error)
    return torch.where(signal > 0, value, torch.full_like(value, float("nan")))


__all__ = [
    "FILTER_LENGTH",
    "FramewiseScores",
    "SourcesScores",
    "bss_eval_images_framewise",
    "bss_eval_sources",
    "simple_sdr",
]
