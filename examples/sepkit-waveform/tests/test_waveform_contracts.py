"""The example's components against sepkit's contract suites (sepkit.testing), plus their own promises."""

from __future__ import annotations

import pydantic
import pytest
import torch

from sepkit.errors import ShapeError
from sepkit.plugins import registry, use_plugins
from sepkit.testing import check_critic, check_divergence, check_representation, check_separator

import sepkit_waveform
from sepkit_waveform.critic import WaveCritic
from sepkit_waveform.representation import Waveform
from sepkit_waveform.separator import WaveUNet, fit_window, interpolate, sizes_for_bottleneck

from waveform_helpers import isolated_cache, needs_install, sepkit_cli  # noqa: F401 (fixtures)

# ----------------------------------------------------------------------------------- contracts


def test_waveform_keeps_the_representation_contract_with_an_exact_round_trip():
    check_representation(Waveform(Waveform.Config(), sample_rate=8192), channels=(1, 2), round_trip_tolerance=0.0)


@pytest.mark.parametrize(
    "config, sources, channels",
    [
        ({"depth": 2, "base_filters": 4, "output_samples": 200}, 2, 1),
        ({"depth": 3, "base_filters": 3, "down_kernel": 5, "up_kernel": 3, "output_samples": 64,
          "output_activation": "linear"}, 3, 2),
    ],
)
def test_wave_unet_keeps_the_separator_contract(config, sources, channels):
    separator = check_separator(WaveUNet, config, num_sources=sources, num_channels=channels, num_bins=1)
    assert separator.window.output_frames >= config["output_samples"]


@pytest.mark.parametrize("config", [{"layers": 3}, {"layers": 2, "crop": 256, "kernel_size": 5, "stride": 2}])
def test_wave_critic_keeps_the_critic_contract(config):
    check_critic(WaveCritic, config, input_shape=(2, 1, 300))


def test_the_core_wasserstein_divergence_trains_the_wave_critic():
    """sepkit's built-in divergence (looked up by name, as a recipe does) with this plugin's critic."""
    divergence_cls = registry("divergence").get("wasserstein-gp").cls
    check_divergence(
        divergence_cls(divergence_cls.parse_config({})),
        make_critic=lambda shape: WaveCritic({"layers": 2, "kernel_size": 3, "stride": 2}, input_shape=shape),
        input_shape=(1, 1, 16),
    )


# ----------------------------------------------------------------------------------- the representation


def test_waveform_features_are_the_samples():
    rep = Waveform(Waveform.Config(), sample_rate=8000)
    audio = torch.randn(2, 3, 101)
    features, context = rep.encode(audio)
    assert features.shape == (2, 3, 1, 101) and context is None
    assert torch.equal(features[:, :, 0], audio)
    assert rep.num_frames(101) == 101 and rep.num_bins == 1 and rep.hop_length == 1
    sources = torch.stack([features, -features], dim=1)  # [B, N, C, 1, T]
    assert torch.equal(rep.decode(sources, context, 101)[:, 1], -audio)
    assert torch.equal(rep.decode(features, None, 90), audio[..., :90])  # trimmed
    padded = rep.decode(features, None, 110)
    assert torch.equal(padded[..., :101], audio) and not padded[..., 101:].any()  # zero-padded
    assert rep.to_linear(features) is features and rep.from_linear(features) is features


def test_waveform_errors_are_one_line_shape_errors():
    rep = Waveform(Waveform.Config(), sample_rate=8000)
    with pytest.raises(ShapeError, match=r"waveform encodes waveforms \[batch, channels, samples\], got \[4, 10\]"):
        rep.encode(torch.zeros(4, 10))
    with pytest.raises(ShapeError, match="contains NaN or infinite samples"):
        rep.encode(torch.tensor([[[0.0, float("inf")]]]))
    with pytest.raises(ShapeError, match=r"got \[1, 1, 2, 5\]"):
        rep.decode(torch.zeros(1, 1, 2, 5), None, 5)
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        Waveform.parse_config({"n_fft": 512})


# ----------------------------------------------------------------------------------- the separator


@pytest.mark.parametrize("depth, down, up", [(1, 3, 3), (3, 15, 5), (4, 15, 5), (5, 9, 3)])
def test_fit_window_picks_the_smallest_network_that_covers_the_request(depth, down, up):
    for wanted in (1, 100, 1000, 4096):
        input_samples, output_samples = fit_window(wanted, depth, down, up)
        assert output_samples >= wanted
        assert (input_samples - output_samples) % 2 == 0  # the same context on both sides
        # one bottleneck sample less would not cover the request (or would not fit at all)
        smaller = [sizes_for_bottleneck(b, depth, down, up) for b in range(1, 5000)]
        fitting = [s for s in smaller if s is not None and s[1] >= wanted]
        assert min(fitting) == (input_samples, output_samples)


def test_declared_window_matches_real_shapes_for_the_demo_settings():
    separator = WaveUNet({"depth": 4, "output_samples": 4096}, num_sources=2, num_channels=1, num_bins=1)
    w = separator.window
    assert (w.input_frames, w.output_frames, w.context_before, w.context_after) == (4595, 4101, 247, 247)
    with torch.no_grad():
        out = separator(torch.zeros(1, 1, 1, w.input_frames))
    assert out.shape == (1, 2, 1, 1, 4101)


def test_output_samples_sit_at_the_declared_context():
    """With every path but the mixture's shut, output sample j is input sample context_before + j."""
    separator = WaveUNet(
        {"depth": 3, "base_filters": 2, "output_samples": 50, "output_activation": "linear"},
        num_sources=1, num_channels=1, num_bins=1,
    )
    with torch.no_grad():
        separator.output.weight.zero_()
        separator.output.bias.zero_()
        separator.output.weight[0, -1, 0] = 1.0  # the last input channel of the output conv is the mixture
        mixture = torch.randn(2, 1, 1, separator.window.input_frames)
        out = separator(mixture)
    w = separator.window
    assert torch.equal(out[:, 0], mixture[..., w.context_before : w.context_before + w.output_frames])


def test_interpolation_is_linear_and_keeps_the_samples():
    x = torch.tensor([[0.0, 2.0, -2.0, 4.0]])
    assert interpolate(x).tolist() == [[0.0, 1.0, 2.0, 0.0, -2.0, 1.0, 4.0]]


def test_configuration_errors():
    with pytest.raises(pydantic.ValidationError, match="kernel widths must be odd"):
        WaveUNet.parse_config({"down_kernel": 14})
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        WaveUNet.parse_config({"filters": 8})
    with pytest.raises(ShapeError, match="wave-unet separates waveforms .* the representation gives 129 bins"):
        WaveUNet({}, num_sources=2, num_channels=1, num_bins=129)
    with pytest.raises(ShapeError, match="wave-critic crop 512 is longer than its input of 300 samples"):
        WaveCritic({"crop": 512}, input_shape=(1, 1, 300))
    with pytest.raises(ShapeError, match="wave-critic scores waveforms"):
        WaveCritic({}, input_shape=(1, 129, 64))
    assert WaveCritic.parse_config({"crop": False}).crop is None  # how resolved recipes write "no crop"


# ----------------------------------------------------------------------------------- registration


def test_the_plugin_module_registers_its_components():
    with use_plugins(sepkit_waveform) as system:
        assert registry("representation").names() == ["waveform"]
        assert registry("separator").get("wave-unet").cls is WaveUNet
        assert registry("critic").get("wave-critic").cls is WaveCritic
        assert len(registry("divergence")) == 0 and len(registry("dataset")) == 0
        assert len(system.manager.hook.register_commands.get_hookimpls()) == 1


@needs_install
def test_sepkit_discovers_the_installed_distribution(sepkit_cli):
    import json

    result = sepkit_cli("plugins", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    for kind, name in (("representation", "waveform"), ("separator", "wave-unet"), ("critic", "wave-critic")):
        assert rows[kind, name]["distribution"] == "sepkit-waveform"
        assert rows[kind, name]["version"] == sepkit_waveform.__version__
