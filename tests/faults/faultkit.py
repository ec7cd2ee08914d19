"""Helpers and fixtures of the fault-injection suite: tiny data and recipes, a built-in model, a full disk,
and ``sepkit`` child processes to kill. Sizes are the smallest that still exercise each path."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import soundfile as sf

RATE = 4000
#: Children run single-threaded, so that a run and its resumed copy do the same arithmetic.
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def _tone(rng: np.random.Generator, seconds: float, f0: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return 0.3 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 4)) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6)))


def _noise(rng: np.random.Generator, seconds: float) -> np.ndarray:
    return 0.1 * rng.standard_normal(int(seconds * RATE))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Paired train/valid/test multitracks of two sources, 1.5 s at 4 kHz."""
    root = tmp_path_factory.mktemp("fault-data")
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("valid", 1), ("test", 1)):
        for i in range(count):
            folder = root / split / f"t{i}"
            folder.mkdir(parents=True)
            v, a = _tone(rng, 1.5, 220 + 40 * i), _noise(rng, 1.5)
            sf.write(folder / "vocals.wav", v, RATE, subtype="FLOAT")
            sf.write(folder / "accompaniment.wav", a, RATE, subtype="FLOAT")
            sf.write(folder / "mixture.wav", v + a, RATE, subtype="FLOAT")
    return root


def recipe_text(root: Path, *, name: str = "tiny", **training: object) -> str:
    """A supervised U-Net recipe (variants baseline and wide) small enough to train in seconds."""
    settings: dict[str, object] = {
        "batch_size": 2, "updates_per_epoch": 2, "max_epochs": 2, "early_stopping": "false", "log_every": 1,
        "device": '"cpu"', "seed": 3,
    }
    settings.update(training)
    body = "\n".join(f"{k} = {v}" for k, v in settings.items())
    return f'''
name = "{name}"
sources = ["accompaniment", "vocals"]
[paths]
root = "{root}"
[audio]
sample_rate = {RATE}
[representation]
type = "magnitude-stft"
n_fft = 128
hop_length = 64
[separator]
type = "unet"
depth = 2
base_filters = 4
input_frames = 30
[training]
{body}
[evaluation]
batch_size = 4
[[data.paired]]
type = "stems"
root = "${{root}}/train"
[[data.validation]]
type = "stems"
root = "${{root}}/valid"
[[data.test]]
type = "stems"
root = "${{root}}/test"
[variants.baseline]
[variants.wide.separator]
base_filters = 6
'''


@pytest.fixture
def recipe(tmp_path, tiny_data) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(recipe_text(tiny_data), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def builtin_model(tmp_path_factory) -> Path:
    """An (untrained, seeded) magnitude-stft + U-Net model file, loadable by a child ``sepkit``."""
    import torch

    from sepkit.build import build_representation, build_separator
    from sepkit.model import model_recipe, save_model

    recipe = model_recipe({
        "name": "small", "sources": ["accompaniment", "vocals"],
        "audio": {"sample_rate": 8000, "channels": 1},
        "representation": {"type": "magnitude-stft", "n_fft": 256, "hop_length": 128},
        "separator": {"type": "unet", "depth": 2, "base_filters": 4, "input_frames": 30},
    })
    torch.manual_seed(0)
    representation = build_representation(recipe)
    separator = build_separator(recipe, representation)
    path = tmp_path_factory.mktemp("fault-model") / "small.safetensors"
    return save_model(path, recipe=recipe, representation=representation, separator=separator)


def song(path: Path, seconds: float, rate: int = 44100, channels: int = 2, **kwargs: object) -> Path:
    rng = np.random.default_rng(len(path.name))
    t = np.arange(int(seconds * rate)) / rate
    data = 0.3 * np.sin(2 * np.pi * 330 * t)[:, None] + 0.05 * rng.standard_normal((len(t), channels))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data.astype(np.float32), rate, **kwargs)
    return path


def partials(folder: Path) -> list[Path]:
    """Temporary files of sepkit's atomic writes under ``folder``."""
    return sorted(folder.rglob("*.partial")) if folder.exists() else []


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    return errors[-1]


# -- child processes -------------------------------------------------------------------------------


def start_sepkit(*args: object, cwd: Path | None = None) -> subprocess.Popen:
    """``sepkit ARGS`` in a child process (its output in pipes)."""
    env = {**os.environ, **CHILD_ENV}
    return subprocess.Popen(
        [sys.executable, "-m", "sepkit.cli.main", *map(str, args)], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def run_sepkit(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, **CHILD_ENV}
    return subprocess.run(
        [sys.executable, "-m", "sepkit.cli.main", *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout,
    )


def wait_for(condition, child: subprocess.Popen, what: str, timeout: float = 120.0) -> bool:
    """Poll ``condition()`` until it holds (True) or the child ends first (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if child.poll() is not None:
            return bool(condition())
        time.sleep(0.01)
    child.kill()
    raise AssertionError(f"timed out waiting for {what}")


def kill9(child: subprocess.Popen) -> None:
    child.kill()  # SIGKILL: no handler, no clean-up
    child.communicate(timeout=60)


# -- a full disk -----------------------------------------------------------------------------------


def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None and sys.platform.startswith("linux")


@contextmanager
def full_disk(folder: Path, monkeypatch: pytest.MonkeyPatch, *, size: str = "16k") -> Iterator[str]:
    """Make ``folder`` a place where writes run out of space. As root: a ``size`` tmpfs mounted on
    it (the real ENOSPC, through libsndfile and the kernel). Otherwise every write under it through
    sepkit's atomic writer or libsndfile raises ENOSPC, as the kernel would. Yields the mode."""
    folder.mkdir(parents=True, exist_ok=True)
    if _can_mount() and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", f"sepkit-full-{uuid.uuid4().hex[:6]}", str(folder)],
                                      capture_output=True).returncode == 0:
        try:
            yield "tmpfs"
        finally:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        return
    with enospc_under(folder, monkeypatch):
        yield "monkeypatch"


@contextmanager
def enospc_under(folder: Path, monkeypatch: pytest.MonkeyPatch, *, names: tuple[str, ...] = ()) -> Iterator[None]:
    """Writes (through sepkit.io or libsndfile) of files under ``folder`` (or, with ``names``, of
    files with those names anywhere) fail with ENOSPC."""
    import soundfile

    import sepkit.io

    folder = folder.resolve()

    def hit(path: Path) -> bool:
        path = Path(path).resolve()
        return path.name in names if names else folder in path.parents

    original = sepkit.io._write_all

    def write_all(fd: int, data, path: Path) -> None:
        if hit(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(fd, data, path)

    sf_write = soundfile.SoundFile.write

    def sound_write(self, data):  # what libsndfile reports when write() fails: errno in cffi's copy
        if hit(Path(self.name)):
            soundfile._ffi.errno = errno.ENOSPC
            raise soundfile.LibsndfileError(2)  # SFE_SYSTEM, "System error."
        return sf_write(self, data)

    with monkeypatch.context() as patch:
        patch.setattr(sepkit.io, "_write_all", write_all)
        patch.setattr(soundfile.SoundFile, "write", sound_write)
        yield
