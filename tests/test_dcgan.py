"""The paper's adapted DCGAN critic: crop, layer structure, 'same' padding, parameter count."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from sepkit.errors import ShapeError
from sepkit.plugins import registry
from sepkit_plugins.dcgan.model import DCGANConfig, DCGANCritic, SameConv2d, crop_start, same_padding

SMALL = {"crop": (16, 8), "base_filters": 4, "max_filters": 16, "dense_units": 8}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def convs(critic: DCGANCritic) -> list[torch.nn.Conv2d]:
    return [m for m in critic.modules() if isinstance(m, torch.nn.Conv2d)]


def test_registered_under_dcgan() -> None:
    assert registry("critic").get("dcgan").cls is DCGANCritic


def test_paper_layers() -> None:
    critic = DCGANCritic(DCGANConfig(), input_shape=(1, 257, 66))
    layers = convs(critic)
    assert [c.out_channels for c in layers] == [32, 64, 128, 256, 256, 256]
    assert [c.kernel_size for c in layers] == [(4, 4)] * 4 + [(4, 2)] * 2
    assert [c.stride for c in layers] == [(2, 2)] * 4 + [(2, 1)] * 2
    sizes = [m.output_size for m in critic.modules() if isinstance(m, SameConv2d)]
    assert sizes == [(128, 32), (64, 16), (32, 8), (16, 4), (8, 4), (4, 4)]
    assert (critic.dense.in_features, critic.dense.out_features) == (4096, 32)
    assert critic.score.out_features == 1 and critic.score.bias is None
    slopes = [m.negative_slope for m in critic.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert slopes == [0.2] * 7  # after every conv and the dense 32


def paper_parameter_count(channels: int) -> int:
    """Counted by hand: six convs (4x4 x4, 4x2 x2), dense 4096 -> 32, dense 32 -> 1 without bias."""
    conv = lambda cin, cout, kh, kw: cin * cout * kh * kw + cout  # noqa: E731
    total = conv(channels, 32, 4, 4) + conv(32, 64, 4, 4) + conv(64, 128, 4, 4) + conv(128, 256, 4, 4)
    total += 2 * conv(256, 256, 4, 2)
    return total + (4096 * 32 + 32) + 32


def test_paper_parameter_count() -> None:
    critic = DCGANCritic(DCGANConfig(), input_shape=(1, 257, 66))
    assert critic.num_parameters() == paper_parameter_count(1) == 1_869_344
    assert abs(critic.num_parameters() - 1.87e6) < 0.005e6  # the paper's "about 1.87 M"
    assert DCGANCritic(DCGANConfig(), input_shape=(2, 257, 66)).num_parameters() == paper_parameter_count(2)


def test_paper_crop_drops_bin_zero_and_one_frame_each_side() -> None:
    # the paper's crop with narrow layers, to stay fast
    critic = DCGANCritic({"base_filters": 2, "max_filters": 8}, input_shape=(1, 257, 66))
    assert (critic.bin_start, critic.frame_start) == (1, 1)
    critic.eval()
    features = torch.rand(2, 1, 257, 66)
    with torch.no_grad():
        reference = critic(features)
        for index in [(0, slice(None)), (slice(None), 0), (slice(None), 65)]:  # cropped away
            changed = features.clone()
            changed[:, :, index[0], index[1]] += 5.0
            torch.testing.assert_close(critic(changed), reference)
        for index in [(1, 30), (256, 30), (100, 1), (100, 64)]:  # inside the crop
            changed = features.clone()
            changed[:, :, index[0], index[1]] += 5.0
            assert not torch.allclose(critic(changed), reference)


def test_crop_start_drops_extra_on_low_side() -> None:
    assert crop_start(257, 256) == 1
    assert crop_start(66, 64) == 1
    assert crop_start(67, 64) == 2
    assert crop_start(64, 64) == 0


def test_same_padding_matches_tensorflow_formula() -> None:
    # TF: out = ceil(n / s), total = max((out - 1) * s + k - n, 0), the odd extra goes after.
    assert same_padding(256, 4, 2) == (1, 1, 128)
    assert same_padding(5, 4, 2) == (1, 2, 3)
    assert same_padding(4, 2, 1) == (0, 1, 4)
    assert same_padding(1, 4, 2) == (1, 2, 1)


@pytest.mark.parametrize(("size", "kernel", "stride"), [((9, 5), (4, 4), (2, 2)), ((8, 3), (4, 2), (2, 1))])
def test_same_conv_equals_explicit_tensorflow_padding(size, kernel, stride) -> None:
    layer = SameConv2d(2, 3, kernel, stride, size)
    x = torch.rand(1, 2, *size)
    f_before, f_after, f_out = same_padding(size[0], kernel[0], stride[0])
    t_before, t_after, t_out = same_padding(size[1], kernel[1], stride[1])
    padded = F.pad(x, (t_before, t_after, f_before, f_after))
    expected = F.conv2d(padded, layer.conv.weight, layer.conv.bias, stride=stride)
    torch.testing.assert_close(layer(x), expected)
    assert expected.shape[-2:] == (f_out, t_out) == layer.output_size


def test_small_sizes_and_odd_sides() -> None:
    critic = DCGANCritic({**SMALL, "crop": None}, input_shape=(2, 37, 11))
    sizes = [m.output_size for m in critic.modules() if isinstance(m, SameConv2d)]
    # 37x11 -> 19x6 -> 10x3 (a side reached 4) -> frequency only: 5x3 -> 3x3
    assert sizes == [(19, 6), (10, 3), (5, 3), (3, 3)]
    assert [c.out_channels for c in convs(critic)] == [4, 8, 16, 16]  # doubling capped at max_filters
    assert critic(torch.rand(3, 2, 37, 11)).shape == (3,)


def test_at_least_one_conv_for_tiny_inputs() -> None:
    critic = DCGANCritic({**SMALL, "crop": None}, input_shape=(1, 3, 2))
    assert len(convs(critic)) == 1
    assert critic(torch.rand(2, 1, 3, 2)).shape == (2,)


def test_crop_larger_than_input_is_a_clear_error() -> None:
    with pytest.raises(ShapeError, match=r"dcgan crop \(256, 64\) is larger than its input of 200 bins x 66 frames"):
        DCGANCritic(DCGANConfig(), input_shape=(1, 200, 66))


def test_wrong_input_shape() -> None:
    critic = DCGANCritic(SMALL, input_shape=(1, 17, 12))
    with pytest.raises(ShapeError, match=r"critic expects source features \[batch, 1, 17, 12\], got \[2, 1, 17, 10\]"):
        critic(torch.rand(2, 1, 17, 10))


def test_config_validation() -> None:
    with pytest.raises(ValidationError):
        DCGANConfig(leaky_slope=1.5)
    with pytest.raises(ValidationError):
        DCGANConfig(crop=(0, 64))
    assert DCGANConfig(crop=None).crop is None
    assert DCGANConfig(crop="none").crop is None  # TOML has no null
    assert DCGANConfig(crop=[128, 32]).crop == (128, 32)
    with pytest.raises(ValidationError):
        DCGANConfig(crop="all")


def test_leaky_slope_is_used() -> None:
    critic = DCGANCritic({**SMALL, "leaky_slope": 0.0}, input_shape=(1, 17, 12))
    assert {m.negative_slope for m in critic.modules() if isinstance(m, torch.nn.LeakyReLU)} == {0.0}


def test_benchmark_flop_count_matches_torch_rules() -> None:
    """The benchmark's analytic FLOP count equals PyTorch's own rules on the ops actually run."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_components.py"
    spec = importlib.util.spec_from_file_location("bench_components", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    critic = DCGANCritic({**SMALL, "crop": None}, input_shape=(2, 37, 11))
    features = torch.rand(3, 2, 37, 11)
    with bench.ExecutedFlops() as counter, torch.no_grad():
        critic(features)
    assert bench.forward_flops(critic, features) == counter.total > 0
