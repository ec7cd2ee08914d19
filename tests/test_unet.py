"""The paper's U-Net: window arithmetic, level structure, parameter count, padding and alignment."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from sepkit.errors import ShapeError
from sepkit.plugins import registry
from sepkit.separator import Window
from sepkit_plugins.unet.model import (
    UNet,
    UNetConfig,
    minimal_input_covering,
    nearest_valid_sizes,
    unet_output_size,
    valid_input_sizes,
)

@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


SMALL = {"depth": 2, "base_filters": 4, "kernel_size": 3, "input_frames": 30}


def paper_unet(**sizes: int) -> UNet:
    return UNet(UNetConfig(), **({"num_sources": 2, "num_channels": 1, "num_bins": 257} | sizes))


def test_registered_under_unet() -> None:
    assert registry("separator").get("unet").cls is UNet


def test_paper_window() -> None:
    assert paper_unet().window == Window(
        input_frames=158, output_frames=66, context_before=46, context_after=46, input_bins=350, output_bins=258
    )


def test_paper_bins_padded_46_below_47_above() -> None:
    model = paper_unet()
    assert (model.pad_below, model.pad_above) == (46, 47)


def paper_parameter_count(channels: int, sources: int) -> int:
    """Counted by hand from the level structure: one 3x3 conv per level, as in the authors' code."""
    conv = lambda cin, cout, k=3: cin * cout * k * k + cout  # noqa: E731
    down = conv(channels, 16) + conv(16, 32) + conv(32, 64) + conv(64, 128) + conv(128, 256)
    up = 0
    for f in (128, 64, 32, 16):
        up += (2 * f) * f * 2 * 2 + f  # 2x2 transposed conv from 2f to f filters
        up += conv(2 * f, f)  # 3x3 conv on [skip, upsampled]
    head = sources * (channels * (16 + channels) + channels)  # a 1x1 conv per source
    return down + up + head


def test_paper_parameter_count() -> None:
    model = paper_unet()
    assert model.num_parameters() == paper_parameter_count(1, 2) == 958_596
    assert abs(model.num_parameters() - 0.96e6) < 0.005e6  # the paper's "about 0.96 M"
    assert paper_unet(num_sources=4, num_channels=2).num_parameters() == paper_parameter_count(2, 4)


def test_paper_level_sizes_and_filters() -> None:
    """350 x 158 -> 348x156 -> pooled 172x76, 84x36, 40x16, 18x6 -> up 34x10, 66x18, 130x34, 258x66."""
    model = paper_unet()
    seen: list[tuple[int, ...]] = []
    modules = [model.first, *model.down, *model.up, model.output]
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:]))) for m in modules]
    first_input: list[torch.Tensor] = []
    hooks.append(model.first.register_forward_pre_hook(lambda _m, args: first_input.append(args[0])))
    mixture = torch.rand(1, 1, 257, 158) + 0.5
    with torch.no_grad():
        out = model(mixture)
    for hook in hooks:
        hook.remove()
    assert seen == [
        (16, 348, 156),
        (32, 172, 76), (64, 84, 36), (128, 40, 16), (256, 18, 6),
        (128, 34, 10), (64, 66, 18), (32, 130, 34), (16, 258, 66),
        (2, 258, 66),
    ]
    assert out.shape == (1, 2, 1, 257, 66)
    padded = first_input[0]
    assert padded.shape == (1, 1, 350, 158)
    assert torch.equal(padded[:, :, 46:303], mixture)
    assert padded[:, :, :46].abs().sum() == 0 and padded[:, :, 303:].abs().sum() == 0


def passthrough(model: UNet) -> UNet:
    """Set the 1x1 output convs so that source n, channel c is the mixture's channel c."""
    c, n = model.num_channels, model.num_sources
    features = model.output.in_channels - c
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.zero_()
        for source in range(n):
            for channel in range(c):
                model.output.weight[source * c + channel, features + channel] = 1.0
    return model


@pytest.mark.parametrize(
    ("config", "sources", "channels", "bins"),
    [(SMALL, 3, 2, 17), ({"depth": 1, "base_filters": 2, "kernel_size": 5, "input_frames": 20}, 2, 1, 11)],
)
def test_output_aligned_with_window_and_bins(config: dict, sources: int, channels: int, bins: int) -> None:
    """Output bin j is mixture bin j, output frame t is input frame context_before + t."""
    model = passthrough(UNet(config, num_sources=sources, num_channels=channels, num_bins=bins))
    w = model.window
    mixture = torch.rand(2, channels, bins, w.input_frames)
    with torch.no_grad():
        out = model(mixture)
    centre = mixture[..., w.context_before : w.input_frames - w.context_after]
    assert out.shape == (2, sources, channels, bins, w.output_frames)
    for source in range(sources):
        torch.testing.assert_close(out[:, source], centre, rtol=0, atol=0)


def test_crops_are_centred() -> None:
    """With kernels symmetric in both axes and symmetric bin padding, flipping the input flips the
    output; a skip or mixture crop one step off centre would break this."""
    model = UNet(SMALL, num_sources=1, num_channels=1, num_bins=18)
    assert model.pad_below == model.pad_above == 10
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 4:
                positive = parameter.abs()  # no dead ReLUs: every map carries signal
                parameter.copy_((positive + positive.flip(-1) + positive.flip(-2) + positive.flip(-1, -2)) / 4)
            else:
                parameter.copy_(torch.rand_like(parameter) * 0.1)
        mixture = torch.rand(1, 1, 18, 30)
        out = model(mixture)
        flipped = model(mixture.flip(-1, -2))
    assert out.abs().sum() > 0
    torch.testing.assert_close(flipped, out.flip(-1, -2), rtol=1e-5, atol=1e-6)


def test_generic_window_matches_forward() -> None:
    for depth, kernel, bins, frames in [(1, 3, 5, 10), (2, 5, 20, 44), (3, 3, 40, 46), (2, 1, 8, 12)]:
        model = UNet(
            {"depth": depth, "base_filters": 2, "kernel_size": kernel, "input_frames": frames},
            num_sources=1, num_channels=1, num_bins=bins,
        )
        w = model.window
        with torch.no_grad():
            out = model(torch.rand(1, 1, bins, frames))
        assert out.shape == (1, 1, 1, bins, w.output_frames)
        assert w.output_bins >= bins
        assert w.input_bins == minimal_input_covering(bins, depth, kernel)


def test_size_arithmetic() -> None:
    assert unet_output_size(350, 4, 3) == 258
    assert unet_output_size(158, 4, 3) == 66
    assert unet_output_size(157, 4, 3) is None  # odd before the first pooling
    assert unet_output_size(78, 4, 3) is None  # the up path would shrink to nothing
    sizes = [s for s, _ in zip(valid_input_sizes(4, 3), range(5))]
    assert sizes == [94, 110, 126, 142, 158]
    # brute force: exactly the sizes that survive the forward arithmetic, spaced 2**depth apart
    assert [n for n in range(1, 160) if unet_output_size(n, 4, 3) is not None] == sizes
    assert minimal_input_covering(257, 4, 3) == 350
    assert minimal_input_covering(258, 4, 3) == 350
    assert minimal_input_covering(259, 4, 3) == 366
    assert nearest_valid_sizes(150, 4, 3) == (142, 158)
    assert nearest_valid_sizes(10, 4, 3) == (None, 94)


def test_invalid_input_frames_suggests_nearest() -> None:
    with pytest.raises(ValidationError, match=r"nearest valid input_frames: 142 or 158"):
        UNetConfig(input_frames=150)
    with pytest.raises(ValidationError, match=r"nearest valid input_frames: 94\b"):
        UNetConfig(input_frames=10)


def test_even_kernel_rejected() -> None:
    with pytest.raises(ValidationError, match="kernel_size must be odd"):
        UNetConfig(kernel_size=4)


def test_unknown_key_rejected() -> None:
    with pytest.raises(ValidationError):
        UNetConfig(filters=3)


def small_model() -> UNet:
    return UNet(SMALL, num_sources=2, num_channels=1, num_bins=17)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((2, 2, 17, 30), r"expects mixture features \[batch, 1, 17, 30\], got 2 channels"),
        ((2, 1, 17, 29), r"\[batch, 1, 17, 30\], got 29 frames, too few \(the window is 10 context \+ 10 output"),
        ((2, 1, 16, 30), r"\[batch, 1, 17, 30\], got 16 bins"),
        ((1, 17, 30), r"\[batch, 1, 17, 30\], got a 3-D tensor"),
    ],
)
def test_shape_errors(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        small_model()(torch.zeros(shape))


def test_nan_features_rejected() -> None:
    mixture = torch.zeros(1, 1, 17, 30)
    mixture[0, 0, 3, 4] = float("nan")
    with pytest.raises(ShapeError, match=r"\[batch, 1, 17, 30\], got NaN or infinite values"):
        small_model()(mixture)


def test_output_non_negative_and_depends_on_context() -> None:
    """ReLU output (log-magnitudes); the first and last input frames are context that reaches the output."""
    model = small_model()
    mixture = torch.rand(1, 1, 17, 30, requires_grad=True)
    assert (model(mixture) >= 0).all()
    with torch.no_grad():  # positive weights: no dead ReLUs, so every input reachable has a gradient
        for parameter in model.parameters():
            parameter.abs_()
    out = model(mixture)
    out.sum().backward()
    grad = mixture.grad[0, 0].abs().sum(dim=0)
    assert grad[0] > 0 and grad[-1] > 0


def test_glorot_initialisation_and_zero_bias() -> None:
    model = paper_unet()
    weight = model.down[3].weight  # 128 -> 256 filters, 3x3
    bound = (6 / (128 * 9 + 256 * 9)) ** 0.5
    assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound
    biases = [m.bias for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert len(biases) == 14 and all(not b.detach().any() for b in biases)


def load_benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_components.py"
    spec = importlib.util.spec_from_file_location("bench_components", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_flop_count_matches_torch_rules() -> None:
    """The benchmark's analytic FLOP count equals PyTorch's own rules on the ops actually run."""
    bench = load_benchmark()
    model = small_model()
    mixture = torch.rand(2, 1, 17, 30)
    with bench.ExecutedFlops() as counter, torch.no_grad():
        model(mixture)
    assert bench.forward_flops(model, mixture) == counter.total > 0
