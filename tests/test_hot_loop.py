"""Issue 18, item 5: an update reads nothing back from the device but its end, and a non-finite
step is skipped on the device with the guarantees the host checks gave (steps before it kept, none
after it taken, the update counted as non-finite)."""

from __future__ import annotations

import pytest
import torch

from test_training import load, make_trainer, tiny_data, weights  # noqa: F401  (fixture)

READS = ("__bool__", "item", "tolist", "__float__", "__int__")


@pytest.fixture
def count_host_reads(monkeypatch):
    """Counts every value a tensor hands to Python (on a GPU each one waits for the device)."""
    counts = {"n": 0}
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            counts["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return counts


@pytest.mark.parametrize("variant", ["both-critics", "baseline"])
def test_an_update_reads_one_value_back_from_the_device(tmp_path, tiny_data, count_host_reads, variant):
    trainer = make_trainer(load(tmp_path, tiny_data, variant=variant, max_grad_norm=1.0, critic_max_grad_norm=1.0),
                           tmp_path / "run", variant)
    trainer.train_update()  # first steps create the optimisers' states
    count_host_reads["n"] = 0
    assert trainer.train_update() is not None
    assert count_host_reads["n"] == 1


def test_a_non_finite_critic_step_skips_it_and_every_later_step_of_the_update(tmp_path, tiny_data, monkeypatch):
    trainer = make_trainer(load(tmp_path, tiny_data, critic_iterations=3), tmp_path / "run")
    assert list(trainer.critics) == ["vocals", "accompaniment"]
    divergence = trainer.divergence
    real_loss = divergence.critic_loss
    calls = {"n": 0}

    def third_is_nan(critic, real, fake):
        calls["n"] += 1
        result = real_loss(critic, real, fake)
        if calls["n"] == 3:  # iteration 2, the vocals critic
            result = result._replace(loss=result.loss * float("nan"))
        return result

    monkeypatch.setattr(divergence, "critic_loss", third_is_nan)
    before = weights(trainer)
    assert trainer.train_update() is None
    steps = {k: int(o.state_dict()["state"][0]["step"]) for k, o in trainer.critic_optimisers.items()}
    assert steps == {"vocals": 1, "accompaniment": 1}  # iteration 1 kept, nothing from the bad step on
    assert all(int(v["step"]) == 0 for v in trainer.optimiser.state_dict()["state"].values())  # no separator step
    after = weights(trainer)
    for key, value in before.items():
        assert torch.isfinite(after[key]).all(), key
        if key.startswith("separator."):
            assert torch.equal(value, after[key]), key
    assert all(p.grad is None for p in trainer.separator.parameters())
    monkeypatch.setattr(divergence, "critic_loss", real_loss)
    assert trainer.train_update() is not None  # the next update trains normally
