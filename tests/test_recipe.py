"""Recipe validation: every error names the TOML path; variants, overrides and paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sepkit.errors import RecipeError
from sepkit.recipe import load_recipe
from tests.conftest import REPO, minimal_recipe


def check_error(run_cli, write_recipe, text: str, expected: str, *extra: str) -> str:
    result = run_cli("recipe", "check", write_recipe(text), *extra)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in lines[0], lines[0]
    return lines[0]


def test_valid_recipe_prints_a_summary(run_cli, write_recipe):
    result = run_cli("recipe", "check", write_recipe(minimal_recipe()))
    assert result.exit_code == 0, result.stderr
    assert "valid recipe 'tiny' for sources accompaniment, vocals" in result.stdout
    assert "variant default: magnitude-stft -> unet; critics: none" in result.stdout


def test_malformed_toml(run_cli, write_recipe):
    check_error(run_cli, write_recipe, 'name = "x\n', "malformed TOML")


def test_missing_file(run_cli, tmp_path):
    result = run_cli("recipe", "check", tmp_path / "nope.toml")
    assert result.exit_code == 2
    assert "no such recipe file" in result.stderr


def test_unknown_key_in_a_component_names_its_toml_path(run_cli, write_recipe):
    text = minimal_recipe(separator='[separator]\ntype = "unet"\nnum_layers = 4\n')
    line = check_error(run_cli, write_recipe, text, "separator.num_layers: unknown key")
    assert "(separator 'unet')" in line


def test_unknown_top_level_and_section_keys(run_cli, write_recipe):
    check_error(run_cli, write_recipe, minimal_recipe() + "\nfoo = 1\n", "foo: unknown key")
    check_error(
        run_cli, write_recipe, minimal_recipe(training="[training]\nbatchsize = 3\n"),
        "training.batchsize: unknown key",
    )


def test_wrong_type(run_cli, write_recipe):
    text = minimal_recipe(training='[training]\nbatch_size = "big"\n')
    check_error(run_cli, write_recipe, text, "training.batch_size: Input should be a valid integer")
    text = minimal_recipe(representation='[representation]\ntype = "magnitude-stft"\nn_fft = "x"\n')
    check_error(run_cli, write_recipe, text, "representation.n_fft: Input should be a valid integer")


def test_unknown_component_type_lists_registered_names(run_cli, write_recipe):
    text = minimal_recipe(separator='[separator]\ntype = "transformer"\n')
    line = check_error(run_cli, write_recipe, text, "separator.type: unknown separator 'transformer'")
    assert "registered: " in line and "unet" in line
    text = minimal_recipe() + '\n[critics.vocals]\ntype = "resnet"\n'
    check_error(run_cli, write_recipe, text, "critics.vocals.type: unknown critic 'resnet'; registered: dcgan")
    text = minimal_recipe(data='[[data.paired]]\ntype = "nothing"\nroot = "x"\n')
    check_error(run_cli, write_recipe, text, "data.paired[0].type: unknown dataset 'nothing'")


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("[training]\nlearning_rate = -0.1\n", "training.learning_rate: Input should be greater than 0"),
        ("[training]\nbatch_size = 0\n", "training.batch_size: Input should be greater than 0"),
        ("[training]\nloudness_augmentation = [1.2, 0.2]\n", "training.loudness_augmentation: Value error, low bound 1.2 is above high bound 0.2"),
        ("[training]\ndevice = \"tpu\"\n", "training.device: Input should be 'auto', 'cpu', 'cuda' or 'mps'"),
    ],
)
def test_out_of_range_values(run_cli, write_recipe, section, expected):
    check_error(run_cli, write_recipe, minimal_recipe(training=section), expected)


def test_out_of_range_component_value(run_cli, write_recipe):
    text = minimal_recipe() + '\n[divergence]\ntype = "wasserstein-gp"\npenalty_weight = -1\n'
    check_error(run_cli, write_recipe, text, "divergence.penalty_weight: Input should be greater than or equal to 0")


def test_critic_for_a_source_that_is_not_listed(run_cli, write_recipe):
    text = minimal_recipe() + '\n[critics.drums]\ntype = "dcgan"\n'
    check_error(run_cli, write_recipe, text, "critics.drums: 'drums' is not one of the sources")


def test_bad_source_names(run_cli, write_recipe):
    text = minimal_recipe(head='name = "x"\nsources = ["vocals", "vocals"]\n')
    check_error(run_cli, write_recipe, text, "sources: Value error, sources are listed twice")
    text = minimal_recipe(head='name = "x"\nsources = []\n')
    check_error(run_cli, write_recipe, text, "sources: List should have at least 1 item")


def test_data_roles_must_feed_the_variant(run_cli, write_recipe):
    text = minimal_recipe() + '\n[[data.mixtures]]\ntype = "files"\nroot = "m"\n[critics.vocals]\ntype = "dcgan"\n'
    check_error(run_cli, write_recipe, text, "critics.vocals: no solo recordings of 'vocals'")
    text = minimal_recipe(training="[training]\nearly_stopping = true\n")
    check_error(run_cli, write_recipe, text, "data.validation: early stopping needs a validation set")


def test_errors_inside_a_variant_name_the_variant(run_cli, write_recipe):
    text = minimal_recipe() + "\n[variants.fast]\ntraining.batch_size = -2\n"
    check_error(run_cli, write_recipe, text, "variants.fast.training.batch_size: Input should be greater than 0")


def test_set_overrides_are_validated_the_same_way(run_cli, write_recipe):
    path = write_recipe(minimal_recipe())
    result = run_cli("recipe", "check", path, "--set", "training.batch_size=0")
    assert result.exit_code == 2
    assert "training.batch_size: Input should be greater than 0" in result.stderr
    result = run_cli("recipe", "check", path, "--set", "training.batch_size")
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.stderr
    loaded = load_recipe(path, ["training.batch_size=16", "separator.base_filters=8", "data.paired.0.root=/abs/x"])
    recipe = loaded.variants["default"]
    assert recipe.training.batch_size == 16
    assert recipe.separator.config.base_filters == 8
    assert recipe.data.paired[0].config.root == "/abs/x"


def test_variants_deep_merge_over_the_base(write_recipe):
    text = minimal_recipe() + (
        '\n[[data.mixtures]]\ntype = "files"\nroot = "m"\n'
        '[[data.solo.vocals]]\ntype = "files"\nroot = "v"\n'
        "[variants.baseline]\n"
        "[variants.vocals-critic]\ntraining.alpha = 0.01\n"
        '[variants.vocals-critic.critics.vocals]\ntype = "dcgan"\n'
    )
    loaded = load_recipe(write_recipe(text))
    assert list(loaded.variants) == ["baseline", "vocals-critic"]
    base, voc = loaded.variants["baseline"], loaded.variants["vocals-critic"]
    assert base.critics == {} and not base.uses_unpaired
    assert voc.training.alpha == 0.01 and voc.training.batch_size == 4
    assert voc.critics["vocals"].config.crop == (256, 64)
    assert voc.uses_unpaired
    with pytest.raises(RecipeError, match="unknown variant 'x'; this recipe has: baseline, vocals-critic"):
        loaded.select("x")


def test_set_on_a_base_key_wins_over_a_variant_that_sets_it(write_recipe):
    text = minimal_recipe() + (
        '\n[[data.mixtures]]\ntype = "files"\nroot = "m"\n'
        '[[data.solo.vocals]]\ntype = "files"\nroot = "v"\n'
        "[variants.baseline]\n"
        "[variants.vocals-critic]\ntraining.alpha = 0.01\ntraining.batch_size = 2\n"
        '[variants.vocals-critic.critics.vocals]\ntype = "dcgan"\n'
    )
    path = write_recipe(text)
    loaded = load_recipe(path, ["training.alpha=0.4"])
    assert loaded.variants["vocals-critic"].training.alpha == 0.4  # not silently the variant's 0.01
    assert loaded.variants["baseline"].training.alpha == 0.4
    assert loaded.variants["vocals-critic"].training.batch_size == 2  # keys not on the command line stay
    # a variant's own key on the command line wins over the base key for that variant only
    loaded = load_recipe(path, ["training.alpha=0.4", "variants.vocals-critic.training.alpha=0.1"])
    assert loaded.variants["vocals-critic"].training.alpha == 0.1
    assert loaded.variants["baseline"].training.alpha == 0.4


def test_a_variant_that_changes_a_component_type_replaces_its_table(write_recipe):
    text = minimal_recipe() + (
        '\n[[data.mixtures]]\ntype = "files"\nroot = "m"\n'
        '[[data.solo.vocals]]\ntype = "files"\nroot = "v"\n'
        '[divergence]\ntype = "wasserstein-gp"\ngradient_penalty = 5.0\n'
        '[variants.wgan.critics.vocals]\ntype = "dcgan"\n'
        '[variants.wgan-strict]\ndivergence.one_sided = false\n'
        '[variants.wgan-strict.critics.vocals]\ntype = "dcgan"\n'
        '[variants.js]\ndivergence.type = "js"\n'
        '[variants.js.critics.vocals]\ntype = "dcgan"\n'
    )
    loaded = load_recipe(write_recipe(text))
    wgan, strict, js = (loaded.variants[name] for name in ("wgan", "wgan-strict", "js"))
    assert wgan.divergence.config.gradient_penalty == 5.0 and wgan.divergence.config.one_sided
    assert strict.divergence.config.gradient_penalty == 5.0 and not strict.divergence.config.one_sided
    assert js.divergence.type == "js"  # gradient_penalty not carried over (js has no such key)
    assert not hasattr(js.divergence.config, "gradient_penalty")


def test_paths_are_substituted_and_roots_resolved(write_recipe, tmp_path):
    text = minimal_recipe(head='name = "x"\nsources = ["accompaniment", "vocals"]\n[paths]\ncorpus = "corp"\n',
                          data='[[data.paired]]\ntype = "stems"\nroot = "${corpus}/train"\n')
    recipe = load_recipe(write_recipe(text)).variants["default"]
    assert Path(recipe.data.paired[0].config.root) == (tmp_path / "corp" / "train").resolve()
    recipe = load_recipe(write_recipe(text), ["paths.corpus=/elsewhere"]).variants["default"]
    assert recipe.data.paired[0].config.root == "/elsewhere/train"
    bad = text.replace("${corpus}", "${corpse}")
    with pytest.raises(RecipeError, match=r"data.paired\[0\].root: unknown path \$\{corpse\}"):
        load_recipe(write_recipe(bad, "bad.toml"))


def test_shipped_recipes_are_valid(run_cli):
    for path in sorted((REPO / "recipes").glob("*.toml")):
        result = run_cli("recipe", "check", path)
        assert result.exit_code == 0, (path, result.stderr)


def test_singing_voice_recipe_has_the_paper_settings():
    loaded = load_recipe(REPO / "recipes" / "singing_voice.toml")
    assert set(loaded.variants) == {"baseline", "vocals-critic", "both-critics", "baseline-ema", "both-critics-balanced"}
    recommended = loaded.variants["both-critics-balanced"].training
    assert recommended.adversarial_weighting == "balanced" and recommended.alpha == 0.2
    assert recommended.selection_subsets == ("MedleyDB", "ccMixter", "iKala")
    assert loaded.variants["baseline-ema"].training.selection_subsets == recommended.selection_subsets
    va = loaded.variants["both-critics"]
    assert va.audio.sample_rate == 8192 and va.audio.channels == 1
    rep = va.representation.config
    assert (rep.n_fft, rep.hop_length, rep.window, rep.normalisation) == (512, 256, "hann", "log1p")
    t = va.training
    assert (t.batch_size, t.learning_rate, t.critic_iterations, t.alpha, t.beta) == (64, 5e-5, 5, 0.001, 0.001)
    assert t.loudness_augmentation == (0.2, 1.2) and t.updates_per_epoch == 1000
    assert set(va.critics) == {"vocals", "accompaniment"}
    assert va.divergence.type == "wasserstein-gp" and va.divergence.config.gradient_penalty == 10.0
    assert loaded.variants["vocals-critic"].training.alpha == 0.01
    assert loaded.variants["baseline"].critics == {}


def test_schema_is_json_with_every_registered_component(run_cli):
    result = run_cli("recipe", "schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    sep = schema["$defs"]["SeparatorSpec"]["oneOf"]
    types = [c["properties"]["type"]["const"] for c in sep]
    assert "unet" in types
    unet = sep[types.index("unet")]
    assert "input_frames" in unet["properties"] and unet["additionalProperties"] is False
    divergences = {c["properties"]["type"]["const"] for c in schema["$defs"]["DivergenceSpec"]["oneOf"]}
    assert {"wasserstein-gp", "js", "kl"} <= divergences
    assert schema["additionalProperties"] is False


def _schema_keys(model, prefix=""):
    from pydantic import BaseModel

    from sepkit.recipe.schema import ComponentSpec

    keys = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.append(path)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and not issubclass(annotation, ComponentSpec):
            keys += _schema_keys(annotation, path + ".")
    return keys


def test_docs_recipes_documents_every_schema_key():
    from sepkit.recipe.schema import Recipe

    text = (REPO / "docs" / "recipes.md").read_text()
    documented = set(re.findall(r"`([a-z_.]+)`", text))
    missing = [k for k in _schema_keys(Recipe) if k not in documented]
    assert not missing, f"docs/recipes.md does not document: {missing}"


def test_resolved_recipe_round_trips_through_toml():
    import tomllib

    from sepkit.recipe import recipe_from_dict
    from sepkit.recipe.dump import dumps_toml
    from sepkit.recipe.resolve import resolve

    for path in ("singing_voice.toml", "demo.toml"):
        for recipe in load_recipe(REPO / "recipes" / path).variants.values():
            data = resolve(recipe)
            again = recipe_from_dict(tomllib.loads(dumps_toml(data)), check_data=False).base
            assert resolve(again) == data
    recipe = load_recipe(REPO / "recipes" / "demo.toml", ["training.loudness_augmentation=false", "variants.both-critics.critics.vocals.crop=false"]).variants["both-critics"]
    assert recipe.training.loudness_augmentation is None and recipe.critics["vocals"].config.crop is None
    again = recipe_from_dict(tomllib.loads(dumps_toml(resolve(recipe))), check_data=False).base
    assert again.training.loudness_augmentation is None and again.critics["vocals"].config.crop is None

def test_unknown_logger_names_are_recipe_errors(run_cli, write_recipe):
    text = minimal_recipe(training="[training]\nloggers = [\"jsonl\", \"wandb\"]\n")
    check_error(run_cli, write_recipe, text, "training.loggers: unknown logger 'wandb'")

