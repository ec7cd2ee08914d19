"""Contract suite for :class:`sepkit.representation.Representation` plugins.

Call :func:`check_representation` from any pytest test; it raises ``AssertionError`` with a message
naming the broken promise, and returns nothing when the representation keeps all of them::

    from sepkit.testing import check_representation

    def test_my_representation_keeps_the_contract():
        check_representation(MyRepresentation(MyRepresentation.Config(), sample_rate=16000))
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from sepkit.errors import ShapeError
from sepkit.representation import Representation


def check_representation(
    representation: Representation,
    *,
    channels: Sequence[int] = (1, 2),
    batch_size: int = 2,
    num_samples: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    round_trip_tolerance: float = 1e-4,
    rejects_non_finite: bool = True,
    seed: int = 0,
) -> None:
    """Check the declared sizes and flags, shapes, frame counts, normalisation inverses, decoding,
    round trip, device, the locality of frames, the magnitude promise and errors.

    ``num_samples`` defaults to half a second (at least 16 hops); a second length that is not a
    multiple of the hop is checked too. ``round_trip_tolerance`` is relative to the signal's peak and
    only applies when ``representation.invertible``. Frames of a segment cut on whole hops must equal
    the whole signal's ``margin_frames`` from its edges (what the streaming engine relies on); with
    ``magnitude_spectrogram``, masks summing to one must split the decoded mixture (what the Wiener
    filter relies on). With ``rejects_non_finite`` a NaN waveform must raise
    :class:`~sepkit.errors.ShapeError`.
    """
    rep = representation
    _expect(isinstance(rep, Representation), f"{type(rep).__name__} is not a sepkit.representation.Representation")
    name = type(rep).__name__
    device = torch.device(device)
    _check_declarations(rep)
    hop = rep.hop_length

    base = num_samples or max(rep.sample_rate // 2, 16 * hop)
    lengths = (base, base + hop // 2 + 1)
    generator = torch.Generator().manual_seed(seed)
    for num_channels in channels:
        for length in lengths:
            waveform = _test_signal(batch_size, num_channels, length, rep.sample_rate, generator).to(device, dtype)
            _check_encode_decode(rep, waveform, round_trip_tolerance)
    local_length = max(base, (3 * rep.margin_frames + 4) * hop)
    waveform = _test_signal(batch_size, channels[0], local_length, rep.sample_rate, generator).to(device, dtype)
    _check_frames_are_local(rep, waveform)
    if rep.magnitude_spectrogram:
        _check_masks_split_the_mixture(rep, waveform)
    _check_bad_inputs(rep, device, dtype, base, rejects_non_finite)


def _check_declarations(rep: Representation) -> None:
    """The sizes and flags the trainer and the engine read: of the right types, consistent."""
    name = type(rep).__name__
    bins, hop, frame_length = rep.num_bins, rep.hop_length, rep.frame_length
    _expect(isinstance(bins, int) and bins >= 1, f"{name}.num_bins must be a positive int, got {bins!r}")
    _expect(isinstance(hop, int) and hop >= 1, f"{name}.hop_length must be a positive int, got {hop!r}")
    _expect(
        isinstance(frame_length, int) and frame_length >= 1,
        f"{name}.frame_length must be a positive int (samples one frame depends on), got {frame_length!r}",
    )
    for flag, value in (("invertible", rep.invertible), ("magnitude_spectrogram", rep.magnitude_spectrogram)):
        _expect(isinstance(value, bool), f"{name}.{flag} must be a bool, got {value!r}")
    _expect(
        math.isclose(rep.frames_per_second, rep.sample_rate / hop),
        f"{name}.frames_per_second is {rep.frames_per_second}, expected sample_rate / hop_length = {rep.sample_rate / hop}",
    )


def _check_frames_are_local(rep: Representation, waveform: torch.Tensor) -> None:
    """What streaming relies on: a segment that starts and ends on whole hops has the whole
    signal's frames, ``margin_frames`` away from its edges (``frame_length`` is no underestimate)."""
    name, hop, margin = type(rep).__name__, rep.hop_length, rep.margin_frames
    whole, _ = rep.encode(waveform)
    first, frames = margin, margin + 4  # the segment: frames [first, first + frames + 2 margin)
    segment = waveform[..., first * hop : (first + frames + 2 * margin) * hop]
    part, _ = rep.encode(segment)
    inner = part[..., margin : margin + frames]
    expected = whole[..., first + margin : first + margin + frames]
    scale = float(expected.abs().max()) + 1e-6
    error = float((inner - expected).abs().max()) if inner.shape == expected.shape else float("inf")
    _expect(
        error <= 1e-4 * scale,
        f"{name}: the frames of a segment starting {first} hops in, {margin} frames (margin_frames) from "
        f"its edges, differ from the whole signal's by {error:.3g} (peak {scale:.3g}): frame_length = "
        f"{rep.frame_length} understates the samples a frame depends on, or frames do not shift in whole hops",
    )


def _check_masks_split_the_mixture(rep: Representation, waveform: torch.Tensor) -> None:
    """``magnitude_spectrogram = True`` promises what the Wiener filter uses: linear magnitudes are
    non-negative, and masks that sum to one split the decoded mixture exactly (one frame length away
    from the ends, where an inverse STFT of non-centred frames divides by a vanishing window sum)."""
    name = type(rep).__name__
    length = waveform.shape[-1]
    features, context = rep.encode(waveform)
    linear = rep.to_linear(features)
    _expect(
        bool((linear >= -1e-6 * (float(linear.abs().max()) + 1.0)).all()),
        f"{name} declares magnitude_spectrogram but to_linear gives negative magnitudes",
    )
    generator = torch.Generator().manual_seed(1)
    mask = torch.rand(features.shape, generator=generator).to(features.device, features.dtype)
    parts = rep.decode(rep.from_linear(torch.stack([mask * linear, (1 - mask) * linear], dim=1)), context, length)
    mixture = rep.decode(features, context, length)
    inner = slice(rep.frame_length, length - rep.frame_length)  # edges: few frames, amplified rounding
    scale = float(mixture[..., inner].abs().max()) + 1e-6
    error = float((parts.sum(dim=1) - mixture)[..., inner].abs().max())
    _expect(
        error <= 1e-4 * scale,
        f"{name} declares magnitude_spectrogram, but sources whose linear magnitudes are the mixture's "
        f"times masks that sum to one decode to a sum that differs from the decoded mixture by {error:.3g} "
        f"(peak {scale:.3g}); the Wiener post-filter relies on it",
    )


def _check_encode_decode(rep: Representation, waveform: torch.Tensor, tolerance: float) -> None:
    name = type(rep).__name__
    batch, channels, length = waveform.shape
    where = f"{name}.encode of a [{batch}, {channels}, {length}] waveform"
    frames = rep.num_frames(length)
    features, context = rep.encode(waveform)
    expected = (batch, channels, rep.num_bins, frames)
    _expect(
        isinstance(features, torch.Tensor) and tuple(features.shape) == expected,
        f"{where} gave features {_shape(features)}, expected {list(expected)} "
        f"([batch, channels, num_bins, num_frames({length})])",
    )
    _expect(
        features.device == waveform.device,
        f"{where} moved the features to {features.device} (input on {waveform.device})",
    )
    _expect(features.is_floating_point(), f"{where} gave {features.dtype} features, expected a floating-point dtype")
    _expect(bool(torch.isfinite(features).all()), f"{where} gave non-finite features")
    alone, _ = rep.encode(waveform[:1])
    _expect(
        torch.allclose(alone, features[:1], rtol=1e-4, atol=1e-5),
        f"{where}: the first example's features change with the rest of the batch",
    )

    _check_normalisation(rep, features)

    decoded = rep.decode(features, context, length)
    _expect(
        isinstance(decoded, torch.Tensor) and tuple(decoded.shape) == (batch, channels, length),
        f"{name}.decode of features {list(features.shape)} gave {_shape(decoded)}, expected {[batch, channels, length]}",
    )
    _expect(
        decoded.device == waveform.device,
        f"{name}.decode moved the waveform to {decoded.device} (input on {waveform.device})",
    )
    _expect(bool(torch.isfinite(decoded).all()), f"{name}.decode gave non-finite samples")

    sources = torch.stack([features, 0.5 * features], dim=1)  # [B, N=2, C, F, T]
    decoded_sources = rep.decode(sources, context, length)
    _expect(
        isinstance(decoded_sources, torch.Tensor) and tuple(decoded_sources.shape) == (batch, 2, channels, length),
        f"{name}.decode of source features {list(sources.shape)} gave {_shape(decoded_sources)}, "
        f"expected {[batch, 2, channels, length]}",
    )
    scale = decoded.abs().max().clamp_min(1e-6)
    _expect(
        bool(((decoded_sources[:, 0] - decoded).abs().max() <= 1e-4 * scale)),
        f"{name}.decode: source 0 of a [B, N, C, F, T] stack decodes differently from the same features alone",
    )

    if rep.invertible:
        error = (decoded - waveform).abs().max() / waveform.abs().max()
        _expect(
            bool(error <= tolerance),
            f"{name} claims invertible but decode(encode(x)) differs from x by {float(error):.3g} of the peak "
            f"(tolerance {tolerance:g}) for a [{batch}, {channels}, {length}] waveform",
        )


def _check_normalisation(rep: Representation, features: torch.Tensor) -> None:
    name = type(rep).__name__
    features = features.detach().clone().requires_grad_(True)
    linear = rep.to_linear(features)
    _expect(
        isinstance(linear, torch.Tensor) and linear.shape == features.shape and linear.device == features.device,
        f"{name}.to_linear changed the shape or device: {list(features.shape)} -> {_shape(linear)}",
    )
    _expect(bool(torch.isfinite(linear).all()), f"{name}.to_linear gave non-finite magnitudes for encoded features")
    back = rep.from_linear(linear).detach()
    error = float((back - features.detach()).abs().max())
    _expect(
        torch.allclose(back, features, rtol=1e-4, atol=1e-5),
        f"{name}.from_linear(to_linear(features)) differs from the features by {error:.3g}",
    )
    again = rep.to_linear(rep.from_linear(linear.detach())).detach()
    error = float((again - linear.detach()).abs().max())
    _expect(
        torch.allclose(again, linear.detach(), rtol=1e-4, atol=1e-5),
        f"{name}.to_linear(from_linear(magnitudes)) differs from the magnitudes by {error:.3g}",
    )
    _expect(linear.requires_grad, f"{name}.to_linear is not differentiable (the additive penalty trains through it)")
    linear.sum().backward()
    _expect(
        features.grad is not None and bool(torch.isfinite(features.grad).all()),
        f"{name}.to_linear gives no finite gradient",
    )


def _check_bad_inputs(
    rep: Representation, device: torch.device, dtype: torch.dtype, length: int, rejects_non_finite: bool
) -> None:
    name = type(rep).__name__
    good = torch.zeros(1, 1, length, device=device, dtype=dtype)
    bad_inputs = {
        "a [samples] waveform (no batch or channel dimension)": good[0, 0],
        "a [channels, samples] waveform (no batch dimension)": good[0],
        "a 4-dimensional waveform": good[..., None],
        "an empty waveform": good[..., :0],
    }
    if rejects_non_finite:
        nan = good.clone()
        nan[..., length // 2] = float("nan")
        bad_inputs["a waveform containing NaN"] = nan
    for what, waveform in bad_inputs.items():
        _expect_shape_error(lambda: rep.encode(waveform), f"{name}.encode of {what} {list(waveform.shape)}")

    features, context = rep.encode(good)
    batch, channels, _, frames = features.shape
    wrong_bins = torch.zeros(batch, channels, rep.num_bins + 1, frames, device=device, dtype=features.dtype)
    _expect_shape_error(
        lambda: rep.decode(wrong_bins, context, length),
        f"{name}.decode of features with {rep.num_bins + 1} bins (expected {rep.num_bins})",
    )
    _expect_shape_error(lambda: rep.decode(features[0], context, length), f"{name}.decode of 3-dimensional features")


def _expect_shape_error(call, what: str) -> None:
    try:
        call()
    except ShapeError as error:
        _expect(bool(str(error).strip()), f"{what} raised ShapeError with an empty message")
        return
    except Exception as error:  # noqa: BLE001 - the point is to report what was raised instead
        raise AssertionError(
            f"{what} must raise sepkit.errors.ShapeError, raised {type(error).__name__}: {error}"
        ) from error
    raise AssertionError(f"{what} must raise sepkit.errors.ShapeError, but it returned")


def _test_signal(batch: int, channels: int, length: int, sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """Noise plus a tone per channel, peak about 0.9: every bin has energy, no bin is silent."""
    time = torch.arange(length, dtype=torch.float64) / sample_rate
    frequencies = sample_rate * (0.05 + 0.3 * torch.rand(batch, channels, 1, generator=generator, dtype=torch.float64))
    tone = 0.5 * torch.sin(2 * math.pi * frequencies * time)
    noise = 0.1 * torch.randn(batch, channels, length, generator=generator, dtype=torch.float64)
    return tone + noise


def _shape(value: object) -> object:
    return list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)
