"""The contract suites in sepkit.testing, run against the built-ins, and shown to catch broken plugins."""

from __future__ import annotations

import pytest
import torch

from sepkit.divergence import CriticLoss
from sepkit.plugins import registry
from sepkit.testing import check_divergence, check_representation

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def representation(**config):
    cls = registry("representation").get("magnitude-stft").cls
    return cls(cls.parse_config(config), sample_rate=8192)


def divergence(name: str, **config):
    cls = registry("divergence").get(name).cls
    return cls(cls.parse_config(config))


# --- the built-ins keep their contracts ----------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "config",
    [
        {},  # the paper: n_fft 512, hop 256, Hann, centred, log1p
        {"normalisation": "none"},
        {"center": False},  # not invertible: no round trip is claimed
        {"n_fft": 1024, "hop_length": 256, "window": "hamming"},
        {"n_fft": 255, "hop_length": 100, "window": "blackman"},
        {"n_fft": 64, "hop_length": 64, "window": "rectangular"},
    ],
)
def test_magnitude_stft_keeps_the_representation_contract(config, device):
    check_representation(representation(**config), device=device)


def test_magnitude_stft_keeps_the_contract_in_double_precision():
    check_representation(representation(), dtype=torch.float64, round_trip_tolerance=1e-12, channels=(1,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("wasserstein-gp", {}),
        ("wasserstein-gp", {"one_sided": False}),
        ("wasserstein-gp", {"gradient_penalty": 0.0}),
        ("js", {}),
        ("js", {"non_saturating": False}),
        ("kl", {}),
        ("kl", {"non_saturating": True}),
    ],
)
def test_builtin_divergences_keep_the_divergence_contract(name, config, device):
    check_divergence(divergence(name, **config), device=device)


def test_check_divergence_accepts_a_custom_critic_factory():
    built = []

    def make_critic(shape):
        critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(shape[0] * shape[1] * shape[2], 1), torch.nn.Flatten(0))
        built.append(shape)
        return critic

    check_divergence(divergence("js"), make_critic=make_critic, input_shape=(2, 3, 2))
    assert built == [(2, 3, 2)]


# --- the suites catch broken plugins ---------------------------------------------------------------


class OffByOneFrames(type(representation())):
    def num_frames(self, num_samples):
        return super().num_frames(num_samples) + 1


class LeakyNormalisation(type(representation())):
    def from_linear(self, magnitudes):
        return torch.log(magnitudes + 2.0)  # not the inverse of expm1


class PhaseLess(type(representation())):
    def decode(self, features, context, length):
        return super().decode(features, context.abs().to(context.dtype), length)  # ignores the phase


class Lenient(type(representation())):
    def _check_waveform(self, waveform):  # accepts anything, so torch fails later or not at all
        pass


class UnderstatedFrameLength(type(representation())):
    @property
    def frame_length(self):
        return self.hop_length  # the frames span n_fft = 8 hops (config below)


class SquaredMagnitudes(type(representation())):
    """Claims magnitudes but decodes their squares: masks no longer split the mixture."""

    def __init__(self, config, *, sample_rate):
        super().__init__(config, sample_rate=sample_rate)
        self.invertible = False

    def decode(self, features, context, length):
        return super().decode(self.from_linear(self.to_linear(features).square()), context, length)


@pytest.mark.parametrize(
    ("cls", "config", "message"),
    [
        (UnderstatedFrameLength, {"n_fft": 1024, "hop_length": 128}, r"frame_length = 128 understates the samples a frame depends on"),
        (SquaredMagnitudes, {}, r"declares magnitude_spectrogram, but sources whose linear magnitudes"),
    ],
)
def test_check_representation_catches_broken_declarations(cls, config, message):
    check_representation(type(representation())(cls.parse_config(config), sample_rate=8192))  # the honest one passes
    with pytest.raises(AssertionError, match=message):
        check_representation(cls(cls.parse_config(config), sample_rate=8192))


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (OffByOneFrames, r"expected \[2, 1, 257, 18\] \(\[batch, channels, num_bins, num_frames\(4096\)\]\)"),
        (LeakyNormalisation, r"from_linear\(to_linear\(features\)\) differs"),
        (PhaseLess, r"claims invertible but decode\(encode\(x\)\) differs from x"),
        (Lenient, r"must raise sepkit.errors.ShapeError"),
    ],
)
def test_check_representation_catches_broken_representations(cls, message):
    broken = cls(cls.parse_config({}), sample_rate=8192)
    with pytest.raises(AssertionError, match=message):
        check_representation(broken)


class WrongSign(type(divergence("wasserstein-gp"))):
    def separator_loss(self, critic, fake):
        return -super().separator_loss(critic, fake)


class AttachedEstimate(type(divergence("js"))):
    def critic_loss(self, critic, real, fake):
        loss, _ = super().critic_loss(critic, real, fake)
        return CriticLoss(loss, -loss)


class PlainTuple(type(divergence("js"))):
    def critic_loss(self, critic, real, fake):
        return tuple(super().critic_loss(critic, real, fake))


class BlindCritic(type(divergence("kl"))):
    def critic_loss(self, critic, real, fake):  # the critic never sees the real examples
        result = super().critic_loss(critic, fake, fake)
        return result


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (WrongSign, r"moves only 0% of the fake examples towards the real ones"),
        (AttachedEstimate, r"the estimate must be detached"),
        (PlainTuple, r"must return sepkit.divergence.CriticLoss, got tuple"),
        (BlindCritic, r"the estimate is .*; it must grow and be positive"),
    ],
)
def test_check_divergence_catches_broken_divergences(cls, message):
    broken = cls(cls.parse_config({}))
    with pytest.raises(AssertionError, match=message):
        check_divergence(broken)
