"""The magnitude-stft representation: frames like librosa, exact inverse with the mixture phase."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch

from sepkit.errors import ShapeError
from sepkit.plugins import registry
from sepkit_plugins.stft.representation import MagnitudeSTFT

SAMPLE_RATE = 8192
LIBROSA_WINDOWS = {"hann": "hann", "hamming": "hamming", "blackman": "blackman", "rectangular": "boxcar"}


def make(**config) -> MagnitudeSTFT:
    cls = registry("representation").get("magnitude-stft").cls
    return cls(cls.parse_config(config), sample_rate=SAMPLE_RATE)


def noise(*shape: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def sines(batch: int, channels: int, length: int) -> torch.Tensor:
    time = torch.arange(length, dtype=torch.float64) / SAMPLE_RATE
    freqs = torch.tensor([110.0, 440.0, 1234.5, 3000.0])[: batch * channels].reshape(batch, channels, 1)
    return (0.8 * torch.sin(2 * math.pi * freqs * time)).float()


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def test_registered_with_the_paper_defaults():
    rep = make()
    assert rep.config.model_dump() == {
        "n_fft": 512, "hop_length": 256, "window": "hann", "center": True, "normalisation": "log1p"
    }
    assert rep.num_bins == 257 and rep.hop_length == 256 and rep.invertible
    assert rep.frames_per_second == SAMPLE_RATE / 256


@pytest.mark.parametrize("signal", ["noise", "sines"])
@pytest.mark.parametrize("channels", [1, 2])
def test_round_trip_with_the_mixture_phase_reproduces_the_waveform(signal, channels):
    rep = make()
    length = 5000  # not a multiple of the hop
    batch = 2
    x = noise(batch, channels, length) if signal == "noise" else sines(batch, channels, length)
    features, context = rep.encode(x)
    assert features.shape == (batch, channels, 257, rep.num_frames(length)) == context.shape
    assert features.dtype == torch.float32 and context.is_complex()
    y = rep.decode(features, context, length)
    assert y.shape == x.shape
    assert (y - x).abs().max() <= 1e-5 * x.abs().max()


def test_source_stack_decodes_per_source_and_channels_stay_apart():
    rep = make(n_fft=256, hop_length=64)
    x = noise(2, 2, 3000)
    features, context = rep.encode(x)
    sources = torch.stack([features, torch.zeros_like(features), features], dim=1)  # [B, N=3, C, F, T]
    y = rep.decode(sources, context, 3000)
    assert y.shape == (2, 3, 2, 3000)
    assert torch.allclose(y[:, 0], x, atol=1e-5) and torch.allclose(y[:, 2], x, atol=1e-5)
    assert y[:, 1].abs().max() == 0  # zero features -> zero magnitude -> silence
    swapped, _ = rep.encode(x.flip(1))  # each channel is encoded on its own
    assert torch.equal(swapped, features.flip(1))


def test_decode_matches_torch_istft():
    rep = make()
    x = noise(3, 1, 4321, dtype=torch.float64)
    features, context = rep.encode(x)
    ours = rep.decode(features * 0.7, context, 4321)  # any magnitudes, with the mixture phase
    spectrogram = torch.polar(torch.expm1(features * 0.7), torch.angle(context))
    reference = torch.istft(
        spectrogram.reshape(3, 257, -1), n_fft=512, hop_length=256,
        window=torch.hann_window(512, dtype=torch.float64), center=True, length=4321,
    ).reshape(3, 1, 4321)
    assert torch.allclose(ours, reference, atol=1e-12)


def test_decode_applies_source_magnitudes_to_the_mixture_phase():
    rep = make()
    x = noise(2, 1, 3000)
    features, context = rep.encode(x)
    half = rep.from_linear(0.5 * rep.to_linear(features))  # a source at half the mixture's magnitude
    assert torch.allclose(rep.decode(half, context, 3000), 0.5 * x, atol=1e-5)


def test_silent_mixture_bins_get_phase_zero():
    rep = make(n_fft=64, hop_length=16, window="rectangular", normalisation="none")
    silence = torch.zeros(1, 1, 640)
    _, context = rep.encode(silence)
    assert (context == 0).all()
    ones = torch.ones(1, 1, 33, rep.num_frames(640))
    y = rep.decode(ones, context, 640)
    assert torch.isfinite(y).all()
    # unit magnitudes with phase 0 everywhere: each frame is an impulse at its start
    reference = torch.istft(
        torch.ones(1, 33, rep.num_frames(640), dtype=torch.complex64), n_fft=64, hop_length=16,
        window=torch.ones(64), center=True, length=640,
    )
    assert torch.allclose(y[0], reference, atol=1e-6)
    # frame t starts at sample 16 t - 32 (centred); four frames overlap everywhere inside
    assert torch.allclose(y[0, 0, 16:609:16], torch.full((38,), 0.25))
    assert (y[0, 0].reshape(40, 16)[:, 1:] == 0).all()


@pytest.mark.parametrize("window", sorted(LIBROSA_WINDOWS))
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize(("n_fft", "hop_length"), [(512, 256), (511, 100)])
def test_magnitudes_and_frames_match_librosa(window, center, n_fft, hop_length):
    rep = make(n_fft=n_fft, hop_length=hop_length, window=window, center=center, normalisation="none")
    x = noise(2, 2, 3001)
    magnitudes, _ = rep.encode(x)
    expected = np.abs(
        librosa.stft(
            x.double().numpy(), n_fft=n_fft, hop_length=hop_length, window=LIBROSA_WINDOWS[window],
            center=center, pad_mode="constant",
        )
    )
    assert magnitudes.shape == expected.shape
    assert magnitudes.shape[-1] == rep.num_frames(3001)
    actual = magnitudes.double().numpy()
    assert relative_error(actual, expected) < 1e-4  # max |a - b| / max |b|
    significant = expected > 1e-2 * expected.max()  # elementwise where float32 rounding is not dominant
    assert significant.mean() > 0.99
    assert np.max(np.abs(actual - expected)[significant] / expected[significant]) < 1e-4


def test_log1p_features_and_their_inverse():
    rep = make()
    x = sines(1, 2, 2048)
    features, context = rep.encode(x)
    assert torch.allclose(features, torch.log1p(context.abs()))
    assert torch.allclose(rep.to_linear(features), context.abs(), rtol=1e-5, atol=1e-6)
    assert torch.allclose(rep.from_linear(rep.to_linear(features)), features, atol=1e-6)
    raw = make(normalisation="none")
    assert torch.equal(raw.to_linear(features), features) and torch.equal(raw.from_linear(features), features)
    grad = torch.autograd.grad(rep.to_linear(features.requires_grad_(True)).sum(), features)[0]
    assert torch.allclose(grad, torch.exp(features))  # d/dx (e^x - 1)


@pytest.mark.parametrize("length", [1, 255, 256, 257, 4096, 4097])
@pytest.mark.parametrize("center", [True, False])
def test_num_frames_equals_the_frames_encode_gives(length, center):
    rep = make(center=center)
    if length < rep.min_samples:
        with pytest.raises(ShapeError, match=f"{length} samples is too short.*at least 512"):
            rep.num_frames(length)
        return
    expected = 1 + length // 256 if center else 1 + (length - 512) // 256
    assert rep.num_frames(length) == expected == rep.encode(torch.zeros(1, 1, length))[0].shape[-1]


def test_non_centred_frames_reconstruct_the_covered_samples_and_are_not_invertible():
    rep = make(center=False, n_fft=256, hop_length=64)
    assert not rep.invertible
    x = noise(1, 1, 2000, dtype=torch.float64)  # float64: the edges divide by a tiny window envelope
    y = rep.decode(*rep.encode(x), 2000)
    covered = 64 * (rep.num_frames(2000) - 1) + 256  # samples under some frame
    assert torch.allclose(y[..., 1:covered], x[..., 1:covered], atol=1e-8)  # sample 0: Hann window is 0 there
    assert y[..., 0] == 0
    assert (y[..., covered:] == 0).all()


@pytest.mark.parametrize(
    ("config", "invertible"),
    [
        ({"n_fft": 64, "hop_length": 16}, True),
        ({"n_fft": 64, "hop_length": 33, "window": "hamming"}, True),  # hop n_fft // 2 + 1: still covered
        ({"n_fft": 64, "hop_length": 34, "window": "hamming"}, False),  # the last frame can end too early
        ({"n_fft": 64, "hop_length": 64, "window": "rectangular"}, False),
        ({"n_fft": 64, "hop_length": 80}, False),  # gaps between frames
        ({"n_fft": 64, "hop_length": 16, "center": False}, False),  # edges not covered
    ],
)
def test_invertible_says_whether_every_length_round_trips(config, invertible):
    rep = make(**config)
    assert rep.invertible is invertible
    errors = []
    for length in range(200, 264):  # every remainder modulo the hop
        x = noise(1, 1, length, seed=length, dtype=torch.float64)
        y = rep.decode(*rep.encode(x), length)
        assert torch.isfinite(y).all()
        errors.append(float((y - x).abs().max()))
    assert (max(errors) < 1e-9) is invertible


def test_double_precision_is_kept():
    rep = make()
    x = noise(1, 1, 3000, dtype=torch.float64)
    features, _ = rep.encode(x)
    assert features.dtype == torch.float64
    assert (rep.decode(*rep.encode(x), 3000) - x).abs().max() < 1e-12


def test_window_is_created_once_per_device_and_dtype(monkeypatch):
    rep = make()
    calls = []
    original = torch.hann_window
    monkeypatch.setattr(torch, "hann_window", lambda *a, **k: calls.append(k.get("dtype")) or original(*a, **k))
    for _ in range(3):
        rep.decode(*rep.encode(noise(1, 1, 1000)), 1000)
    rep.encode(noise(1, 1, 1000, dtype=torch.float64))
    assert calls == [torch.float32, torch.float64]


def test_cached_tensors_made_under_inference_mode_still_allow_training():
    rep = make()
    with torch.inference_mode():
        rep.decode(*rep.encode(noise(1, 1, 3000)), 3000)  # separation fills the caches first
    features, context = rep.encode(noise(1, 1, 3000))
    features.requires_grad_(True)
    rep.decode(features, context, 3000).square().sum().backward()  # e.g. a waveform loss
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1000,), r"encodes waveforms \[batch, channels, samples\], got \[1000\]"),
        ((2, 1000), r"got \[2, 1000\]"),
        ((1, 1, 2, 1000), r"got \[1, 1, 2, 1000\]"),
        ((1, 1, 0), r"0 samples is too short; centred frames with n_fft=512 need at least 1 samples"),
    ],
)
def test_bad_waveforms_raise_shape_errors(shape, message):
    with pytest.raises(ShapeError, match=message):
        make().encode(torch.zeros(shape))


def test_short_waveform_for_non_centred_frames():
    with pytest.raises(ShapeError, match="511 samples is too short; non-centred frames with n_fft=512 need at least 512"):
        make(center=False).encode(torch.zeros(1, 1, 511))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_inputs_raise_shape_errors(bad):
    rep = make()
    x = torch.zeros(1, 2, 1000)
    x[0, 1, 500] = bad
    with pytest.raises(ShapeError, match=r"waveform \[1, 2, 1000\] contains NaN or infinite"):
        rep.encode(x)
    features, context = rep.encode(torch.zeros(1, 2, 1000))
    features[0, 0, 3, 1] = bad
    with pytest.raises(ShapeError, match="source features .* contain NaN or infinite"):
        rep.decode(features, context, 1000)


def test_integer_waveforms_are_rejected():
    with pytest.raises(ShapeError, match="floating-point waveforms, got torch.int16"):
        make().encode(torch.zeros(1, 1, 1000, dtype=torch.int16))


def test_decode_checks_features_against_the_context():
    rep = make()
    features, context = rep.encode(torch.zeros(2, 1, 1000))
    with pytest.raises(ShapeError, match=r"expects|decodes source features .*got \[2, 1, 256, 4\]"):
        rep.decode(features[..., :256, :], context, 1000)
    with pytest.raises(ShapeError, match=r"do not match the mixture context \[2, 1, 257, 4\]"):
        rep.decode(features[..., :3], context, 1000)
    with pytest.raises(ShapeError, match="complex mixture STFT"):
        rep.decode(features, features, 1000)
    with pytest.raises(ShapeError, match="at least 1 sample"):
        rep.decode(features, context, 0)


def test_unknown_config_keys_and_bad_values_are_rejected():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="window"):
        MagnitudeSTFT.parse_config({"window": "kaiser"})
    with pytest.raises(ValidationError, match="extra"):
        MagnitudeSTFT.parse_config({"nfft": 512})


def test_cpu_magnitudes_equal_torch_abs_of_the_stft_and_keep_their_gradient():
    """The CPU magnitude is sqrt(re^2 + im^2) (faster than torch.abs of a complex tensor): the same
    values as torch.stft(...).abs() to float rounding, from silence to full-scale noise, and
    torch.abs where gradients flow (finite at zero magnitudes)."""
    rep = make(normalisation="none")
    x = torch.cat([noise(3, 2, 4000), 1e-6 * noise(1, 2, 4000, seed=1), torch.zeros(1, 2, 4000)])
    magnitudes, context = rep.encode(x)
    reference = torch.stft(x.reshape(-1, 4000), 512, 256, window=torch.hann_window(512), center=True,
                           pad_mode="constant", return_complex=True).abs().reshape(magnitudes.shape)
    torch.testing.assert_close(magnitudes, reference, rtol=1e-6, atol=1e-9)
    assert torch.equal(context.abs(), reference)
    assert bool((magnitudes[-1] == 0).all())
    loud = torch.cat([x, torch.zeros(1, 2, 4000)]).requires_grad_(True)
    grad = torch.autograd.grad(rep.encode(loud)[0].sum(), loud)[0]
    assert bool(torch.isfinite(grad).all()) and bool((grad[-1] == 0).all())
