"""recipes/openunmix_adapt.toml at a tiny size on generated data, from a converted random-weight model:
``separator.init`` loads the weights, the critics variant trains and resumes bit-identically, and the
adapted weights still convert back into Open-Unmix's own network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import sepkit
from sepkit.errors import SepkitError
from sepkit.recipe import recipe_from_dict
from sepkit.recipe.load import read_toml
from sepkit.separation.windows import separate_features
from sepkit.training.trainer import Trainer

from sepkit_openunmix.convert import openunmix_state_dicts

from openunmix_helpers import TINY, checkpoints, convert_cli, isolated_cache, one_thread, openunmix_model, relative  # noqa: F401

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "openunmix_adapt.toml"
SOURCES = ("vocals", "drums", "bass", "other")


def _generated(tracks: int = 1) -> list[dict]:
    return [{"type": "synthetic", "tracks": tracks, "seconds": 2, "sample_rate": 8000, "channels": 2}]


def tiny_recipe(init: Path, variant: str = "critics", **separator):  # type: ignore[no-untyped-def]
    """The recipe file with its sizes shrunk and its data tables replaced by generated stereo songs."""
    raw = read_toml(RECIPE)
    raw["paths"]["pretrained"] = str(init)
    raw["audio"]["sample_rate"] = 8000
    raw["representation"].update(n_fft=128, hop_length=32)
    raw["separator"].update(hidden_size=TINY["hidden_size"], max_bin=TINY["max_bin"], output_frames=8,
                            context_frames=4, **separator)
    raw["training"].update(batch_size=2, updates_per_epoch=3, max_epochs=2, critic_iterations=1)
    raw["evaluation"]["batch_size"] = 2
    for critic in raw["variants"]["critics"]["critics"].values():
        critic.update(base_filters=2, max_filters=4, dense_units=4)
    raw["data"] = {
        "paired": _generated(2), "validation": _generated(), "test": _generated(),
        "mixtures": _generated(2), "solo": {s: _generated() for s in SOURCES},
    }
    return recipe_from_dict(raw).variants[variant]


@pytest.fixture
def init(tmp_path) -> Path:
    """A converted random-weight Open-Unmix of the tiny size, the four umxhq targets."""
    path = tmp_path / "pretrained.safetensors"
    result = convert_cli(checkpoints(tmp_path, SOURCES), path)
    assert result.exit_code == 0, result.stderr
    return path


def _trainer(recipe, out: Path) -> Trainer:  # type: ignore[no-untyped-def]
    return Trainer(recipe, out, variant="critics", device="cpu", progress=False)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    tensors = {f"separator.{k}": v.clone() for k, v in trainer.separator.state_dict().items()}
    for name, critic in trainer.critics.items():
        tensors.update({f"{name}.{k}": v.clone() for k, v in critic.state_dict().items()})
    return tensors


def test_the_recipe_starts_from_the_model_trains_resumes_identically_and_converts_back(tmp_path, init):
    recipe = tiny_recipe(init)
    assert recipe.separator.init == str(init) and set(recipe.critics) == set(SOURCES)

    full = _trainer(recipe, tmp_path / "full")
    pretrained = load_file(str(init))
    start = full.separator.state_dict()
    assert start.keys() == pretrained.keys()
    assert all(torch.equal(start[k], pretrained[k]) for k in start)  # nothing frozen, nothing changed yet
    full.fit()
    assert full.updates == 6
    trained = full.separator.state_dict()
    assert not torch.equal(trained["targets.0.fc1.weight"], pretrained["targets.0.fc1.weight"])

    cut = _trainer(recipe, tmp_path / "cut")
    assert cut.fit(stop_after_updates=4).stopped_by == "interrupted"
    resumed = _trainer(recipe, tmp_path / "cut")
    assert resumed.fit(resume=True).updates == 6
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"

    # The adapted model file: its recipe no longer needs the initial file, its weights are Open-Unmix's.
    init.unlink()
    model = sepkit.load_model(tmp_path / "full" / "model.safetensors")
    assert model.sources == list(SOURCES)
    features, _ = model.representation.encode(torch.rand(1, 2, 8000) - 0.5)
    ours = separate_features(model.separator, features, overlap=0.0)
    for index, state in enumerate(openunmix_state_dicts(model.separator)):
        network = openunmix_model.OpenUnmix(**TINY)
        network.load_state_dict(state, strict=True)
        network.eval()
        with torch.no_grad():
            window = network(torch.nn.functional.pad(features, (4, 4))[..., :16].clone())[..., 4:12]
        assert relative(ours[:, index, ..., :8], window) < 1e-5


def test_an_init_file_that_does_not_fit_the_recipe_is_one_line(tmp_path, init):
    from sepkit.build import build_representation, build_separator

    recipe = tiny_recipe(init)
    other = recipe.model_copy(update={"sources": ["vocals", "drums", "other", "bass"]})
    with pytest.raises(SepkitError, match=r"sources \[\"vocals\", \"drums\", \"bass\", \"other\"\] in the model file"):
        build_separator(other, build_representation(other))
    hop = tiny_recipe(init)
    hop.representation._config = hop.representation.config.model_copy(update={"hop_length": 16})
    with pytest.raises(SepkitError, match=r"^separator\.init: .*: representation .*\"hop_length\": 32.* in the model file, .*\"hop_length\": 16.* in this recipe$"):
        build_separator(hop, build_representation(hop))
    separator = recipe.separator.model_copy(update={"init": str(tmp_path / "missing.safetensors")})
    missing = recipe.model_copy(update={"separator": separator})  # recipes are frozen once validated
    with pytest.raises(SepkitError, match=r"^separator\.init: .*missing\.safetensors: no such model file$"):
        build_separator(missing, build_representation(missing))
