"""The trainer beyond two mono sources: N = 3 and 4, critics on any subset, stereo, supervised only
and unsupervised only, with the loss terms recomputed by hand from the very batches of an update."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sepkit.recipe import load_recipe
from sepkit.training.losses import additive_penalty, supervised_loss
from sepkit_plugins.synthetic.generator import generate_item

RATE = 4000
FOUR = ("drums", "bass", "other", "vocals")
#: Three sources that add up to the mixture: the synthetic songs' vocals and chords as one "melody".
THREE = ("drums", "bass", "melody")
STEMS = (*FOUR, "melody", "mixture")


def _stems(split: str, index: int, channels: int) -> dict[str, np.ndarray]:
    item = generate_item(seed=5, domain="a", split=split, index=index, seconds=1.5, sample_rate=RATE, channels=channels)
    out = {stem: getattr(item, stem).astype(np.float64) for stem in (*FOUR, "mixture")}
    out["melody"] = out["other"] + out["vocals"]  # exact: both on the 16-bit grid
    return out


def _write(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples.T, RATE, subtype="PCM_16")


def _make_data(root: Path, channels: int) -> Path:
    """Paired folders (every stem) and unpaired pools (mixtures, each source), all independent songs."""
    for split, folder, count in (("train", "train", 3), ("validation", "valid", 2), ("test", "test", 1)):
        for i in range(count):
            for stem, samples in _stems(split, i, channels).items():
                _write(root / folder / f"t{i}" / f"{stem}.wav", samples)
    for pool, split in (("mixture", "mixtures"), *((s, s) for s in ("drums", "bass", "other", "vocals"))):
        for i in range(2):
            _write(root / f"pool-{pool}" / f"{i}.wav", _stems(split, i, channels)[pool])
    for i in range(2):  # melody recordings: the chords and the voice of one song
        _write(root / "pool-melody" / f"{i}.wav", _stems("other", 10 + i, channels)["melody"])
    return root


@pytest.fixture(scope="module")
def mono(tmp_path_factory) -> Path:
    return _make_data(tmp_path_factory.mktemp("n-sources-mono"), 1)


@pytest.fixture(scope="module")
def stereo(tmp_path_factory) -> Path:
    return _make_data(tmp_path_factory.mktemp("n-sources-stereo"), 2)


CRITIC = 'type = "dcgan"\ncrop = [64, 16]\nbase_filters = 4\nmax_filters = 8\ndense_units = 8\n'


def recipe_text(root: Path, sources, critics=(), *, channels=1, paired=True, **training) -> str:
    settings = {"batch_size": 3, "updates_per_epoch": 2, "max_epochs": 1, "critic_iterations": 1,
                "early_stopping": "false", "log_every": 1, "device": '"cpu"', "seed": 3, "alpha": 0.05,
                "beta": 0.01, "learning_rate": 1e-3, "critic_learning_rate": 1e-3}
    settings.update(training)
    lines = [
        'name = "n-sources"', f"sources = {json.dumps(list(sources))}", f'[paths]\nroot = "{root}"',
        f"[audio]\nsample_rate = {RATE}\nchannels = {channels}",
        '[representation]\ntype = "magnitude-stft"\nn_fft = 128\nhop_length = 64',
        '[separator]\ntype = "unet"\ndepth = 2\nbase_filters = 4\ninput_frames = 46',
        "[training]\n" + "\n".join(f"{k} = {v}" for k, v in settings.items()),
        "[evaluation]\nbatch_size = 4",
        '[[data.validation]]\ntype = "stems"\nroot = "${root}/valid"',
        '[[data.test]]\ntype = "stems"\nroot = "${root}/test"',
        '[[data.mixtures]]\ntype = "files"\nroot = "${root}/pool-mixture"',
    ]
    if paired:
        lines.append('[[data.paired]]\ntype = "stems"\nroot = "${root}/train"')
    for source in sources:
        lines.append(f'[[data.solo.{source}]]\ntype = "files"\nroot = "${{root}}/pool-{source}"')
    for source in critics:
        lines.append(f"[critics.{source}]\n{CRITIC}")
    return "\n".join(lines) + "\n"


def make_trainer(tmp_path: Path, root: Path, sources, critics=(), **options):
    from sepkit.training.trainer import Trainer

    path = tmp_path / "recipe.toml"
    path.write_text(recipe_text(root, sources, critics, **options))
    recipe = load_recipe(path).variants["default"]
    return Trainer(recipe, tmp_path / "run", device="cpu", progress=False)


class Recorder:
    """Every batch the samplers hand out and every separator forward pass of one update, in order."""

    def __init__(self, trainer) -> None:
        self.batches: dict[str, list[torch.Tensor]] = {}
        self.forwards: list[tuple[torch.Tensor, torch.Tensor]] = []
        for role, sampler in trainer.data.samplers().items():
            sampler.sample = self._sampling(role, sampler.sample)
        network = trainer._forward

        def forward(x):
            y = network(x)
            self.forwards.append((x.detach().clone(), y.detach().clone()))
            return y

        trainer._forward = forward

    def _sampling(self, role, sample):
        def wrapped(batch_size):
            batch = sample(batch_size)
            self.batches.setdefault(role, []).append(batch.detach().clone())
            return batch

        return wrapped


def crop(trainer, features: torch.Tensor) -> np.ndarray:
    w = trainer.window
    return features[..., w.context_before : w.context_before + w.output_frames].double().numpy()


def hand_supervised(estimates: np.ndarray, targets: np.ndarray) -> float:
    """sum over sources of the mean over batch, channels, bins and frames of the squared error."""
    total = 0.0
    for n in range(estimates.shape[1]):
        total += float(np.mean((estimates[:, n] - targets[:, n]) ** 2))
    return total


def hand_additive(mixture: np.ndarray, estimates: np.ndarray) -> float:
    """mean over batch, channels, bins and frames of (|mixture| - sum of |estimate_n|)^2, linear."""
    linear_sum = np.zeros_like(mixture)
    for n in range(estimates.shape[1]):
        linear_sum += np.expm1(estimates[:, n])
    return float(np.mean((np.expm1(mixture) - linear_sum) ** 2))


SUBSETS = [
    (THREE, ()), (THREE, ("melody",)), (THREE, THREE),
    (FOUR, ()), (FOUR, ("vocals", "drums")), (FOUR, FOUR),
]


@pytest.mark.parametrize("sources, critics", SUBSETS, ids=lambda v: "+".join(v) or "none")
def test_an_update_with_critics_on_any_subset_matches_the_hand_computed_loss(tmp_path, mono, sources, critics):
    trainer = make_trainer(tmp_path, mono, sources, critics)
    assert set(trainer.critics) == set(critics) and set(trainer.data.solo) == set(critics)
    assert (trainer.data.mixtures is None) == (not critics)
    separator_before = {k: v.clone() for k, v in trainer.separator.state_dict().items()}
    critics_before = {s: {k: v.clone() for k, v in c.state_dict().items()} for s, c in trainer.critics.items()}
    record = Recorder(trainer)
    log = trainer.train_update()
    assert log is not None

    # every network moved: the separator, and each critic (only those of the subset exist)
    assert any(not torch.equal(v, separator_before[k]) for k, v in trainer.separator.state_dict().items())
    for source, before in critics_before.items():
        assert any(not torch.equal(v, before[k]) for k, v in trainer.critics[source].state_dict().items()), source
    # one divergence, critic loss and adversarial term per critic, none for the other sources
    for source in sources:
        for key in (f"divergence.{source}", f"critic_loss.{source}", f"loss.adversarial.{source}", f"grad_norm.critic.{source}"):
            assert (key in log) == (source in critics), key
    assert ("loss.adversarial" in log) == bool(critics)

    # the separator step's terms, recomputed from the batches it drew
    n, b = len(sources), trainer.cfg.batch_size
    paired = record.batches["paired"][-1]  # [B, 1 + N, C, F, T]: mixture, then the sources in order
    paired_estimates = record.forwards[-2 if critics else -1][1].double().numpy()
    assert paired.shape[:3] == (b, 1 + n, 1) and paired_estimates.shape[:3] == (b, n, 1)
    supervised = hand_supervised(paired_estimates, crop(trainer, paired[:, 1:]))
    assert float(log["loss.supervised"]) == pytest.approx(supervised, rel=1e-5)
    expected_total = supervised
    if critics:
        mixtures, estimates = record.forwards[-1]
        assert torch.equal(mixtures, record.batches["mixtures"][-1][:, 0])
        additive = hand_additive(crop(trainer, mixtures), estimates.double().numpy())
        assert float(log["loss.additive"]) == pytest.approx(additive, rel=1e-5)
        adversarial = 0.0
        with torch.no_grad():
            for source in critics:  # Wasserstein: -mean D(estimate), with the critic as it stepped last
                term = -float(trainer.critics[source](estimates[:, sources.index(source)]).double().mean())
                assert float(log[f"loss.adversarial.{source}"]) == pytest.approx(term, rel=1e-4, abs=1e-7), source
                adversarial += term
        assert float(log["loss.adversarial"]) == pytest.approx(adversarial, rel=1e-4, abs=1e-7)
        weight = float(log.get("adversarial_weight", trainer.cfg.alpha))
        expected_total += weight * adversarial + trainer.cfg.beta * additive
    assert float(log["loss.total"]) == pytest.approx(expected_total, rel=1e-5)


def test_unsupervised_only_four_sources_critics_on_two(tmp_path, mono):
    """No paired data: the separator learns from two critics and the additive penalty alone."""
    trainer = make_trainer(tmp_path, mono, FOUR, ("vocals", "drums"), paired=False)
    assert trainer.data.paired is None and set(trainer.data.solo) == {"vocals", "drums"}
    record = Recorder(trainer)
    log = trainer.train_update()
    assert log is not None and "loss.supervised" not in log
    assert "paired" not in record.batches
    mixtures, estimates = record.forwards[-1]
    additive = hand_additive(crop(trainer, mixtures), estimates.double().numpy())
    assert float(log["loss.additive"]) == pytest.approx(additive, rel=1e-5)
    weight = float(log.get("adversarial_weight", trainer.cfg.alpha))
    expected = weight * float(log["loss.adversarial"]) + trainer.cfg.beta * additive
    assert float(log["loss.total"]) == pytest.approx(expected, rel=1e-5)
    result = trainer.fit()
    assert result.updates == 2 and (tmp_path / "run" / "model.safetensors").exists()
    validation = [json.loads(line) for line in (tmp_path / "run" / "validation.jsonl").read_text().splitlines()]
    assert set(validation[-1]["sdr"]) == set(FOUR)


def test_supervised_only_gives_every_source_a_gradient(tmp_path, mono):
    trainer = make_trainer(tmp_path, mono, FOUR)
    assert trainer.critics == {} and trainer.data.mixtures is None and trainer.data.solo == {}
    log = trainer.train_update()
    assert float(log["loss.total"]) == pytest.approx(float(log["loss.supervised"]))
    # The U-Net's last layer has one output channel per (source, channel): each got a gradient.
    trainer.separator.zero_grad()
    batch = trainer.data.paired.sample(trainer.cfg.batch_size)
    supervised_loss(trainer.separator(batch[:, 0]), trainer._crop(batch[:, 1:])).backward()
    grads = [p.grad for name, p in trainer.separator.named_parameters() if name.startswith("output") and p.grad is not None]
    weight = next(g for g in grads if g.dim() == 4)  # [N * C, in, 1, 1]
    assert weight.shape[0] == len(FOUR)
    assert all(float(weight[j].abs().sum()) > 0 for j in range(len(FOUR)))


def test_stereo_four_sources_with_two_critics_train_and_validate(tmp_path, stereo):
    trainer = make_trainer(tmp_path, stereo, FOUR, ("vocals", "drums"), channels=2)
    assert trainer.separator.num_channels == 2
    for critic in trainer.critics.values():
        assert critic.input_shape[0] == 2  # the critic sees both channels
    record = Recorder(trainer)
    log = trainer.train_update()
    assert log is not None
    paired = record.batches["paired"][-1]
    assert paired.shape[:3] == (3, 5, 2)
    mixtures, estimates = record.forwards[-1]
    assert estimates.shape[:3] == (3, 4, 2)
    assert float(log["loss.additive"]) == pytest.approx(hand_additive(crop(trainer, mixtures), estimates.double().numpy()), rel=1e-5)
    # a real solo excerpt of a critic is stereo too, with differing channels (the generator pans)
    solo = record.batches["solo.vocals"][-1]
    assert solo.shape[2] == 2 and not torch.equal(solo[:, 0, 0], solo[:, 0, 1])
    result = trainer.fit()
    assert result.epochs == 1 and (tmp_path / "run" / "model.safetensors").exists()
    validation = [json.loads(line) for line in (tmp_path / "run" / "validation.jsonl").read_text().splitlines()]
    assert len(validation) == 1 and list(validation[-1]["sdr"]) == list(FOUR)
    assert all(np.isfinite(v) for v in validation[-1]["sdr"].values())
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all({"divergence.vocals", "divergence.drums"} <= set(m) and "divergence.bass" not in m for m in metrics if "event" not in m)


@pytest.mark.parametrize("n", [3, 4])
def test_supervised_loss_by_hand(n):
    generator = torch.Generator().manual_seed(n)
    estimates = torch.rand(2, n, 2, 5, 7, generator=generator, dtype=torch.float64)
    targets = torch.rand(2, n, 2, 5, 7, generator=generator, dtype=torch.float64)
    assert float(supervised_loss(estimates, targets)) == pytest.approx(hand_supervised(estimates.numpy(), targets.numpy()), rel=1e-12)
    # each source counts once, whatever its share of the error: one wrong source of N costs the same
    wrong = targets.clone()
    wrong[:, n - 1] += 0.5
    assert float(supervised_loss(wrong, targets)) == pytest.approx(0.25, rel=1e-12)


@pytest.mark.parametrize("n", [3, 4])
def test_additive_penalty_by_hand(n):
    from sepkit.build import build_representation

    recipe = load_recipe_text(f'sources = {json.dumps([f"s{i}" for i in range(n)])}')
    representation = build_representation(recipe)
    generator = torch.Generator().manual_seed(10 + n)
    mixture = torch.rand(2, 1, 5, 7, generator=generator, dtype=torch.float64)
    estimates = torch.rand(2, n, 1, 5, 7, generator=generator, dtype=torch.float64)
    penalty = float(additive_penalty(representation, mixture, estimates))
    assert penalty == pytest.approx(hand_additive(mixture.numpy(), estimates.numpy()), rel=1e-12)
    # linear magnitudes 1, 2, ..., n against a mixture of n(n+1)/2 + 1: the penalty is exactly 1
    linear = torch.arange(1, n + 1, dtype=torch.float64).view(1, n, 1, 1, 1).expand(2, n, 1, 5, 7)
    total = torch.full((2, 1, 5, 7), n * (n + 1) / 2 + 1, dtype=torch.float64)
    assert float(additive_penalty(representation, torch.log1p(total), torch.log1p(linear))) == pytest.approx(1.0, rel=1e-12)
    # estimates whose magnitudes add up to the mixture's cost nothing
    assert float(additive_penalty(representation, torch.log1p(total - 1), torch.log1p(linear))) == pytest.approx(0.0, abs=1e-20)


def load_recipe_text(head: str):
    import tomllib

    from sepkit.recipe.load import recipe_from_dict

    text = f'name = "hand"\n{head}\n[representation]\ntype = "magnitude-stft"\nn_fft = 16\nhop_length = 8\n' \
        '[separator]\ntype = "unet"\ndepth = 1\nbase_filters = 2\ninput_frames = 10\n'
    return recipe_from_dict(tomllib.loads(text), check_data=False).base


def test_four_stems_score_as_museval_scores_musdb():
    """BSS Eval v4 of the four MUSDB18 stems: scored together (museval.eval_mus_track's grouping), and
    the fast path gives museval's own numbers."""
    from sepkit.evaluation.protocols import ScoringInput, get_protocol, museval_groups

    assert museval_groups(list(FOUR)) == [(list(FOUR), set(FOUR))]
    item = generate_item(seed=1, domain="b", split="test", index=0, seconds=1.0, sample_rate=8000)
    references = np.stack([getattr(item, s) for s in FOUR]).astype(np.float64)[:, None]
    leak = np.full((4, 4), 0.1) + np.diag([0.7, 0.5, 0.6, 0.8])  # each estimate: its source, and some of the others
    estimates = np.einsum("ij,jcl->icl", leak, references) + 0.003 * np.random.default_rng(0).standard_normal(references.shape)
    item_input = ScoringInput("song", "b", list(FOUR), references, estimates, item.mixture[None].astype(np.float64), 8000)
    protocol = get_protocol("bsseval-v4")
    fast, slow = protocol.score(item_input), protocol.score(item_input, backend="museval")
    for source in FOUR:
        for metric in ("SDR", "ISR", "SIR", "SAR", "NSDR"):
            assert np.isfinite(slow.metrics[source][metric])
            assert fast.metrics[source][metric] == pytest.approx(slow.metrics[source][metric], abs=0.01), (source, metric)
