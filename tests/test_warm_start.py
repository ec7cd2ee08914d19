"""``separator.init``: a recipe's separator starts from the weights of a sepkit model file."""

from __future__ import annotations

import json

import pytest
import torch

import separation_plugin
from sepkit.build import build_representation, build_separator
from sepkit.errors import SepkitError
from sepkit.model import save_model
from sepkit.plugins import use_plugins
from sepkit.recipe import load_recipe
from sepkit.recipe.dump import dumps_toml
from sepkit.recipe.resolve import resolve


@pytest.fixture(scope="module")
def plugins():
    with use_plugins(separation_plugin, "sepkit_plugins.divergences") as system:  # the default divergence
        yield system


def _recipe_file(folder, init, **changes):  # type: ignore[no-untyped-def]
    data = {**separation_plugin.recipe_dict(**changes), "training": {"early_stopping": False}}
    data["separator"] = {**data["separator"], "init": init}
    path = folder / "recipe.toml"
    path.write_text(dumps_toml(data))
    return path


def test_the_separator_starts_from_the_model_files_weights(plugins, tmp_path):
    recipe, representation, separator = separation_plugin.build(seed=5)
    (tmp_path / "models").mkdir()
    save_model(tmp_path / "models" / "start.safetensors", recipe=recipe, representation=representation, separator=separator)
    loaded = load_recipe(_recipe_file(tmp_path, "models/start.safetensors"), check_data=False).base
    assert loaded.separator.init == str(tmp_path / "models" / "start.safetensors")  # relative to the recipe
    assert "init" not in loaded.separator.params
    torch.manual_seed(0)
    built = build_separator(loaded, build_representation(loaded))
    expected = separator.state_dict()
    assert all(torch.equal(built.state_dict()[k], expected[k]) for k in expected)
    assert resolve(loaded)["separator"]["init"] == loaded.separator.init  # the run folder records it
    # ...but a model file trained from it does not need it
    save_model(tmp_path / "trained.safetensors", recipe=loaded, representation=build_representation(loaded), separator=built)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "trained.safetensors"), framework="pt") as handle:
        assert "init" not in json.loads(handle.metadata()["recipe"])["separator"]


def test_a_model_file_that_does_not_fit_is_one_line(plugins, tmp_path):
    recipe, representation, separator = separation_plugin.build()
    save_model(tmp_path / "start.safetensors", recipe=recipe, representation=representation, separator=separator)
    cases = [
        ({"channels": 2}, "channels 1 in the model file, 2 in this recipe"),
        ({"sources": ("vocals", "accompaniment")}, 'sources ["accompaniment", "vocals"] in the model file'),
        ({"sample_rate": 16000}, "sample rate 8000 in the model file, 16000 in this recipe"),
    ]
    for changes, message in cases:
        other = load_recipe(_recipe_file(tmp_path, "start.safetensors", **changes), check_data=False).base
        with pytest.raises(SepkitError) as error:
            build_separator(other, build_representation(other))
        assert str(error.value).startswith("separator.init: ") and message in str(error.value)
        assert "\n" not in str(error.value)
    (tmp_path / "broken.safetensors").write_bytes(b"not safetensors")
    other = load_recipe(_recipe_file(tmp_path, "broken.safetensors"), check_data=False).base
    with pytest.raises(SepkitError, match=r"^separator\.init: .*broken\.safetensors: not a safetensors model file"):
        build_separator(other, build_representation(other))
