"""Data-parallel training (issue 18): 2 processes (gloo, CPU) x half batch = 1 process x the whole
batch on the same excerpts; a 2-process run resumes bit for bit and refuses another process count;
``torchrun -m sepkit run`` writes one run folder that ``sepkit separate`` and ``sepkit report`` read."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sepkit.errors import SepkitError
from test_training import load, make_trainer, tiny_data, tiny_recipe, weights  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parent.parent
#: The configurations compared: a supervised update, an adversarial one (R1: the penalty's double
#: backward, without the random interpolates that split differently over processes) and one with
#: every stabiliser that reduces over the batch (balanced weight, clipping) and a weight average.
CASES = {
    "supervised": ("baseline", {}),
    "adversarial": ("both-critics", {}),
    "stabilised": ("both-critics", {"adversarial_weighting": '"balanced"', "alpha": 0.3, "max_grad_norm": 0.05,
                                    "critic_max_grad_norm": 0.5, "ema": 0.9}),
}
UPDATES = 2


def _recipe_text(root: Path, case: str) -> str:
    _, training = CASES[case]
    return tiny_recipe(root, batch_size=4, **training) + '[divergence]\ntype = "wasserstein-gp"\npenalty = "r1"\n'


class GlobalShare:
    """Every process draws the same global batch (one seed everywhere) and keeps its share of it, so
    that 1 x B and 2 x B/2 train on exactly the same excerpts."""

    def __init__(self, inner, rank: int, world: int) -> None:
        self.inner, self.rank, self.world = inner, rank, world
        inner.generator.manual_seed(1234)

    def sample(self, batch_size: int) -> torch.Tensor:
        full = self.inner.sample(batch_size * self.world)
        return full[self.rank * batch_size : (self.rank + 1) * batch_size]


def _update(root: Path, case: str, out: Path, rank: int, world: int) -> dict[str, torch.Tensor]:
    from sepkit.recipe import load_recipe
    from sepkit.training.distributed import current
    from sepkit.training.trainer import Trainer

    path = out / f"{case}.toml"
    if rank == 0:
        path.write_text(_recipe_text(root, case))
    if world > 1:
        torch.distributed.barrier()
    variant, _ = CASES[case]
    recipe = load_recipe(path).variants[variant]
    trainer = Trainer(recipe, out / f"{case}-{world}", variant=variant, device="cpu", progress=False, distributed=current())
    data = trainer.data
    data.paired = GlobalShare(data.paired, rank, world)
    if data.mixtures is not None:
        data.mixtures = GlobalShare(data.mixtures, rank, world)
        data.solo = {k: GlobalShare(v, rank, world) for k, v in data.solo.items()}
    for _ in range(UPDATES):
        assert trainer.train_update() is not None
    tensors = {f"weight.{k}": v.detach().clone() for k, v in weights(trainer).items()}
    optimisers = {"separator": trainer.optimiser, **{f"critic.{k}": o for k, o in trainer.critic_optimisers.items()}}
    for name, optimiser in optimisers.items():
        for index, entry in optimiser.state_dict()["state"].items():
            tensors[f"moment.{name}.{index}"] = entry["exp_avg"].clone()
    if trainer.average is not None:
        tensors.update({f"average.{k}": v.clone() for k, v in trainer.average.state_dict().items()})
    return tensors


def _resume(root: Path, out: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two processes: a whole run, and one stopped after 4 updates then resumed."""
    from sepkit.recipe import load_recipe
    from sepkit.training.distributed import current
    from sepkit.training.trainer import Trainer

    path = out / "resume.toml"
    if torch.distributed.get_rank() == 0:
        path.write_text(tiny_recipe(root, batch_size=4, max_epochs=3, critic_iterations=1))
    torch.distributed.barrier()
    recipe = load_recipe(path).variants["both-critics"]

    def trainer(folder: str):
        return Trainer(recipe, out / folder, variant="both-critics", device="cpu", progress=False, distributed=current())

    full = trainer("full")
    full.fit()
    trainer("cut").fit(stop_after_updates=4)
    resumed = trainer("cut")
    assert resumed.fit(resume=True).updates == 9
    return weights(full), weights(resumed)


def _agreement(root: Path, out: Path) -> dict[str, object]:
    """What every process must do together although only one of them saw the reason: a NaN in
    rank 1's loss, a Ctrl-C in rank 1, rank 0's validation deciding to stop early."""
    import sepkit.training.trainer as module
    from sepkit.recipe import load_recipe
    from sepkit.training.distributed import current
    from sepkit.training.trainer import Trainer

    rank = torch.distributed.get_rank()
    path = out / "agree.toml"
    if rank == 0:
        path.write_text(tiny_recipe(root, batch_size=4, max_epochs=5, early_stopping="true", patience=0))
    torch.distributed.barrier()
    recipe = load_recipe(path).variants["baseline"]

    def trainer(folder: str):
        return Trainer(recipe, out / folder, variant="baseline", device="cpu", progress=False, distributed=current())

    seen: dict[str, object] = {}
    nan = trainer("nan")
    real = module.supervised_loss
    calls = {"n": 0}

    def nan_on_rank_1(estimates, targets):
        calls["n"] += 1
        value = real(estimates, targets)
        return value * float("nan") if rank == 1 and calls["n"] == 2 else value

    module.supervised_loss = nan_on_rank_1
    try:
        seen["nan"] = [nan.train_update() is None for _ in range(3)]
    finally:
        module.supervised_loss = real

    stop = trainer("ctrl-c")
    original = stop._separator_step

    def interrupted_on_rank_1(log, ok):
        if rank == 1 and stop.updates == 1:
            stop._interrupted = True  # what the SIGINT handler sets, here during the second update
        return original(log, ok)

    stop._separator_step = interrupted_on_rank_1
    result = stop.fit()
    seen["ctrl-c"] = [result.stopped_by, result.updates]

    early = trainer("early")
    losses = iter([1.0, 2.0, 3.0, 4.0, 5.0])
    plain = early.validate
    early.validate = lambda: {**plain(), "loss": next(losses)}  # worse every epoch: stop after epoch 2
    result = early.fit()
    seen["early"] = [result.stopped_by, result.epochs, result.updates]
    return seen


def _worker(rank: int, world: int, root: str, out: str, port: int) -> None:
    from safetensors.torch import save_file

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = {}
        for case in CASES:
            results.update({f"{case}.{k}": v for k, v in _update(Path(root), case, Path(out), rank, world).items()})
        full, resumed = _resume(Path(root), Path(out))
        (Path(out) / f"agree{rank}.json").write_text(json.dumps(_agreement(Path(root), Path(out))))
        results.update({f"resume.full.{k}": v for k, v in full.items()})
        results.update({f"resume.resumed.{k}": v for k, v in resumed.items()})
        save_file({k: v.contiguous() for k, v in results.items()}, str(Path(out) / f"rank{rank}.safetensors"))
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tiny_data, tmp_path_factory):
    """Runs every 2-process check once (one spawn) and returns the ranks' results."""
    from safetensors.torch import load_file

    out = tmp_path_factory.mktemp("two-processes")
    torch.multiprocessing.spawn(_worker, args=(2, str(tiny_data), str(out), _free_port()), nprocs=2, join=True)
    return out, [load_file(str(out / f"rank{r}.safetensors")) for r in range(2)]


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_with_half_batches_update_as_one_with_the_whole_batch(case, two_processes, tiny_data, tmp_path):
    out, ranks = two_processes
    single = _update(tiny_data, case, tmp_path, 0, 1)
    prefix = f"{case}."
    keys = {k[len(prefix):] for k in ranks[0] if k.startswith(prefix)}
    assert keys == set(single) and any(k.startswith("moment.critic") for k in keys) == (case != "supervised")
    # Adam divides each step by the gradient's own size, so where a gradient element is rounding
    # noise around 0 its step can come out up to 2 lr (5e-5) different: weights may differ there
    # (a few elements), by at most 2 lr per step; the first moments (the averaged gradients) and
    # every other weight agree to float tolerance.
    bound = 2 * 5e-5 * UPDATES * 2  # critics: 2 steps per update
    mismatched = total = 0
    for key in sorted(keys):
        mine, theirs = ranks[0][prefix + key], single[key]
        assert torch.equal(mine, ranks[1][prefix + key]), f"ranks differ in {key}"
        if not key.startswith("weight."):
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6, msg=lambda m: f"{key}: {m}")
            continue
        difference = (mine - theirs).abs()
        assert float(difference.max()) <= bound, key
        mismatched += int((difference > 1e-4 * theirs.abs() + 1e-6).sum())
        total += difference.numel()
    assert mismatched <= max(2, total // 1000), f"{mismatched} of {total} weights differ"


def test_a_two_process_run_resumes_bit_identically_and_refuses_another_process_count(two_processes, tiny_data, tmp_path):
    out, ranks = two_processes
    full = {k: v for k, v in ranks[0].items() if k.startswith("resume.full.")}
    assert full
    for key, value in full.items():
        assert torch.equal(value, ranks[0][key.replace(".full.", ".resumed.")]), key
    from sepkit.training.state import load_state

    state = load_state(out / "full" / "train-state" / "state.safetensors")
    seeds = [r["seeds"] for r in state["distributed"]["ranks"]]
    assert state["distributed"]["world_size"] == 2 and seeds[0]["paired"] == 7001 and seeds[1]["paired"] != 7001
    assert seeds[0]["torch"] == 7 and len({s["mixtures"] for s in seeds}) == 2
    one = make_trainer(load(tmp_path, tiny_data, batch_size=4, max_epochs=3, critic_iterations=1), out / "full")
    with pytest.raises(SepkitError, match=r"written by 2 process\(es\) and this run has 1"):
        one.fit(resume=True)


def test_every_process_stops_together_whichever_saw_the_reason(two_processes):
    out, _ = two_processes
    seen = [json.loads((out / f"agree{rank}.json").read_text()) for rank in range(2)]
    assert seen[0] == seen[1]
    assert seen[0]["nan"] == [False, True, False]  # rank 1's NaN: both skip that update
    assert seen[0]["ctrl-c"] == ["interrupted", 2]  # rank 1's Ctrl-C: both stop after that update
    assert seen[0]["early"] == ["early stopping", 2, 6]  # rank 0's validation: both stop after epoch 2
    assert (out / "ctrl-c" / "train-state" / "state.safetensors").exists()


def test_the_global_batch_must_divide_among_the_processes(tmp_path, tiny_data):
    from sepkit.training.distributed import Distributed
    from sepkit.training.trainer import Trainer

    with pytest.raises(SepkitError, match="batch_size = 4 is the global batch and must divide evenly among the 3"):
        Trainer(load(tmp_path, tiny_data), tmp_path / "x", device="cpu", progress=False,
                distributed=Distributed(rank=0, world_size=3))


def test_torchrun_writes_one_run_folder_that_separate_and_report_read(tmp_path, tiny_data):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(tiny_recipe(tiny_data, batch_size=4, critic_iterations=1))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEPKIT_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "sepkit", "run", str(recipe), "-o", str(tmp_path / "runs"), "--variant", "both-critics"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("variants") == 1  # one process reports
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["both-critics", "experiment.json"]
    folder = tmp_path / "runs" / "both-critics"
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 6 and len(set(lines)) == 6  # one writer: each update logged once
    assert (folder / "evaluation").is_dir() and (folder / "training-curves.png").exists()
    sepkit = [sys.executable, "-m", "sepkit"]
    mixture = tiny_data / "test" / "t0" / "mixture.wav"
    separated = subprocess.run([*sepkit, "separate", str(mixture), "--model", str(folder / "model.safetensors"),
                                "-o", str(tmp_path / "separated")], capture_output=True, text=True, env=env, timeout=300)
    assert separated.returncode == 0, separated.stderr
    assert sorted(p.name for p in (tmp_path / "separated").rglob("*.wav")) == ["accompaniment.wav", "vocals.wav"]
    report = subprocess.run([*sepkit, "report", str(tmp_path / "runs")], capture_output=True, text=True, env=env, timeout=300)
    assert report.returncode == 0, report.stderr
    assert "both-critics" in report.stdout
