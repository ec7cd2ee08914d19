"""Sharded separation and evaluation: ``--jobs N`` worker processes and one shard per torchrun
process give exactly what one process gives (with the same threads per process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sepkit.errors import SepkitError
from sepkit.plugins import use_plugins
from sepkit.sharding import Shard, WorkerPool, shard_from_environment, worker_threads
from tests.conftest import REPO, save_demo_sized_model

RATE = 8192
FILES = ("song1", "song2", "song3")


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory) -> Path:
    with use_plugins(entry_points=True):
        return save_demo_sized_model(tmp_path_factory.mktemp("demo") / "demo.safetensors")


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    """Three short test tracks as stem folders (mixture, accompaniment, vocals), and their mixtures
    as ``../inputs/<name>.wav``."""
    root = tmp_path_factory.mktemp("songs") / "test"
    root.mkdir()
    (root.parent / "inputs").mkdir()
    t = np.arange(RATE) / RATE
    for i, name in enumerate(FILES):
        rng = np.random.default_rng(i)
        vocals = 0.2 * np.sin(2 * np.pi * (330 + 40 * i) * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)))
        accompaniment = 0.1 * np.sin(2 * np.pi * 110 * t) + 0.03 * rng.standard_normal(len(t))
        (root / name).mkdir()
        for stem, signal in (("mixture", vocals + accompaniment), ("accompaniment", accompaniment), ("vocals", vocals)):
            sf.write(str(root / name / f"{stem}.wav"), signal.astype(np.float32), RATE, subtype="FLOAT")
        sf.write(str(root.parent / "inputs" / f"{name}.wav"), (vocals + accompaniment).astype(np.float32), RATE, subtype="FLOAT")
    return root


@pytest.fixture
def one_thread():
    """This process computes with one thread, as each worker of ``--jobs 2`` on a 2-thread budget
    does, so that the float sums round alike."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mixtures(songs: Path) -> list[Path]:
    return [songs.parent / "inputs" / f"{name}.wav" for name in FILES]


def stem_bytes(folder: Path) -> dict[str, bytes]:
    """The samples of every stem file, byte for byte (float WAV files also hold a PEAK chunk with the
    time they were written, so the files themselves differ from run to run)."""
    stems = {}
    for path in sorted(folder.rglob("*.wav")):
        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except sf.LibsndfileError:
            stems[str(path.relative_to(folder))] = path.read_bytes()
        else:
            stems[str(path.relative_to(folder))] = data.tobytes() + str((rate, data.shape)).encode()
    return stems


def track_results(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def separate_args(model: Path, songs: Path, out: Path) -> list[str]:
    # float stems: every bit of the estimates is compared
    return ["separate", *map(str, mixtures(songs)), "-m", str(model), "-o", str(out), "--bit-depth", "32f",
            "--precision", "fp32", "--json"]


def test_separate_with_two_workers_writes_the_bytes_of_one_process(run_cli, demo_model, songs, tmp_path, one_thread):
    with use_plugins(entry_points=True):
        one = run_cli(*separate_args(demo_model, songs, tmp_path / "one"), "--jobs", "1")
        two = run_cli(*separate_args(demo_model, songs, tmp_path / "two"), "--jobs", "2")
    assert one.exit_code == 0 and two.exit_code == 0, (one.stderr, two.stderr)
    assert "in 2 worker processes on cpu" in two.stderr
    written = stem_bytes(tmp_path / "one")
    assert len(written) == 6 and written == stem_bytes(tmp_path / "two")
    assert [f["file"] for f in json.loads(two.stdout)["files"]] == [str(p) for p in mixtures(songs)]  # input order


def test_evaluate_with_two_workers_scores_like_one_process(run_cli, demo_model, songs, tmp_path, one_thread):
    with use_plugins(entry_points=True):
        one = run_cli("evaluate", "-m", demo_model, "-d", f"stems:{songs}", "-o", tmp_path / "one", "--json")
        two = run_cli("evaluate", "-m", demo_model, "-d", f"stems:{songs}", "-o", tmp_path / "two", "--json", "--jobs", "2")
    assert one.exit_code == 0 and two.exit_code == 0, (one.stderr, two.stderr)
    results = track_results(tmp_path / "one")
    assert sorted(results) == ["song1.json", "song2.json", "song3.json", "summary.json"]
    assert results == track_results(tmp_path / "two")
    assert json.loads(one.stdout) == json.loads(two.stdout)
    assert results["song2.json"]["metrics"]["vocals"]["SDR"] is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(args: list[str], world: int = 2) -> list[subprocess.CompletedProcess]:
    """``python -m sepkit ARGS`` in ``world`` processes with the environment torchrun gives them."""
    port = _free_port()
    processes = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
        processes.append(subprocess.Popen([sys.executable, "-m", "sepkit", *args], env=env, cwd=REPO, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    done = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def test_torchrun_processes_each_take_a_shard_and_the_first_reports_all(run_cli, demo_model, songs, tmp_path, one_thread):
    with use_plugins(entry_points=True):
        single = run_cli(*separate_args(demo_model, songs, tmp_path / "single"))
        scored = run_cli("evaluate", "-m", demo_model, "-d", f"stems:{songs}", "-o", tmp_path / "single-eval")
    assert single.exit_code == 0 and scored.exit_code == 0, (single.stderr, scored.stderr)
    kept = tmp_path / "ranks" / "song1" / "vocals.wav"  # an existing output, without --overwrite
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"keep me")

    first, second = run_ranks(separate_args(demo_model, songs, tmp_path / "ranks"))
    assert first.returncode == second.returncode == 1, (first.stderr, second.stderr)  # every process knows of the refusal
    report = json.loads(first.stdout)
    assert second.stdout == "" and [f["file"] for f in report["files"]] == [str(p) for p in mixtures(songs)]
    assert report["failed"] == 1 and "vocals.wav: already exists" in report["files"][0]["error"]
    assert first.stderr.count("already exists") == 1 and "already exists" not in second.stderr
    assert kept.read_bytes() == b"keep me"
    written, expected = stem_bytes(tmp_path / "ranks"), stem_bytes(tmp_path / "single")
    assert sorted(written) == sorted([k for k in expected if not k.startswith("song1")] + ["song1/vocals.wav"])
    assert all(written[k] == expected[k] for k in written if not k.startswith("song1"))  # song2 on rank 0, song3 on rank 1

    first, second = run_ranks(["evaluate", "-m", str(demo_model), "-d", f"stems:{songs}", "-o", str(tmp_path / "eval")])
    assert first.returncode == second.returncode == 0, (first.stderr, second.stderr)
    assert "paper protocol, mean over tracks" in first.stdout and second.stdout == ""
    assert track_results(tmp_path / "eval") == track_results(tmp_path / "single-eval")


def test_the_shard_of_each_process(monkeypatch):
    assert Shard(1, 3).take(list(range(8))) == [1, 4, 7] and Shard().take([1, 2]) == [1, 2]
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(variable, raising=False)
    assert shard_from_environment() == Shard()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(SepkitError, match="expected 0 <= RANK < WORLD_SIZE"):
        shard_from_environment()
    monkeypatch.setenv("RANK", "1")
    shard = shard_from_environment()
    assert (shard.rank, shard.world_size, shard.local_rank, shard.is_main) == (1, 2, 1, False)
    with pytest.raises(SepkitError, match="MASTER_ADDR and MASTER_PORT are not set: start the processes with torchrun"):
        shard.barrier()


def _threads_of_worker(device: str) -> int:
    return torch.get_num_threads()


def _report_threads(state: int, item: int) -> int:
    return state


def test_workers_start_with_their_share_of_the_threads_and_the_caller_keeps_its_own(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    before = torch.get_num_threads()
    with WorkerPool(2, _threads_of_worker, devices=["cpu"]) as pool:
        results = [done.result for done in pool.run(_report_threads, [0, 1, 2])]
    assert results == [worker_threads(2)] * 3  # set through the environment the workers start in
    assert torch.get_num_threads() == before and os.environ["OMP_NUM_THREADS"] == "7"  # restored
