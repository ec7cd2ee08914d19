"""The separator and critic contract suites, on the built-ins and on deliberately broken components."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sepkit.component import trusted_values
from sepkit.critic import Critic
from sepkit.errors import ShapeError
from sepkit.plugins import registry
from sepkit.separator import Separator, Window
from sepkit.testing.critic import check_critic
from sepkit.testing.separator import check_separator


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------- built-ins


@pytest.mark.parametrize(
    ("config", "sources", "channels", "bins"),
    [
        ({"depth": 2, "base_filters": 4, "input_frames": 30}, 2, 1, 17),
        ({"depth": 3, "base_filters": 4, "input_frames": 62}, 3, 2, 9),
        ({"depth": 1, "base_filters": 4, "kernel_size": 5, "input_frames": 20}, 1, 1, 12),
    ],
)
def test_unet_contract(config: dict, sources: int, channels: int, bins: int) -> None:
    unet = registry("separator").get("unet").cls
    model = check_separator(
        unet, config, num_sources=sources, num_channels=channels, num_bins=bins, nan_is_error=True
    )
    assert isinstance(model, unet)


@pytest.mark.parametrize(
    ("config", "input_shape"),
    [
        ({"crop": (16, 8), "base_filters": 4, "max_filters": 16, "dense_units": 8}, (1, 17, 10)),
        ({"crop": None, "base_filters": 4, "max_filters": 8, "dense_units": 4}, (2, 9, 5)),
    ],
)
def test_dcgan_contract(config: dict, input_shape: tuple[int, int, int]) -> None:
    dcgan = registry("critic").get("dcgan").cls
    assert isinstance(check_critic(dcgan, config, input_shape=input_shape), dcgan)


def test_paper_components_fit_together() -> None:
    """The paper's U-Net feeds the paper's critics: shapes and parameter counts, no forward pass."""
    unet = registry("separator").get("unet").cls
    dcgan = registry("critic").get("dcgan").cls
    separator = unet({}, num_sources=2, num_channels=1, num_bins=257)
    assert separator.window == Window(158, 66, 46, 46, 350, 258)
    assert separator.num_parameters() == 958_596
    critic = dcgan({}, input_shape=(separator.num_channels, separator.num_bins, separator.window.output_frames))
    assert critic.input_shape == (1, 257, 66)
    assert critic.num_parameters() == 1_869_344


def test_paper_critic_contract() -> None:
    check_critic(registry("critic").get("dcgan").cls, {}, input_shape=(1, 257, 66), batch_size=2)


def test_instance_is_checked_as_given() -> None:
    unet = registry("separator").get("unet").cls
    model = unet({"depth": 1, "base_filters": 2, "input_frames": 12}, num_sources=2, num_channels=1, num_bins=5)
    assert check_separator(model, batch_size=2) is model


# --------------------------------------------------------------------------- broken components


class TinySeparator(Separator):
    """A correct separator to break on purpose: a 1 x 3 valid conv over time, one per source."""

    declared_frames = 2  # output frames declared in the window (correct: input 4 -> output 2)

    def __init__(self, config=None, *, num_sources=2, num_channels=1, num_bins=5):
        super().__init__(
            self.parse_config(config), num_sources=num_sources, num_channels=num_channels, num_bins=num_bins
        )
        self.conv = nn.Conv2d(num_channels, num_sources * num_channels, (1, 3))

    @property
    def window(self) -> Window:
        out = self.declared_frames
        return Window(4, out, (4 - out) // 2, 4 - out - (4 - out) // 2, self.num_bins, self.num_bins)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        self.check_input(mixture)
        out = self.conv(mixture)
        return out.reshape(mixture.shape[0], self.num_sources, self.num_channels, self.num_bins, -1)


class WrongWindow(TinySeparator):
    declared_frames = 1


class UnusedParameter(TinySeparator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.spare = nn.Parameter(torch.zeros(3))


class NoInputCheck(TinySeparator):
    def check_input(self, mixture: torch.Tensor) -> None:
        pass


class WrongErrorType(TinySeparator):
    def check_input(self, mixture: torch.Tensor) -> None:
        if mixture.dim() != 4 or tuple(mixture.shape[1:]) != (self.num_channels, self.num_bins, 4):
            raise ValueError("bad")


class MixesBatch(TinySeparator):
    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return super().forward(mixture - mixture.mean(dim=0, keepdim=True))


class ReturnsDouble(TinySeparator):
    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return super().forward(mixture).double()


class ReturnsOnOtherDevice(TinySeparator):
    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return super().forward(mixture).to("meta")  # "meta" stands in for a GPU on this CPU machine


class InPlace(TinySeparator):
    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        out = super().forward(mixture)
        mixture.mul_(0.5)
        return out


def test_tiny_separator_passes() -> None:
    check_separator(TinySeparator, num_sources=2, num_channels=1, num_bins=5)


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (WrongWindow, r"output shape \[2, 2, 1, 5, 2\] does not match the declared .* \[2, 2, 1, 5, 1\]"),
        (UnusedParameter, r"parameters got no gradient .*: spare"),
        (NoInputCheck, r"given a 3-D tensor \(no batch axis\) was accepted; it must raise sepkit.errors.ShapeError"),
        (WrongErrorType, r"raised ValueError \(bad\) instead of sepkit.errors.ShapeError"),
        (MixesBatch, r"examples must not influence each other"),
        (ReturnsDouble, r"returned dtype torch.float64 for input of dtype torch.float32"),
        (ReturnsOnOtherDevice, r"returned its output on meta, input was on cpu"),
        (InPlace, r"modified its input in place"),
    ],
)
def test_broken_separator_is_caught(cls: type[Separator], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_separator(cls, num_sources=2, num_channels=1, num_bins=5)


class AcceptsNaN(TinySeparator):
    """Checks shapes and dtype only: values trusted, as inside the trainer."""

    def check_input(self, mixture: torch.Tensor) -> None:
        with trusted_values():
            super().check_input(mixture)


def test_nan_check_is_optional_for_separators() -> None:
    check_separator(AcceptsNaN, num_bins=5)
    with pytest.raises(AssertionError, match=r"given NaN features was accepted"):
        check_separator(AcceptsNaN, num_bins=5, nan_is_error=True)
    check_separator(TinySeparator, num_bins=5, nan_is_error=True)  # the base check_input refuses NaN


class TinyCritic(Critic):
    def __init__(self, config=None, *, input_shape=(1, 4, 3)):
        super().__init__(self.parse_config(config), input_shape=input_shape)
        c, f, t = self.input_shape
        self.dense = nn.Linear(c * f * t, 4)
        self.score = nn.Linear(4, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.check_input(features)
        return self.score(torch.tanh(self.dense(features.flatten(1)))).squeeze(1)


class ScoreMatrix(TinyCritic):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features)[:, None]


class NotDoubleDifferentiable(TinyCritic):
    """Its input gradient is detached from the weights, so a gradient penalty cannot train it."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.check_input(features)
        hidden = _NoDoubleBackward.apply(self.dense(features.flatten(1)))
        return self.score(hidden).squeeze(1)


class _NoDoubleBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.relu(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.detach() * 0.5


class IgnoresInput(TinyCritic):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.check_input(features)
        constant = torch.ones_like(features).flatten(1)
        return self.score(torch.tanh(self.dense(constant))).squeeze(1)


class NanScores(TinyCritic):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features) * float("nan")


def test_tiny_critic_passes() -> None:
    check_critic(TinyCritic, input_shape=(1, 4, 3))


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (ScoreMatrix, r"scores of shape \[3, 1\]; expected one score per example, \[3\]"),
        (NotDoubleDifferentiable, r"no gradient from a gradient penalty \(double backward\): .*score.weight"),
        (IgnoresInput, r"the score does not depend on the input"),
        (NanScores, r"NaN or infinite scores"),
    ],
)
def test_broken_critic_is_caught(cls: type[Critic], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_critic(cls, input_shape=(1, 4, 3))


def test_critic_shape_error_must_name_expected_size() -> None:
    class VagueError(TinyCritic):
        def check_input(self, features: torch.Tensor) -> None:
            if features.dim() != 4 or tuple(features.shape[1:]) != self.input_shape:
                raise ShapeError("bad shape")

    with pytest.raises(AssertionError, match=r"does not name the expected size 1: 'bad shape'"):
        check_critic(VagueError, input_shape=(1, 4, 3))
