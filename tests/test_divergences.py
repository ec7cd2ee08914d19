"""The built-in divergences: exact formulas, estimates against analytic values, gradient directions.

Estimator tests train a small MLP critic on samples of two known 1-D Gaussians (features of shape
[B, 1, 1, 1]) and compare the logged estimate with the analytic divergence.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate, stats
from torch import nn

from sepkit.divergence import CriticLoss
from sepkit.errors import ShapeError
from sepkit.plugins import registry
from sepkit.testing import MLPCritic

SHAPE = (1, 1, 1)  # one scalar feature per example


def make(name: str, **config):
    cls = registry("divergence").get(name).cls
    return cls(cls.parse_config(config))


def gaussian(mean: float, std: float):
    return lambda n: mean + std * torch.randn(n, *SHAPE)


def train_critic(divergence, sample_real, sample_fake, *, steps: int = 300, batch: int = 256, seed: int = 0, shape=SHAPE):
    torch.manual_seed(seed)
    critic = MLPCritic(input_shape=shape, hidden=64)
    optimiser = torch.optim.Adam(critic.parameters(), lr=2e-3, betas=(0.5, 0.9))
    # decaying to a tenth settles the critic, so that the final estimate does not jitter
    schedule = torch.optim.lr_scheduler.LinearLR(optimiser, 1.0, 0.1, total_iters=steps)
    for _ in range(steps):
        result = divergence.critic_loss(critic, sample_real(batch), sample_fake(batch))
        optimiser.zero_grad()
        result.loss.backward()
        optimiser.step()
        schedule.step()
    return critic


def final_estimate(divergence, critic, sample_real, sample_fake, n: int = 20000) -> float:
    return float(divergence.critic_loss(critic, sample_real(n), sample_fake(n)).estimate)


class FunctionCritic(nn.Module):
    """A critic given by a formula of the (scalar) feature, with one unused parameter to train."""

    def __init__(self, function):
        super().__init__()
        self.function = function
        self.offset = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x.flatten(1).sum(dim=1)) + self.offset


class LinearCritic(nn.Module):
    """``D(x) = <w, x>``: its gradient is ``w`` everywhere, so the gradient penalty is known exactly."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) * self.weight.flatten()).sum(dim=1)


def log_density_ratio(real: tuple[float, float], fake: tuple[float, float]):
    p, q = stats.norm(*real), stats.norm(*fake)
    (m1, s1), (m2, s2) = real, fake
    return lambda x: (
        -((x - m1) ** 2) / (2 * s1**2) + ((x - m2) ** 2) / (2 * s2**2) + math.log(s2 / s1)
    ), p, q


def kl_gaussians(m1: float, s1: float, m2: float, s2: float) -> float:
    """KL(N(m1, s1^2) || N(m2, s2^2)) in nats."""
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def js_gaussians(m1: float, s1: float, m2: float, s2: float) -> float:
    """JS(N(m1, s1^2), N(m2, s2^2)) in nats, by numerical integration."""
    p, q = stats.norm(m1, s1).pdf, stats.norm(m2, s2).pdf

    def integrand(x: float) -> float:
        m = (p(x) + q(x)) / 2
        return 0.5 * p(x) * np.log(p(x) / m) + 0.5 * q(x) * np.log(q(x) / m)

    low, high = min(m1 - 12 * s1, m2 - 12 * s2), max(m1 + 12 * s1, m2 + 12 * s2)
    return integrate.quad(integrand, low, high)[0]


# --- configs -------------------------------------------------------------------------------------


def test_registered_with_the_paper_defaults():
    assert make("wasserstein-gp").config.model_dump() == {"penalty": "gp-one-sided", "penalty_weight": 10.0}
    assert make("js").config.model_dump() == {"penalty": "none", "penalty_weight": 10.0, "non_saturating": True}
    # KL: non-saturating separator loss and a cap that bounds an example's weight at e^4 (issue 13)
    assert make("kl").config.model_dump() == {
        "penalty": "none", "penalty_weight": 10.0, "non_saturating": True, "max_exponent": 5.0}


def test_wasserstein_reads_the_paper_names_of_earlier_recipes():
    config = make("wasserstein-gp", gradient_penalty=5.0, one_sided=False).config
    assert (config.penalty, config.penalty_weight) == ("gp", 5.0)
    assert (config.gradient_penalty, config.one_sided) == (5.0, False)
    with pytest.raises(ValueError, match="say the same thing"):
        make("wasserstein-gp", gradient_penalty=5.0, penalty_weight=1.0)


# --- estimates against analytic values -----------------------------------------------------------


@pytest.mark.parametrize("one_sided", [True, False])
def test_wasserstein_estimate_approaches_w1_plus_the_penalty_bias(one_sided):
    """W1(N(0, I), N(m, I)) = |m| = 2, here in two features with m = (sqrt 2, sqrt 2).

    With a finite lambda the critic trades a slope s slightly above 1 for the penalty: maximising
    W s - lambda (s - 1)^2 gives s = 1 + W / (2 lambda), so the estimate converges to
    W + W^2 / (2 lambda) = 2.2 for lambda = 10, one- or two-sided alike. (Two features, because in
    one the two-sided penalty can trap a critic that starts with the wrong sign: turning its slope
    around passes through slope 0, where the penalty is lambda.)"""
    divergence = make("wasserstein-gp", one_sided=one_sided)
    shape = (1, 2, 1)
    real = lambda n: torch.randn(n, *shape)  # noqa: E731
    fake = lambda n: math.sqrt(2) + torch.randn(n, *shape)  # noqa: E731
    critic = train_critic(divergence, real, fake, shape=shape)
    estimate = final_estimate(divergence, critic, real, fake)
    w1, lam = 2.0, 10.0
    assert estimate == pytest.approx(w1 + w1**2 / (2 * lam), abs=0.08)


def test_js_estimate_approaches_the_integrated_js_divergence():
    divergence = make("js")
    real, fake = gaussian(0, 1), gaussian(2, 1)
    expected = js_gaussians(0, 1, 2, 1)
    assert expected == pytest.approx(0.3368, abs=1e-4)
    critic = train_critic(divergence, real, fake)
    assert final_estimate(divergence, critic, real, fake) == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize(("real", "fake"), [((0.0, 1.0), (1.0, 1.0)), ((0.0, 1.0), (1.0, 2.0))])
def test_kl_estimate_approaches_the_analytic_kl_of_real_from_fake(real, fake):
    divergence = make("kl")
    expected = kl_gaussians(*real, *fake)  # 0.5 and log 2 + 1/4 - 1/2 = 0.443
    critic = train_critic(divergence, gaussian(*real), gaussian(*fake))
    assert final_estimate(divergence, critic, gaussian(*real), gaussian(*fake)) == pytest.approx(expected, abs=0.05)


def test_optimal_critics_give_the_analytic_values_and_worse_critics_less():
    """The estimates are variational lower bounds, tight at the known optimal critics."""
    torch.manual_seed(0)
    real, fake = gaussian(0, 1)(200_000), gaussian(2, 1)(200_000)
    log_ratio, _, _ = log_density_ratio((0, 1), (2, 1))  # log p_real / p_fake = 2 - 2 x

    w = make("wasserstein-gp", gradient_penalty=0.0)
    assert float(w.critic_loss(FunctionCritic(lambda x: -x), real, fake).estimate) == pytest.approx(2.0, abs=0.02)
    assert float(w.critic_loss(FunctionCritic(lambda x: -0.5 * x), real, fake).estimate) < 1.1

    js = make("js")
    optimum = float(js.critic_loss(FunctionCritic(log_ratio), real, fake).estimate)
    assert optimum == pytest.approx(js_gaussians(0, 1, 2, 1), abs=0.005)
    assert float(js.critic_loss(FunctionCritic(lambda x: 0.5 * log_ratio(x)), real, fake).estimate) < optimum - 0.01

    kl = make("kl")
    optimum = float(kl.critic_loss(FunctionCritic(lambda x: 1 + log_ratio(x)), real, fake).estimate)
    assert optimum == pytest.approx(kl_gaussians(0, 1, 2, 1), abs=0.05)  # 2
    assert float(kl.critic_loss(FunctionCritic(lambda x: 1 + 0.5 * log_ratio(x)), real, fake).estimate) < optimum - 0.1


# --- exact formulas --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("norm", "one_sided", "penalty"), [(3.0, True, 4.0), (3.0, False, 4.0), (0.5, True, 0.0), (0.5, False, 0.25)]
)
def test_gradient_penalty_of_a_linear_critic_and_its_gradient(norm, one_sided, penalty):
    torch.manual_seed(0)
    direction = torch.randn(2, 3, 4)
    critic = LinearCritic(norm * direction / direction.norm())
    real, fake = torch.randn(8, 2, 3, 4), torch.randn(8, 2, 3, 4) + 1
    divergence = make("wasserstein-gp", gradient_penalty=10.0, one_sided=one_sided)
    result = divergence.critic_loss(critic, real, fake)
    assert isinstance(result, CriticLoss)
    gap = critic(fake).mean() - critic(real).mean()
    assert float(result.loss.detach()) == pytest.approx(float(gap.detach()) + 10.0 * penalty, rel=1e-5, abs=1e-5)
    assert float(result.estimate) == pytest.approx(-float(gap.detach()), rel=1e-5, abs=1e-6)
    assert not result.estimate.requires_grad
    # d loss / d w = mean(fake) - mean(real) + 2 lambda (|w| - 1) w / |w|: the penalty trains the critic
    result.loss.backward()
    weight = critic.weight.detach()
    excess = norm - 1 if (norm > 1 or not one_sided) else 0.0
    expected = fake.mean(0) - real.mean(0) + 2 * 10.0 * excess * weight / weight.norm()
    assert torch.allclose(critic.weight.grad, expected, atol=1e-4)


def test_interpolates_pair_each_fake_with_a_shuffled_real_example():
    batch, bins, frames = 6, 6, 3
    seen = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, x):
            seen.append(x.detach().clone())
            return self.scale * x.flatten(1).sum(dim=1)

    real = torch.eye(batch).reshape(batch, 1, bins, 1).expand(batch, 1, bins, frames).contiguous()  # example j = e_j
    fake = torch.zeros(batch, 1, bins, frames)
    torch.manual_seed(1)
    permutations, weights = [], []
    for _ in range(20):
        seen.clear()
        make("wasserstein-gp").critic_loss(Recorder(), real, fake)
        interpolates = seen[-1][:, 0]  # [B, F, T]; x_hat_i = (1 - eps_i) e_perm(i)
        assert torch.equal(interpolates, interpolates[..., :1].expand_as(interpolates))  # eps broadcast over T
        per_example = interpolates[..., 0]
        assert ((per_example > 0).sum(dim=1) <= 1).all()
        permutation = per_example.argmax(dim=1)
        assert sorted(permutation.tolist()) == list(range(batch))  # a permutation of the real batch
        weight = per_example.max(dim=1).values  # 1 - eps_i
        assert ((weight >= 0) & (weight <= 1)).all()
        permutations.append(tuple(permutation.tolist()))
        weights.append(weight)
    assert len(set(permutations)) > 10  # shuffled anew each call
    eps = 1 - torch.cat(weights)
    assert 0.35 < float(eps.mean()) < 0.65 and float(eps.std()) > 0.2  # U(0, 1), per example


def test_gradient_penalty_is_finite_for_a_critic_with_zero_gradient():
    critic = FunctionCritic(lambda x: 0 * x)
    real, fake = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    for one_sided, penalty in ((True, 0.0), (False, 1.0)):
        result = make("wasserstein-gp", one_sided=one_sided).critic_loss(critic, real, fake)
        assert float(result.loss.detach()) == pytest.approx(10.0 * penalty, abs=1e-4)
        result.loss.backward()
        assert torch.isfinite(critic.offset.grad)


def test_js_losses_match_binary_cross_entropy():
    torch.manual_seed(0)
    critic = MLPCritic(input_shape=(1, 2, 2))
    real, fake = torch.randn(16, 1, 2, 2), torch.randn(16, 1, 2, 2) + 1
    with torch.no_grad():
        real_logits, fake_logits = critic(real), critic(fake)
    bce = F.binary_cross_entropy_with_logits
    expected = bce(real_logits, torch.ones(16)) + bce(fake_logits, torch.zeros(16))
    result = make("js").critic_loss(critic, real, fake)
    assert float(result.loss.detach()) == pytest.approx(float(expected), rel=1e-6)
    assert float(result.estimate) == pytest.approx(math.log(2) - float(expected) / 2, rel=1e-6)
    assert float(make("js").separator_loss(critic, fake).detach()) == pytest.approx(float(bce(fake_logits, torch.ones(16))), rel=1e-6)
    saturating = make("js", non_saturating=False).separator_loss(critic, fake).detach()
    assert float(saturating) == pytest.approx(float(torch.log(1 - torch.sigmoid(fake_logits)).mean()), rel=1e-5)
    # an undecided critic (all logits 0) estimates JS = 0
    undecided = make("js").critic_loss(FunctionCritic(lambda x: 0 * x), real, fake)
    assert float(undecided.loss.detach()) == pytest.approx(2 * math.log(2)) and float(undecided.estimate) == pytest.approx(0.0, abs=1e-7)


def test_wasserstein_and_kl_separator_losses():
    critic = FunctionCritic(lambda x: 0.3 * x - 0.2)
    fake = torch.randn(32, 1, 1, 1)
    scores = 0.3 * fake.flatten() - 0.2
    assert float(make("wasserstein-gp").separator_loss(critic, fake).detach()) == pytest.approx(float(-scores.mean()), rel=1e-6)
    assert float(make("kl", non_saturating=False).separator_loss(critic, fake).detach()) == pytest.approx(float(-torch.exp(scores - 1).mean()), rel=1e-6)
    assert float(make("kl", non_saturating=True).separator_loss(critic, fake).detach()) == pytest.approx(float(-scores.mean()), rel=1e-6)
    real = torch.randn(32, 1, 1, 1)
    bound = (0.3 * real.flatten() - 0.2).mean() - torch.exp(scores - 1).mean()
    result = make("kl").critic_loss(critic, real, fake)
    assert float(result.estimate) == pytest.approx(float(bound), rel=1e-6)
    assert float(result.loss.detach()) == pytest.approx(-float(bound), rel=1e-6)


# --- numerical stability -------------------------------------------------------------------------


@pytest.mark.parametrize("magnitude", [50.0, 1e4, 1e30])
def test_js_is_finite_for_huge_logits(magnitude):
    critic = FunctionCritic(lambda x: magnitude * torch.sign(x))  # +/- huge, confidently right or wrong
    real, fake = torch.randn(64, 1, 1, 1), torch.randn(64, 1, 1, 1)
    for non_saturating in (True, False):
        divergence = make("js", non_saturating=non_saturating)
        result = divergence.critic_loss(critic, real, fake)
        assert torch.isfinite(result.loss) and torch.isfinite(result.estimate)
        result.loss.backward()
        assert torch.isfinite(critic.offset.grad)
        fake_input = fake.clone().requires_grad_(True)
        loss = divergence.separator_loss(critic, fake_input)
        (grad,) = torch.autograd.grad(loss, fake_input)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_kl_conjugate_continues_linearly_past_the_maximum_exponent():
    divergence = make("kl", max_exponent=30.0)
    scores = torch.tensor([0.0, 29.0, 30.0, 31.0, 1e4, 1e20], requires_grad=True)
    values = divergence.conjugate(scores)
    assert torch.isfinite(values).all()
    assert values[:3].tolist() == pytest.approx(torch.exp(scores[:3].detach() - 1).tolist(), rel=1e-6)
    assert float(values[3].detach()) == pytest.approx(math.exp(29) * 2, rel=1e-5)  # tangent line at 30
    (grad,) = torch.autograd.grad(values[:5].sum(), scores)
    assert torch.isfinite(grad).all() and (grad[:5] > 0).all()
    assert float(grad[3]) == pytest.approx(math.exp(29), rel=1e-5)  # the slope at 30, kept beyond
    huge = FunctionCritic(lambda x: 1e4 + 0 * x)
    result = divergence.critic_loss(huge, torch.randn(8, 1, 1, 1), torch.randn(8, 1, 1, 1))
    assert torch.isfinite(result.loss)


def test_half_precision_scores_are_promoted():
    critic = FunctionCritic(lambda x: (20 * x).half())  # exp(20) overflows float16
    real, fake = torch.randn(8, 1, 1, 1).abs(), torch.randn(8, 1, 1, 1).abs()
    result = make("kl").critic_loss(critic, real, fake)
    assert result.loss.dtype == torch.float32 and torch.isfinite(result.loss)


# --- directions ----------------------------------------------------------------------------------

CONFIGS = [
    ("wasserstein-gp", {}),
    ("wasserstein-gp", {"one_sided": False}),
    ("js", {}),
    ("js", {"non_saturating": False}),
    ("kl", {}),
    ("kl", {"non_saturating": True}),
]


@pytest.mark.parametrize(("name", "config"), CONFIGS)
@pytest.mark.parametrize("real_mean", [2.0, -2.0])
def test_separator_gradient_moves_fake_towards_real(name, config, real_mean):
    """Two features (in one dimension the two-sided penalty can trap a critic with the wrong sign:
    turning its slope around means passing through slope 0, where the penalty is lambda)."""
    divergence = make(name, **config)
    shape = (1, 2, 1)
    real = lambda n: real_mean + torch.randn(n, *shape)  # noqa: E731
    fake_samples = lambda n: torch.randn(n, *shape)  # noqa: E731
    critic = train_critic(divergence, real, fake_samples, steps=150, shape=shape)
    fake = fake_samples(512).requires_grad_(True)
    (grad,) = torch.autograd.grad(divergence.separator_loss(critic, fake), fake)
    descent = -grad.flatten(1).sum(dim=1) * math.copysign(1.0, real_mean)  # > 0: towards the real mean
    assert float(descent.mean()) > 0
    assert float((descent > 0).float().mean()) > 0.9


@pytest.mark.parametrize("name", ["wasserstein-gp", "js", "kl"])
def test_alternating_training_moves_a_fake_distribution_onto_the_real_one(name):
    """A one-parameter 'separator' (fake = mu + N(0, 1)) trained against the critic finds mu = 2."""
    divergence = make(name)
    torch.manual_seed(0)
    critic = MLPCritic(input_shape=SHAPE, hidden=64)
    critic_optimiser = torch.optim.Adam(critic.parameters(), lr=2e-3, betas=(0.5, 0.9))
    mu = torch.zeros((), requires_grad=True)
    optimiser = torch.optim.Adam([mu], lr=0.05, betas=(0.5, 0.9))
    for _ in range(120):
        for _ in range(2):
            fake = (mu + torch.randn(256, *SHAPE)).detach()
            result = divergence.critic_loss(critic, 2 + torch.randn(256, *SHAPE), fake)
            critic_optimiser.zero_grad()
            result.loss.backward()
            critic_optimiser.step()
        loss = divergence.separator_loss(critic, mu + torch.randn(256, *SHAPE))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert float(mu.detach()) == pytest.approx(2.0, abs=0.35)


# --- errors and isolation --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["wasserstein-gp", "js", "kl"])
def test_critic_must_return_one_score_per_example(name):
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1))  # [B, 1]: a common slip
    real = torch.randn(5, 1, 2, 2)
    with pytest.raises(ShapeError, match=r"one score per example, shape \[5\], for the real batch \[5, 1, 2, 2\]; got \[5, 1\]"):
        make(name).critic_loss(critic, real, real)
    with pytest.raises(ShapeError, match=r"for the fake batch"):
        make(name).separator_loss(critic, real)


def test_wasserstein_needs_matching_batches():
    critic = MLPCritic(input_shape=(1, 2, 2))
    with pytest.raises(ShapeError, match=r"same shape, got real \[4, 1, 2, 2\] and fake \[3, 1, 2, 2\]"):
        make("wasserstein-gp").critic_loss(critic, torch.randn(4, 1, 2, 2), torch.randn(3, 1, 2, 2))


@pytest.mark.parametrize(("name", "config"), CONFIGS)
def test_critic_loss_does_not_reach_the_separator(name, config):
    critic = MLPCritic(input_shape=(1, 2, 2))
    source = torch.randn(4, 1, 2, 2, requires_grad=True)  # stands for the separator's parameters
    fake = source * 2
    make(name, **config).critic_loss(critic, torch.randn(4, 1, 2, 2), fake).loss.backward()
    assert source.grad is None
    assert all(p.grad is not None for p in critic.parameters())
