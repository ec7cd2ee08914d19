"""Issue 13's stabilisers of adversarial training: balanced adversarial weight, warm-up, clipping,
weight averaging, critic regularisers, per-divergence critic iterations and model selection rules."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from sepkit.errors import SepkitError
from sepkit.recipe.schema import TrainingConfig
from sepkit.training.selection import Selection, rule_file, subset_scores
from sepkit.training.stabilisers import AdversarialWeight, WeightAverage
from test_training import load, make_trainer, tiny_data, weights  # noqa: F401  (fixture)

from sepkit_plugins.dcgan.model import DCGANCritic
from test_divergences import FunctionCritic, make


# --- the adversarial weight ----------------------------------------------------------------------


def _losses(scale_sup: float, scale_adv: float):
    sup_out = torch.full((2, 3), 1.0, requires_grad=True)
    adv_out = torch.full((2, 3), 1.0, requires_grad=True)
    sup = scale_sup * sup_out.square().sum()  # gradient 2 * scale_sup everywhere: norm 2 * scale * sqrt(6)
    adv = scale_adv * adv_out.sum()  # gradient scale_adv everywhere: norm scale * sqrt(6)
    return (sup, sup_out), (adv, adv_out)


def test_fixed_weight_is_alpha_and_ramps_up_over_the_warmup():
    weight = AdversarialWeight(TrainingConfig(alpha=0.01, alpha_warmup_updates=4), torch.device("cpu"))
    sup, adv = _losses(1.0, 1.0)
    assert [float(weight(u, sup, adv)) for u in (0, 1, 3, 10)] == pytest.approx([0.0025, 0.005, 0.01, 0.01])


def test_balanced_weight_makes_the_adversarial_output_gradient_alpha_times_the_supervised():
    config = TrainingConfig(alpha=0.5, adversarial_weighting="balanced", balance_smoothing=0.9)
    weight = AdversarialWeight(config, torch.device("cpu"))
    sup, adv = _losses(1.0, 4.0)  # |g_sup| = 2 sqrt 6, |g_adv| = 4 sqrt 6
    first = float(weight(0, sup, adv))
    assert first == pytest.approx(0.5 * 2 / 4)  # no smoothing on the first update
    sup, adv = _losses(1.0, 1.0)  # now |g_adv| = sqrt 6: EMA of the norms, not of the ratio
    second = float(weight(1, sup, adv))
    g_sup, g_adv = 2 * math.sqrt(6), 0.9 * 4 * math.sqrt(6) + 0.1 * math.sqrt(6)
    assert second == pytest.approx(0.5 * g_sup / g_adv, rel=1e-6)
    # the losses' parameters got no gradient from measuring the norms
    assert sup[1].grad is None and adv[1].grad is None


def test_balanced_weight_state_round_trips():
    config = TrainingConfig(alpha=0.5, adversarial_weighting="balanced")
    a = AdversarialWeight(config, torch.device("cpu"))
    a(0, *_losses(1.0, 3.0))
    b = AdversarialWeight(config, torch.device("cpu"))
    b.load_state_dict(a.state_dict())
    assert float(a(1, *_losses(2.0, 1.0))) == float(b(1, *_losses(2.0, 1.0)))


# --- weight averaging ------------------------------------------------------------------------------


def test_weight_average_follows_the_decay_schedule():
    network = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        network.weight.fill_(0.0)
    average = WeightAverage(network, decay=0.5)
    with torch.no_grad():
        network.weight.fill_(1.0)
    average.update(network, update=0)  # decay min(0.5, 1/10) = 0.1: mean moves 90 % of the way
    assert float(average.average.weight) == pytest.approx(0.9)
    average.update(network, update=100)  # decay 0.5
    assert float(average.average.weight) == pytest.approx(0.95)
    assert not average.average.weight.requires_grad


# --- model selection -----------------------------------------------------------------------------


def _validation(loss: float, sdr: float, field_sdr: float) -> dict:
    return {"loss": loss, "sdr": {"a": sdr, "b": sdr},
            "subsets": {"field": {"loss": loss * 2, "sdr": {"a": field_sdr, "b": field_sdr + 2}}}}


def test_selection_keeps_each_rules_best_and_counts_bad_epochs_of_its_own_rule():
    selection = Selection("validation-sdr", ("field",))
    assert selection.observe(1, _validation(1.0, 5.0, 3.0)) == ["validation-loss", "validation-sdr", "last"]
    assert selection.observe(2, _validation(0.5, 4.0, 2.0)) == ["validation-loss", "last"]
    assert selection.bad_epochs == 1
    assert selection.observe(3, _validation(0.7, 6.0, 7.0)) == ["validation-sdr", "last"]
    assert selection.best == {"validation-loss": (1.0, 2), "validation-sdr": (8.0, 3)}
    assert selection.bad_epochs == 0 and selection.selected() == (8.0, 3)
    restored = Selection("validation-sdr", ("field",))
    restored.load_state_dict(selection.state_dict())
    assert restored.best == selection.best and restored.bad_epochs == 0
    assert rule_file("last") == "model-last.safetensors"


def test_selection_pools_several_subsets_by_their_track_counts():
    # one subset of 3 tracks, one of 1: the pooled score weighs them 3:1, not 1:1
    validation = {"loss": 0.0, "sdr": {"a": 0.0, "b": 0.0}, "subsets": {
        "MedleyDB": {"loss": 1.0, "frames": 300, "sdr": {"a": 4.0, "b": 8.0}, "sdr_tracks": {"a": 3, "b": 3}},
        "iKala": {"loss": 5.0, "frames": 100, "sdr": {"a": 0.0, "b": 4.0}, "sdr_tracks": {"a": 1, "b": 0}},
        "DSD100": {"loss": 9.0, "frames": 100, "sdr": {"a": 99.0, "b": 99.0}, "sdr_tracks": {"a": 1, "b": 1}},
    }}
    scores = subset_scores(validation, ("MedleyDB", "iKala"))
    assert scores["validation-loss"] == pytest.approx((300 * 1.0 + 100 * 5.0) / 400)
    # a: (3 * 4 + 1 * 0) / 4 = 3; b: iKala's SDR counted for no track, so 8; mean 5.5
    assert scores["validation-sdr"] == pytest.approx(5.5)
    assert subset_scores(validation, ("iKala",))["validation-sdr"] == pytest.approx(2.0)


def _two_subset_recipe(tmp_path, root, select_subset):
    from sepkit.recipe import load_recipe
    from test_training import tiny_recipe

    one = '[[data.validation]]\ntype = "stems"\nroot = "${root}/valid"\n'
    text = tiny_recipe(root, select_subset=select_subset, select='"validation-sdr"')
    assert one in text
    text = text.replace(one, one + 'name = "one"\n' + one + 'name = "two"\n')
    path = tmp_path / "two.toml"
    path.write_text(text)
    return load_recipe(path).variants["baseline"]


def test_pooling_every_validation_subset_scores_like_every_track(tmp_path, tiny_data):
    recipe = _two_subset_recipe(tmp_path, tiny_data, '["one", "two"]')
    assert recipe.training.selection_subsets == ("one", "two")
    trainer = make_trainer(recipe, tmp_path / "run", variant="baseline")
    validation = trainer.validate()
    assert set(validation["subsets"]) == {"one", "two"}
    pooled, every = subset_scores(validation, ("one", "two")), subset_scores(validation, None)
    assert pooled["validation-loss"] == pytest.approx(every["validation-loss"], rel=1e-12)
    assert pooled["validation-sdr"] == pytest.approx(every["validation-sdr"], rel=1e-12)
    with pytest.raises(SepkitError, match="select_subset = 'three' is not a validation subset"):
        make_trainer(_two_subset_recipe(tmp_path, tiny_data, '["one", "three"]'), tmp_path / "b", variant="baseline")


@pytest.mark.parametrize("value", ["[]", '["one", "one"]'])
def test_a_list_of_subsets_names_each_once(value):
    with pytest.raises(ValueError, match="non-empty and name each subset once"):
        TrainingConfig(select_subset=__import__("tomllib").loads(f"v = {value}")["v"])


def test_last_rule_stops_early_on_the_validation_loss():
    selection = Selection("last")
    selection.observe(1, _validation(1.0, 5.0, 3.0))
    selection.observe(2, _validation(2.0, 9.0, 9.0))
    assert selection.stopping_rule == "validation-loss" and selection.bad_epochs == 1


# --- in the trainer --------------------------------------------------------------------------------


STABILISED = dict(adversarial_weighting='"balanced"', alpha=0.3, alpha_warmup_updates=2, ema=0.9,
                  max_grad_norm=0.5, critic_max_grad_norm=1.0, select='"validation-sdr"',
                  critic_betas="[0.5, 0.9]", max_epochs=3)


def test_every_stabiliser_trains_logs_and_resumes_bit_identically(tmp_path, tiny_data):
    recipe = load(tmp_path, tiny_data, **STABILISED)
    full = make_trainer(recipe, tmp_path / "full")
    full.fit()
    records = full.metrics.read()
    updates = [r for r in records if "adversarial_weight" in r]
    assert len(updates) == 9 and all(r["adversarial_weight"] > 0 for r in updates)
    for name in ("model.safetensors", "model-last.safetensors", "model-by-validation-loss.safetensors",
                 "model-by-validation-sdr.safetensors"):
        assert (tmp_path / "full" / name).exists(), name
    # the saved model is the weight average, not the raw separator
    saved = load_file(tmp_path / "full" / "model-last.safetensors")
    average = full.average.average.state_dict()
    raw = full.separator.state_dict()
    key = next(k for k in saved if k.endswith("output.weight"))
    name = key.split("separator.", 1)[-1]
    assert torch.equal(saved[key], average[name]) and not torch.equal(saved[key], raw[name])
    assert full.critic_optimisers["vocals"].param_groups[0]["betas"] == (0.5, 0.9)

    first = make_trainer(recipe, tmp_path / "cut")
    first.fit(stop_after_updates=4)
    resumed = make_trainer(recipe, tmp_path / "cut")
    resumed.fit(resume=True)
    a, b = weights(full), weights(resumed)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for x, y in zip(full.average.average.parameters(), resumed.average.average.parameters()):
        assert torch.equal(x, y)


def test_clipping_bounds_the_gradient_norms(tmp_path, tiny_data):
    trainer = make_trainer(load(tmp_path, tiny_data, max_grad_norm=1e-3, critic_max_grad_norm=1e-3), tmp_path / "run")
    log = trainer.train_update()
    assert log is not None and float(log["grad_norm.separator"]) > 1e-3  # the logged norm is before clipping
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.separator.parameters() if p.grad is not None]))
    assert float(norm) <= 1e-3 * 1.0001
    critic_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.critics["vocals"].parameters()]))
    assert float(critic_norm) <= 1e-3 * 1.0001


def test_auto_critic_iterations_follow_the_divergence(tmp_path, tiny_data):
    from sepkit.recipe import load_recipe
    from test_training import tiny_recipe

    for divergence, expected in (("js", 1), ("kl", 1), ("wasserstein-gp", 5)):
        path = tmp_path / f"{divergence}.toml"
        path.write_text(tiny_recipe(tiny_data, critic_iterations='"auto"') + f'[divergence]\ntype = "{divergence}"\n')
        trainer = make_trainer(load_recipe(path).variants["both-critics"], tmp_path / f"run-{divergence}")
        assert trainer.critic_iterations == expected
        trainer.train_update()
        assert trainer.critic_optimisers["vocals"].state_dict()["state"][0]["step"].item() == expected


def test_settings_that_do_not_fit_the_data_are_clear_errors(tmp_path, tiny_data):
    with pytest.raises(SepkitError, match="select_subset = 'nope' is not a validation subset"):
        make_trainer(load(tmp_path, tiny_data, select_subset='"nope"'), tmp_path / "a")


# --- critic regularisers -------------------------------------------------------------------------


def test_r1_penalty_of_a_linear_critic_is_half_its_squared_slope():
    critic = FunctionCritic(lambda x: 3.0 * x)  # |grad| = 3 everywhere
    real, fake = torch.randn(8, 1, 1, 1), torch.randn(8, 1, 1, 1)
    for name in ("wasserstein-gp", "js", "kl"):
        plain = make(name, penalty="none").critic_loss(critic, real, fake).loss
        r1 = make(name, penalty="r1", penalty_weight=2.0).critic_loss(critic, real, fake).loss
        assert float((r1 - plain).detach()) == pytest.approx(2.0 * 9.0 / 2, rel=1e-5), name


def test_two_sided_gradient_penalty_on_js():
    critic = FunctionCritic(lambda x: 0.5 * x)  # |grad| = 0.5: two-sided (0.5 - 1)^2, one-sided 0
    real, fake = torch.randn(8, 1, 1, 1), torch.randn(8, 1, 1, 1)
    plain = make("js").critic_loss(critic, real, fake).loss
    assert float(make("js", penalty="gp", penalty_weight=1.0).critic_loss(critic, real, fake).loss - plain) == pytest.approx(0.25, rel=1e-5)
    assert float(make("js", penalty="gp-one-sided").critic_loss(critic, real, fake).loss - plain) == pytest.approx(0.0, abs=1e-7)


def test_kl_cap_bounds_every_examples_gradient_weight():
    divergence = make("kl")
    scores = torch.tensor([0.0, 4.0, 50.0, 1e6], requires_grad=True)
    (grad,) = torch.autograd.grad(divergence.conjugate(scores).sum(), scores)
    assert float(grad.max()) <= math.exp(divergence.config.max_exponent - 1) * (1 + 1e-6)


def test_spectral_norm_makes_every_layer_of_the_dcgan_critic_about_1_lipschitz():
    torch.manual_seed(0)
    critic = DCGANCritic({"crop": None, "base_filters": 4, "max_filters": 8, "spectral_norm": True}, input_shape=(1, 32, 16))
    critic.train()
    for _ in range(30):  # power iterations happen on training forwards
        critic(torch.randn(2, 1, 32, 16))
    layers = [m for m in critic.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert float(sigma) == pytest.approx(1.0, rel=0.05)


# --- hard mixture consistency ----------------------------------------------------------------------


def test_unet_mask_output_sums_to_the_mixture_in_linear_magnitudes(tmp_path, tiny_data):
    from sepkit.training.losses import additive_penalty

    from sepkit.model import load_model
    from sepkit.recipe import load_recipe
    from test_training import tiny_recipe

    path = tmp_path / "mask.toml"

    path.write_text(tiny_recipe(tiny_data).replace('input_frames = 46\n', 'input_frames = 46\noutput = "mask"\n'))
    recipe = load_recipe(path).variants["both-critics"]
    trainer = make_trainer(recipe, tmp_path / "run")
    assert trainer.train_update() is not None
    mixture = trainer.data.mixtures.sample(4)[:, 0]
    estimates = trainer.separator(mixture)
    crop = trainer._crop(mixture)
    assert estimates.shape[1] == 2 and float(additive_penalty(trainer.representation, crop, estimates)) < 1e-10
    linear = trainer.representation.to_linear(estimates).sum(dim=1)
    assert torch.allclose(linear, trainer.representation.to_linear(crop), rtol=1e-4, atol=1e-6)
    trainer._save_model(None, "mask.safetensors")  # a model file rebuilds the masks through the builder
    loaded = load_model(tmp_path / "run" / "mask.safetensors").separator
    assert torch.allclose(loaded(mixture), estimates, atol=1e-6)


def test_spectrally_normalised_critics_train_and_resume_bit_identically(tmp_path, tiny_data):
    from sepkit.recipe import load_recipe
    from test_training import tiny_recipe

    path = tmp_path / "sn.toml"
    path.write_text(tiny_recipe(tiny_data, max_epochs=2).replace("dense_units = 8\n", "dense_units = 8\nspectral_norm = true\n"))
    recipe = load_recipe(path).variants["both-critics"]
    assert all(c.config.spectral_norm for c in recipe.critics.values())
    full = make_trainer(recipe, tmp_path / "full")
    full.fit()
    cut = make_trainer(recipe, tmp_path / "cut")
    cut.fit(stop_after_updates=2)
    resumed = make_trainer(recipe, tmp_path / "cut")
    resumed.fit(resume=True)
    a, b = weights(full), weights(resumed)
    assert any("parametrizations" in k for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
