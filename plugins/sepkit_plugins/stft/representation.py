"""The ``magnitude-stft`` representation: (log-)magnitude STFT in, mixture-phase inverse STFT out.

This is the paper's representation: ``features = log(1 + |STFT(x)|)``, and source estimates are
turned back into audio with the *mixture's* phase (no Griffin-Lim, no Wiener filter). Everything runs
with torch on the device the tensors are on.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt

from sepkit.component import ComponentConfig, ConfigValues, checks_values
from sepkit.errors import ShapeError
from sepkit.representation import Representation

WindowName = Literal["hann", "hamming", "blackman", "rectangular"]

#: Periodic ("fftbins=True") windows, the same as scipy.signal.get_window and so librosa.stft.
_WINDOWS: dict[str, Callable[..., torch.Tensor]] = {
    "hann": lambda n, **kw: torch.hann_window(n, periodic=True, **kw),
    "hamming": lambda n, **kw: torch.hamming_window(n, periodic=True, **kw),
    "blackman": lambda n, **kw: torch.blackman_window(n, periodic=True, **kw),
    "rectangular": lambda n, **kw: torch.ones(n, **kw),
}

#: Overlap-add envelopes below this are treated as "no frame covers this sample" (as torch.istft).
_ENVELOPE_FLOOR = 1e-11


class MagnitudeSTFTConfig(ComponentConfig):
    n_fft: PositiveInt = Field(512, ge=2, description="FFT size (bins = n_fft // 2 + 1).")
    hop_length: PositiveInt = Field(256, description="Samples between frames.")
    window: WindowName = Field("hann", description="Analysis window (periodic, as librosa's).")
    center: bool = Field(True, description="Centre frames (zero padding of n_fft // 2 at both ends).")
    normalisation: Literal["log1p", "none"] = Field("log1p", description="log(1 + magnitude), or raw magnitudes.")


class MagnitudeSTFT(Representation):
    """``[B, C, L]`` waveform -> ``[B, C, F, T]`` (log1p-)magnitudes, context = complex mixture STFT.

    Frames are those of ``librosa.stft(y, center=..., pad_mode="constant")``. ``decode`` is the
    least-squares inverse STFT (the overlap-add of ``torch.istft``, written with ``fold`` so that
    samples no frame covers become zeros instead of an error), applied to the source magnitudes with
    the mixture's phase; a zero-magnitude mixture bin gets phase 0.
    """

    Config = MagnitudeSTFTConfig
    config: MagnitudeSTFTConfig
    magnitude_spectrogram = True

    def __init__(self, config: ConfigValues, *, sample_rate: int) -> None:
        super().__init__(config, sample_rate=sample_rate)
        config = self.config
        self._windows: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        self._envelopes: dict[tuple[torch.device, torch.dtype, int], torch.Tensor] = {}
        # Exact reconstruction needs every sample under some window: centred frames (non-centred ones
        # leave the edges uncovered), a hop of at most n_fft // 2 + 1 (or the last frame can end before
        # the last sample) and a window whose overlap-add never vanishes (NOLA).
        self.invertible = (
            bool(config.center) and config.hop_length <= config.n_fft // 2 + 1 and self._nola_holds()
        )

    # --- sizes -------------------------------------------------------------------------------

    @property
    def num_bins(self) -> int:
        return self.config.n_fft // 2 + 1

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_length(self) -> int:
        return self.config.n_fft

    @property
    def min_samples(self) -> int:
        """The shortest waveform that gives one frame."""
        return 1 if self.config.center else self.config.n_fft

    def num_frames(self, num_samples: int) -> int:
        num_samples = int(num_samples)
        if num_samples < self.min_samples:
            raise ShapeError(self._too_short(num_samples))
        return 1 + (num_samples + 2 * self._padding - self.config.n_fft) // self.config.hop_length

    @property
    def _padding(self) -> int:
        return self.config.n_fft // 2 if self.config.center else 0

    # --- normalisation -------------------------------------------------------------------------

    def to_linear(self, features: torch.Tensor) -> torch.Tensor:
        """exp(x) - 1 for log1p features (the exact inverse, unclamped so gradients never vanish)."""
        return torch.expm1(features) if self.config.normalisation == "log1p" else features

    def from_linear(self, magnitudes: torch.Tensor) -> torch.Tensor:
        """log(1 + m) for log1p features; ``magnitudes`` are non-negative."""
        return torch.log1p(magnitudes) if self.config.normalisation == "log1p" else magnitudes

    # --- transforms ----------------------------------------------------------------------------

    def encode(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, C, L]`` -> (features ``[B, C, F, T]``, complex mixture STFT ``[B, C, F, T]``)."""
        self._check_waveform(waveform)
        batch, channels, length = waveform.shape
        spectrogram = torch.stft(
            waveform.reshape(batch * channels, length),
            n_fft=self.config.n_fft,
            hop_length=self.config.hop_length,
            win_length=self.config.n_fft,
            window=self._window(waveform.device, waveform.dtype),
            center=self.config.center,
            pad_mode="constant",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        spectrogram = spectrogram.reshape(batch, channels, *spectrogram.shape[-2:])
        return self.from_linear(_magnitude(spectrogram)), spectrogram

    def decode(self, features: torch.Tensor, context: torch.Tensor, length: int) -> torch.Tensor:
        """Source features ``[B, N, C, F, T]`` or ``[B, C, F, T]`` -> ``[B, N, C, L]`` or ``[B, C, L]``.

        ``context`` is the mixture STFT from :meth:`encode` (frames matching ``features``).
        """
        self._check_decode_inputs(features, context, length)
        if features.dim() == 5:
            context = context.unsqueeze(1)  # one mixture phase for every source
        magnitudes = self.to_linear(features).clamp_min(0.0)  # a negative magnitude would flip the phase
        phase = torch.angle(context).to(magnitudes.dtype)  # angle(0) == 0: silent bins get phase 0
        spectrogram = torch.polar(magnitudes, phase.expand_as(magnitudes))
        return self._istft(spectrogram, int(length))

    def _istft(self, spectrogram: torch.Tensor, length: int) -> torch.Tensor:
        """Least-squares overlap-add inverse of :meth:`encode`'s STFT: ``[..., F, T]`` -> ``[..., length]``."""
        n_fft, hop = self.config.n_fft, self.config.hop_length
        leading, frames = spectrogram.shape[:-2], spectrogram.shape[-1]
        window = self._window(spectrogram.device, spectrogram.real.dtype)
        segments = torch.fft.irfft(spectrogram, n=n_fft, dim=-2) * window[:, None]  # [..., n_fft, T]
        span = n_fft + hop * (frames - 1)
        summed = _overlap_add(segments.reshape(-1, n_fft, frames), hop).reshape(*leading, span)
        envelope = self._envelope(spectrogram.device, window.dtype, frames)
        covered = envelope > _ENVELOPE_FLOOR
        signal = torch.where(covered, summed / torch.where(covered, envelope, 1.0), 0.0)
        signal = signal[..., self._padding : self._padding + length]
        if signal.shape[-1] < length:  # samples past the last frame: nothing to reconstruct from
            signal = F.pad(signal, (0, length - signal.shape[-1]))
        return signal

    # --- cached tensors ------------------------------------------------------------------------

    def _window(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (device, dtype)
        window = self._windows.get(key)
        if window is None:
            with torch.inference_mode(False):  # a cached inference tensor would break later autograd use
                window = _WINDOWS[self.config.window](self.config.n_fft, dtype=dtype, device=device)
            self._windows[key] = window
        return window

    def _envelope(self, device: torch.device, dtype: torch.dtype, frames: int) -> torch.Tensor:
        """Overlap-add of the squared window over ``frames`` frames (the last few sizes are kept)."""
        key = (device, dtype, frames)
        envelope = self._envelopes.get(key)
        if envelope is None:
            with torch.inference_mode(False):
                envelope = _overlap_add_squared(self._window(device, dtype), frames, self.config.hop_length)
            if len(self._envelopes) >= 8:
                self._envelopes.pop(next(iter(self._envelopes)))
            self._envelopes[key] = envelope
        return envelope

    def _nola_holds(self) -> bool:
        """True when the steady-state overlap-add of the squared window never vanishes."""
        n_fft, hop = self.config.n_fft, self.config.hop_length
        if hop > n_fft:
            return False  # gaps between frames
        window = _WINDOWS[self.config.window](n_fft, dtype=torch.float64)
        envelope = _overlap_add_squared(window, math.ceil(n_fft / hop) + 1, hop)
        steady = envelope[n_fft - hop : n_fft]  # one period where every overlapping frame is present
        return bool(steady.min() > _ENVELOPE_FLOOR)

    # --- input checks --------------------------------------------------------------------------

    def _too_short(self, num_samples: int) -> str:
        framing = "centred" if self.config.center else "non-centred"
        return (
            f"magnitude-stft: a waveform of {num_samples} samples is too short; {framing} frames with "
            f"n_fft={self.config.n_fft} need at least {self.min_samples} samples"
        )

    def _check_waveform(self, waveform: torch.Tensor) -> None:
        if not isinstance(waveform, torch.Tensor) or waveform.dim() != 3:
            shape = list(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
            raise ShapeError(f"magnitude-stft encodes waveforms [batch, channels, samples], got {shape}")
        if not waveform.is_floating_point():
            raise ShapeError(f"magnitude-stft encodes floating-point waveforms, got {waveform.dtype}")
        if waveform.shape[-1] < self.min_samples:
            raise ShapeError(self._too_short(waveform.shape[-1]))
        if checks_values() and not bool(torch.isfinite(waveform).all()):
            raise ShapeError(f"magnitude-stft: the waveform {list(waveform.shape)} contains NaN or infinite samples")

    def _check_decode_inputs(self, features: torch.Tensor, context: torch.Tensor, length: int) -> None:
        expected = f"[batch, sources, channels, {self.num_bins}, frames] or [batch, channels, {self.num_bins}, frames]"
        if (
            not isinstance(features, torch.Tensor)
            or features.dim() not in (4, 5)
            or features.shape[-2] != self.num_bins
        ):
            shape = list(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ShapeError(f"magnitude-stft decodes source features {expected}, got {shape}")
        if not isinstance(context, torch.Tensor) or not context.is_complex():
            raise ShapeError(
                "magnitude-stft decodes with the context that encode returned (the complex mixture "
                f"STFT), got {type(context).__name__}"
                + (f" of dtype {context.dtype}" if isinstance(context, torch.Tensor) else "")
            )
        mixture_shape = (features.shape[0], *features.shape[-3:])
        if tuple(context.shape) != mixture_shape:
            raise ShapeError(
                f"magnitude-stft: source features {list(features.shape)} do not match the mixture "
                f"context {list(context.shape)}; expected a context of shape {list(mixture_shape)}"
            )
        if int(length) < 1:
            raise ShapeError(f"magnitude-stft: decode length must be at least 1 sample, got {length}")
        if not bool(torch.isfinite(features).all()):
            raise ShapeError(
                f"magnitude-stft: the source features {list(features.shape)} contain NaN or infinite values"
            )


def _overlap_add(segments: torch.Tensor, hop: int) -> torch.Tensor:
    """Frames placed every ``hop`` samples and summed: ``[N, n_fft, T]`` -> ``[N, n_fft + hop * (T - 1)]``.

    When ``hop`` divides ``n_fft`` (the usual STFTs) this is ``n_fft / hop`` shifted additions of
    hop-sized blocks, several times faster on a CPU than ``fold`` for long frames (3.1 s -> 0.5 s
    for 4 x 2584 frames of 4096 samples); otherwise ``fold``.
    """
    count, n_fft, frames = segments.shape
    if n_fft % hop:
        span = n_fft + hop * (frames - 1)
        return F.fold(segments, output_size=(1, span), kernel_size=(1, n_fft), stride=(1, hop)).reshape(count, span)
    blocks = segments.reshape(count, n_fft // hop, hop, frames)  # block j of frame t lands at hop t + j
    out = segments.new_zeros(count, hop, frames + n_fft // hop - 1)
    for j in range(n_fft // hop):
        out[:, :, j : j + frames] += blocks[:, j]
    return out.transpose(1, 2).reshape(count, -1)


def _overlap_add_squared(window: torch.Tensor, frames: int, hop: int) -> torch.Tensor:
    """``sum_k window[n - k * hop] ** 2``: the envelope that the inverse STFT divides by."""
    n_fft = window.shape[0]
    span = n_fft + hop * (frames - 1)
    blocks = window.square()[None, :, None].expand(1, n_fft, frames)
    return F.fold(blocks, output_size=(1, span), kernel_size=(1, n_fft), stride=(1, hop)).reshape(span)


def _magnitude(spectrogram: torch.Tensor) -> torch.Tensor:
    """``|z|`` of a complex STFT. On a CPU ``sqrt(re^2 + im^2)``: ``torch.abs`` of a complex tensor
    calls ``hypot`` per element, 3-4x slower (the cost of streaming excerpts, docs/performance.md),
    and the two agree to float rounding (an STFT of audio is far from overflowing its squares).
    ``torch.abs`` where gradients flow (its gradient at 0 is 0, the square root's is not finite)
    and on other devices, where it is one fused kernel."""
    if spectrogram.device.type != "cpu" or (spectrogram.requires_grad and torch.is_grad_enabled()):
        return spectrogram.abs()
    return torch.addcmul(spectrogram.real.square(), spectrogram.imag, spectrogram.imag).sqrt_()
