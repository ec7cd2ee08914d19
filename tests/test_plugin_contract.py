"""The declared plugin contract: the public API in ``sepkit``, configs parsed once, what each base
class requires (abstract members, a dataset config's base) and provides (the full input check)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from pydantic import Field, ValidationError

import sepkit
from sepkit import component, critic, dataset, divergence, representation, separator
from sepkit.component import trusted_values
from sepkit.errors import SepkitError, ShapeError
from sepkit.plugins import registry
from sepkit.separation.engine import PipelineSpec, check_compatible
from sepkit.separation.options import EngineOptions


def test_the_plugin_api_is_importable_from_sepkit_and_listed():
    from sepkit import ComponentConfig, Critic, Dataset, Divergence, Representation, Separator, Window, hookimpl

    assert (Separator, Window) == (separator.Separator, separator.Window)
    assert (Representation, Critic, Divergence) == (representation.Representation, critic.Critic, divergence.Divergence)
    assert (Dataset, ComponentConfig) == (dataset.Dataset, component.ComponentConfig)
    assert hookimpl is sepkit.hookspecs.hookimpl
    assert sepkit.CriticLoss is divergence.CriticLoss and sepkit.DatasetConfig is dataset.DatasetConfig
    listed = dir(sepkit)
    for name in sepkit.__all__:
        assert name in listed, f"{name} is public but dir(sepkit) does not list it"
        getattr(sepkit, name)  # every listed name resolves
    assert {"Separator", "Representation", "Critic", "Divergence", "Dataset", "Window", "ComponentConfig",
            "hookimpl", "SepkitError", "load_model", "separate", "list_models"} <= set(listed)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        sepkit.Nothing  # noqa: B018


def test_import_sepkit_loads_neither_torch_nor_pydantic():
    code = "import sys, sepkit; print(sorted(m for m in ('torch', 'pydantic', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- configs: parsed once ---------------------------------------------------------------------------


def test_a_parsed_config_is_taken_as_is_and_a_dict_is_parsed():
    unet = registry("separator").get("unet").cls
    config = unet.parse_config({"depth": 1, "base_filters": 2, "input_frames": 12})
    built = unet(config, num_sources=2, num_channels=1, num_bins=5)
    assert built.config is config  # no second validation
    from_dict = unet({"depth": 1, "base_filters": 2, "input_frames": 12}, num_sources=2, num_channels=1, num_bins=5)
    assert from_dict.config == config
    with pytest.raises(ValidationError, match="kernel_size must be odd"):
        unet({"kernel_size": 4}, num_sources=2, num_channels=1, num_bins=5)
    stft = registry("representation").get("magnitude-stft").cls
    rep_config = stft.parse_config({"n_fft": 64, "hop_length": 16})
    assert stft(rep_config, sample_rate=8000).config is rep_config


class OptionalThings(component.ComponentConfig):
    crop: component.TomlOptional[int] = Field(None, description="an optional setting")


@pytest.mark.parametrize("written, value", [(False, None), ("none", None), ("None", None), (None, None), (7, 7)])
def test_toml_optional_reads_what_resolved_recipes_write(written, value):
    assert OptionalThings(crop=written).crop == value


# -- Representation ---------------------------------------------------------------------------------


def representation_class(**members):
    def identity(self, x):
        return x

    body = {
        "num_bins": property(lambda self: 1),
        "hop_length": property(lambda self: 1),
        "num_frames": lambda self, n: n,
        "encode": lambda self, w: (w.unsqueeze(-2), None),
        "decode": lambda self, f, context, length: f.squeeze(-2)[..., :length],
        "to_linear": identity,
        "from_linear": identity,
        **members,
    }
    return type("Samples", (representation.Representation,), body)


def test_frame_length_is_required_and_a_class_attribute_declares_it():
    with pytest.raises(TypeError, match="frame_length"):
        representation_class()(None, sample_rate=8000)
    rep = representation_class(frame_length=1)(None, sample_rate=8000)
    assert (rep.frame_length, rep.margin_frames) == (1, 2)
    stft = registry("representation").get("magnitude-stft").cls
    wide = stft({"n_fft": 1024, "hop_length": 128}, sample_rate=8000)
    assert (wide.frame_length, wide.margin_frames) == (1024, 9)


def test_wiener_is_refused_unless_the_features_are_declared_magnitudes():
    rep = representation_class(frame_length=1)(None, sample_rate=8000)
    assert rep.magnitude_spectrogram is False and rep.invertible is False
    spec = PipelineSpec(rep, None, ("a", "b"), 8000, 1, False, "per-channel")  # type: ignore[arg-type]
    check_compatible(spec, EngineOptions())
    with pytest.raises(SepkitError, match="Wiener post-filter needs a magnitude-spectrogram representation"):
        check_compatible(spec, EngineOptions(wiener=True))
    assert registry("representation").get("magnitude-stft").cls.magnitude_spectrogram is True


def test_options_that_do_not_fit_the_model_are_named():
    rep = representation_class(frame_length=1)(None, sample_rate=8000)
    spec = PipelineSpec(rep, None, ("a", "b"), 8000, 1, False, "per-channel")  # type: ignore[arg-type]
    with pytest.raises(SepkitError, match=r"--two-stems c: not a source of this model \(a, b\)"):
        check_compatible(spec, EngineOptions(two_stems="c"))
    with pytest.raises(SepkitError, match="--high-band c: expected share, drop or one of the sources"):
        check_compatible(spec, EngineOptions(high_band="c"))
    check_compatible(spec, EngineOptions(high_band="b", two_stems="a"))


def test_engine_options_import_without_torch():
    code = "import sys; from sepkit.separation.options import EngineOptions; EngineOptions(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- Separator: the full input check ----------------------------------------------------------------


class Plain(separator.Separator):
    """A separator with no check of its own: the base class's is all it has."""

    def __init__(self, config=None, **sizes):
        super().__init__(config, **sizes)
        self.scale = torch.nn.Parameter(torch.ones(()))

    @property
    def window(self):
        return separator.Window(30, 10, 10, 10, self.num_bins, self.num_bins)

    def forward(self, mixture):
        self.check_input(mixture)
        core = mixture[..., 10:20] * self.scale
        return core[:, None].expand(-1, self.num_sources, -1, -1, -1)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([1.0], "got a list, not a tensor"),
        (torch.zeros(1, 17, 30), r"got a 3-D tensor of shape \[1, 17, 30\]"),
        (torch.zeros(2, 2, 17, 30), r"got 2 channels \(shape \[2, 2, 17, 30\]\)"),
        (torch.zeros(2, 1, 16, 30), r"got 16 bins"),
        (torch.zeros(2, 1, 17, 29), r"got 29 frames, too few \(the window is 10 context \+ 10 output \+ 10 context frames\)"),
        (torch.zeros(2, 1, 17, 31), r"got 31 frames, too many"),
        (torch.zeros(2, 1, 17, 30, dtype=torch.int64), r"got dtype torch.int64, not a floating-point tensor"),
        (torch.full((2, 1, 17, 30), float("nan")), r"got NaN or infinite values"),
    ],
)
def test_the_base_check_names_the_expected_shape_and_the_problem(value, problem):
    model = Plain(num_sources=2, num_channels=1, num_bins=17)
    with pytest.raises(ShapeError, match=r"^Plain expects mixture features \[batch, 1, 17, 30\], " + problem):
        model(value)


def test_values_are_not_checked_inside_trusted_values():
    model = Plain(num_sources=2, num_channels=1, num_bins=17)
    with trusted_values():
        out = model(torch.full((1, 1, 17, 30), float("inf")))
    assert out.shape == (1, 2, 1, 17, 10)


def test_the_example_separator_relies_on_the_base_check():
    from sepkit_waveform.separator import WaveUNet

    assert "check_input" not in vars(WaveUNet)
    model = WaveUNet({"depth": 1, "base_filters": 2, "output_samples": 20}, num_sources=2, num_channels=1, num_bins=1)
    with pytest.raises(ShapeError, match=r"WaveUNet expects mixture features \[batch, 1, 1, \d+\], got 3 bins"):
        model(torch.zeros(1, 1, 3, model.window.input_frames))


# -- Dataset ----------------------------------------------------------------------------------------


def test_a_dataset_config_derives_from_dataset_config():
    with pytest.raises(TypeError, match="Config must derive from sepkit.dataset.DatasetConfig"):

        class Loose(dataset.Dataset):  # noqa: F841 - defining it is the error
            Config = component.EmptyConfig

            def tracks(self):
                return []

    class Listed(dataset.Dataset):
        def tracks(self):
            return []

    assert Listed(None, role="test", sources=["a"]).name == "Listed"
    named = Listed({"name": "mine"}, role="test", sources=["a"])
    assert (named.name, named.location) == ("mine", "")
    layout = registry("dataset").get("stems").cls({"root": "/data/x"}, role="test", sources=["vocals"])
    assert (layout.name, layout.location) == ("x", "/data/x")
