"""Model files: safetensors + JSON metadata, rebuilt through the registries, never unpickled."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import separation_plugin
import sepkit
from sepkit.errors import NotImplementedComponentError, SepkitError
from sepkit.model import FORMAT, FORMAT_VERSION, Model, load_model, save_model
from sepkit.plugins import use_plugins


@pytest.fixture(scope="module")
def plugins():
    with use_plugins(separation_plugin) as system:
        yield system


@pytest.fixture
def saved(plugins, tmp_path) -> Path:
    recipe, representation, separator = separation_plugin.build(seed=3)
    return save_model(
        tmp_path / "models" / "tiny.safetensors",
        recipe=recipe, representation=representation, separator=separator,
        metadata={"validation_loss": 0.125, "epoch": 7},
    )


def rewrite_metadata(path: Path, **changes: str) -> None:
    """Rewrite some metadata keys of a model file (what a different installation could have written)."""
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
    metadata.update(changes)
    save_file(tensors, str(path), metadata=metadata)


def test_round_trip(saved, plugins):
    recipe, _, separator = separation_plugin.build(seed=3)
    model = load_model(saved)
    assert isinstance(model, Model)
    assert model.sources == ["accompaniment", "vocals"]
    assert model.sample_rate == 8000 and model.channels == 1
    assert model.metadata == {"validation_loss": 0.125, "epoch": 7}
    assert model.components["separator"]["name"] == "tiny-conv"
    assert model.components["representation"]["name"] == "test-frames"
    assert not model.separator.training
    assert model.device == torch.device("cpu")
    expected = separator.state_dict()
    loaded = model.separator.state_dict()
    assert expected.keys() == loaded.keys()
    for name in expected:
        torch.testing.assert_close(loaded[name], expected[name], rtol=0, atol=0)
    # the public lazy export
    assert sepkit.load_model(saved).sources == model.sources


def test_metadata_layout(saved):
    with safe_open(str(saved), framework="pt") as handle:
        metadata = handle.metadata()
        keys = set(handle.keys())
    assert metadata["format"] == FORMAT and metadata["format_version"] == str(FORMAT_VERSION)
    assert metadata["sample_rate"] == "8000" and metadata["channels"] == "1"
    assert json.loads(metadata["sources"]) == ["accompaniment", "vocals"]
    recipe = json.loads(metadata["recipe"])
    # component tables carry their type, the recipe's own keys and every default of their Config
    assert recipe["separator"] == {"type": "tiny-conv", "input_frames": 24, "hidden": 4}
    assert recipe["representation"] == {"type": "test-frames", "frame": 8}
    assert recipe["variants"] == {}
    components = json.loads(metadata["components"])
    assert set(components["separator"]) == {"name", "distribution", "version", "plugin"}
    assert json.loads(metadata["metadata"]) == {"validation_loss": 0.125, "epoch": 7}
    assert keys == {"first.weight", "first.bias", "second.weight", "second.bias"}


def test_save_is_atomic_and_leaves_no_temporary_files(saved, plugins):
    recipe, representation, separator = separation_plugin.build(seed=4)
    before = saved.read_bytes()
    with pytest.raises(SepkitError, match="metadata must be JSON"):
        save_model(saved, recipe=recipe, representation=representation, separator=separator, metadata={"x": object()})
    assert saved.read_bytes() == before  # a failed save leaves the old file alone
    save_model(saved, recipe=recipe, representation=representation, separator=separator)
    assert saved.read_bytes() != before
    assert sorted(p.name for p in saved.parent.iterdir()) == ["tiny.safetensors"]
    assert oct(saved.stat().st_mode & 0o044) != "0o0"  # readable like any other file (umask permitting)


def test_save_refuses_components_that_do_not_match_the_recipe(plugins, tmp_path):
    recipe, representation, _ = separation_plugin.build()
    _, _, stereo_separator = separation_plugin.build(channels=2)
    with pytest.raises(SepkitError, match="the separator has 2 sources and 2 channels; the recipe says 2 and 1"):
        save_model(tmp_path / "m.safetensors", recipe=recipe, representation=representation, separator=stereo_separator)
    assert not (tmp_path / "m.safetensors").exists()


def test_channels_last_weights_are_saved_contiguous(saved, plugins, tmp_path):
    model = load_model(saved).to("cpu")
    path = save_model(tmp_path / "again.safetensors", recipe=model.recipe, representation=model.representation,
                      separator=model.separator, metadata=model.metadata)
    again = load_model(path)
    for (name, a), b in zip(model.separator.state_dict().items(), again.separator.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_loading_needs_no_training_plugins(saved):
    # only the test representation and separator are registered: no critics, divergences, datasets
    with use_plugins(separation_plugin) as system:
        assert len(system.registry("divergence")) == 0
        assert load_model(saved).sources == ["accompaniment", "vocals"]


def test_missing_plugin_names_its_distribution(saved):
    recipe = json.loads(safe_open(str(saved), framework="pt").metadata()["recipe"])
    recipe["separator"]["type"] = "imaginary-net"
    rewrite_metadata(
        saved,
        recipe=json.dumps(recipe),
        components=json.dumps({"separator": {"name": "imaginary-net", "distribution": "sepkit-imaginary-plugin", "version": "0.1.0"}}),
    )
    with use_plugins(separation_plugin):
        with pytest.raises(SepkitError) as error:
            load_model(saved)
    assert str(error.value).startswith(
        "model needs separator 'imaginary-net' from distribution 'sepkit-imaginary-plugin' 0.1.0, which is not installed"
    )


def test_installed_distribution_without_the_component(saved):
    recipe = json.loads(safe_open(str(saved), framework="pt").metadata()["recipe"])
    recipe["separator"]["type"] = "gone-net"
    rewrite_metadata(
        saved,
        recipe=json.dumps(recipe),
        components=json.dumps({"separator": {"name": "gone-net", "distribution": "sepkit", "version": "0.0.1"}}),
    )
    with use_plugins(separation_plugin):
        with pytest.raises(SepkitError, match=r"'sepkit' 0\.1\.0 is installed but registers no separator 'gone-net'"):
            load_model(saved)


def test_weights_that_do_not_fit(saved):
    recipe = json.loads(safe_open(str(saved), framework="pt").metadata()["recipe"])
    recipe["separator"]["hidden"] = 6
    rewrite_metadata(saved, recipe=json.dumps(recipe))
    with use_plugins(separation_plugin):
        with pytest.raises(SepkitError, match=r"tiny\.safetensors: the weights do not fit separator 'tiny-conv'"):
            load_model(saved)


def test_stored_settings_rejected_by_the_installed_plugin(saved):
    recipe = json.loads(safe_open(str(saved), framework="pt").metadata()["recipe"])
    recipe["separator"]["layers"] = 3
    rewrite_metadata(saved, recipe=json.dumps(recipe))
    with use_plugins(separation_plugin):
        with pytest.raises(SepkitError, match=r"stored separator 'tiny-conv' settings do not fit the installed"):
            load_model(saved)


#: A protocol-0 pickle that, if anything ever unpickled it, would call builtins.open("PWNED", "w").
EXPLOIT_PICKLE = b"cbuiltins\nopen\n(VPWNED\nVw\ntR."


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files that are not sepkit models, and what the error must say."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    pickled = folder / "model.safetensors"  # a pickle wearing the right extension
    pickled.write_bytes(EXPLOIT_PICKLE)
    out["pickle"] = (pickled, "not a safetensors model file")
    torch_file = folder / "model.pt"
    torch.save({"weight": torch.zeros(3)}, torch_file)
    out["torch.save zip"] = (torch_file, "not a safetensors model file")
    archive = folder / "model.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("weights", "x")
    out["zip"] = (archive, "not a safetensors model file")
    empty = folder / "empty.safetensors"
    empty.write_bytes(b"")
    out["empty"] = (empty, "not a safetensors model file")
    text = folder / "notes.safetensors"
    text.write_text("hello")
    out["text"] = (text, "not a safetensors model file")
    plain = folder / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    out["plain safetensors"] = (plain, "a safetensors file, but not a sepkit model")
    out["missing"] = (folder / "nope.safetensors", "no such model file")
    out["folder"] = (folder, "is a folder, not a model file")
    return out


@pytest.mark.parametrize("kind", ["pickle", "torch.save zip", "zip", "empty", "text", "plain safetensors", "missing", "folder"])
def test_bad_model_files(plugins, tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    path, message = bad_files(tmp_path / "bad")[kind]
    with pytest.raises(SepkitError) as error:
        load_model(path)
    text = str(error.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text
    assert not (tmp_path / "PWNED").exists()  # nothing was unpickled


def test_truncated_and_corrupt_model_files(saved, plugins):
    data = saved.read_bytes()
    for size in (7, 60, len(data) // 2, len(data) - 1):
        saved.write_bytes(data[:size])
        with pytest.raises(SepkitError, match=rf"^{saved}: not a safetensors model file"):
            load_model(saved)
    saved.write_bytes(data)
    rewrite_metadata(saved, format_version="99")
    with pytest.raises(SepkitError, match="format 99 is newer than this sepkit supports"):
        load_model(saved)
    rewrite_metadata(saved, format_version="1", recipe="{not json")
    with pytest.raises(SepkitError, match="metadata 'recipe' is not JSON"):
        load_model(saved)


def test_model_separate_and_devices(saved, plugins):
    model = load_model(saved, device="auto")
    out = model.separate(np.zeros((2, 1000), np.float32), 16000)
    assert {k: v.shape for k, v in out.items()} == {"accompaniment": (2, 1000), "vocals": (2, 1000)}
    assert model.to("cpu") is model
    with pytest.raises(SepkitError, match="unknown device"):
        model.to("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(SepkitError, match="CUDA is not available"):
            model.to("cuda")
    assert "tiny-conv" in repr(model)


def test_paper_unet_round_trip(tmp_path):
    """The paper's configuration (recipes/singing_voice.toml) through the real entry points."""
    with use_plugins(entry_points=True):
        _paper_unet_round_trip(tmp_path)


def _paper_unet_round_trip(tmp_path):
    from sepkit.build import build_representation, build_separator
    from sepkit.recipe import load_recipe

    recipe = load_recipe(Path(__file__).parent.parent / "recipes" / "singing_voice.toml", check_data=False).variants["baseline"]
    try:
        representation = build_representation(recipe)
        separator = build_separator(recipe, representation)
    except NotImplementedComponentError as exc:
        pytest.skip(f"built-in components not implemented yet: {exc}")
    path = save_model(tmp_path / "paper.safetensors", recipe=recipe, representation=representation, separator=separator)
    assert 3_500_000 < path.stat().st_size < 4_200_000  # ~0.96 M float32 parameters
    model = load_model(path)
    assert model.separator.num_parameters() == separator.num_parameters()
    assert model.components["separator"]["distribution"] == "sepkit"
    assert model.recipe.separator.config == recipe.separator.config
    for a, b in zip(model.separator.state_dict().values(), separator.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
