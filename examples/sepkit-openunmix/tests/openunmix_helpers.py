"""Shared by this package's tests: the real ``openunmix`` package, random-weight checkpoints, fixtures.

A module of its own rather than a ``conftest.py``: these tests also run from the sepkit repository's
root, next to other packages' tests, and two top-level ``conftest`` modules would shadow each other.

``openunmix`` (PyPI, installed with ``--no-deps``) imports ``torchaudio`` at the top of two modules
but uses it only for audio files and its asteroid filterbank, neither of which these tests touch; a
stand-in module takes its place when torchaudio is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from sepkit.testing.cli import invoke

if "torchaudio" not in sys.modules and importlib.util.find_spec("torchaudio") is None:
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")

if os.environ.get("CI"):  # CI installs it (the README's install line): a missing package must fail there
    import openunmix.model as openunmix_model
else:
    openunmix_model = pytest.importorskip(
        "openunmix.model", reason="pip install --no-deps openunmix==1.3.0 (the README's install line does)"
    )
from openunmix import filtering as openunmix_filtering  # noqa: E402

#: A tiny Open-Unmix: 65 bins (n_fft 128), 40 of them read, hidden size 12, stereo.
TINY = {"nb_bins": 65, "nb_channels": 2, "hidden_size": 12, "max_bin": 40}
TINY_RATE = 8000
TINY_HOP = 32
LEGACY = {"sample_rate", "stft.window", "transform.0.window"}


def random_openunmix(seed: int, **sizes: int) -> torch.nn.Module:
    """Open-Unmix's own network with every parameter and batch-norm statistic random (eval mode)."""
    generator = torch.Generator().manual_seed(seed)
    network = openunmix_model.OpenUnmix(**{**TINY, **sizes})
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return network.eval()


def save_checkpoint(network: torch.nn.Module, path: Path, *, legacy: bool = True, rate: int = TINY_RATE) -> Path:
    """Save as Open-Unmix does; ``legacy`` adds the STFT entries of Open-Unmix 1.0 files (umxhq's)."""
    state = dict(network.state_dict())
    if legacy:
        n_fft = 2 * (network.nb_output_bins - 1)
        state["sample_rate"] = torch.tensor(float(rate))
        state["stft.window"] = torch.hann_window(n_fft)
        state["transform.0.window"] = torch.hann_window(n_fft)
    torch.save(state, path)
    return path


def checkpoints(folder: Path, targets: tuple[str, ...] = ("vocals", "drums"), **sizes: int) -> dict[str, Path]:
    """Random tiny checkpoints, one per target, and the networks they hold."""
    return {
        t: save_checkpoint(random_openunmix(i, **sizes), folder / f"{t}.pth") for i, t in enumerate(targets)
    }


def reference_networks(files: dict[str, Path], **sizes: int) -> list[torch.nn.Module]:
    """Open-Unmix's networks loaded from the files, as Open-Unmix loads them (strict=False)."""
    networks = []
    for path in files.values():
        network = openunmix_model.OpenUnmix(**{**TINY, **sizes})
        network.load_state_dict(torch.load(path, weights_only=True), strict=False)
        networks.append(network.eval())
    return networks


def convert_cli(files: dict[str, Path], output: Path, *extra: object):  # type: ignore[no-untyped-def]
    """``sepkit convert open-unmix`` in this process, with the tiny model's STFT hop."""
    pairs = [f"{t}={p}" for t, p in files.items()]
    return invoke("convert", "open-unmix", *pairs, "-o", output, "--hop-length", TINY_HOP, *extra)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference relative to the largest value."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@pytest.fixture(autouse=True)
def one_thread():
    """These tiny LSTMs take milliseconds on one thread; on a CPU shared with other work, two OpenMP
    threads waiting for each other made each call ~40x slower. Restored after every test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Generated data, downloads and decoded audio go to a temporary folder, not the user's cache."""
    monkeypatch.setenv("SEPKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "sepkit-cache"))
    monkeypatch.setenv("COLUMNS", "200")
