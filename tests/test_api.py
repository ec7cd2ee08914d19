"""The Python API: sepkit.separate / load_model / list_models, and docs/api.md's examples run as written."""

from __future__ import annotations

import pydoc
import re

import numpy as np
import pytest
import torch

from sepkit.plugins import use_plugins
from tests.conftest import REPO

DOC = REPO / "docs" / "api.md"


@pytest.fixture(scope="module")
def builtins():
    with use_plugins(entry_points=True) as system:
        yield system


def test_the_api_is_visible_in_dir_and_help():
    import sepkit

    for name in ("separate", "load_model", "list_models"):
        assert name in dir(sepkit) and name in sepkit.__all__
    text = pydoc.render_doc(sepkit, renderer=pydoc.plaintext)
    for signature in ("separate(audio:", "load_model(model:", "list_models()", "The Python API in three names"):
        assert signature in text, signature


def test_every_example_in_docs_api_runs(builtins, tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "['no_vocals', 'vocals']" in printed and "sha256 mismatch" in printed
    assert "default ['accompaniment', 'vocals'] 8192 local sepkit" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accompaniment.wav", "song.wav", "vocals.wav"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_in_numpy_out(builtins, dtype):
    import sepkit

    x = (0.1 * np.random.default_rng(0).standard_normal((2, 8000))).astype(dtype)
    stems = sepkit.separate(x, 16000)
    assert set(stems) == {"accompaniment", "vocals"}
    for stem in stems.values():
        assert isinstance(stem, np.ndarray) and stem.dtype == dtype and stem.shape == x.shape
    mono = sepkit.separate(x[0], 16000)
    assert all(stem.shape == (8000,) for stem in mono.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_tensor_in_tensor_out_batched(builtins, dtype):
    import sepkit

    x = (0.1 * torch.randn(2, 1, 4000, generator=torch.Generator().manual_seed(1))).to(dtype)
    stems = sepkit.separate(x, 8192)
    for stem in stems.values():
        assert isinstance(stem, torch.Tensor) and stem.dtype == dtype and stem.shape == x.shape and stem.device == x.device
    single = sepkit.separate(x[1], 8192)
    for name in stems:  # a batch is its items, separated one by one
        torch.testing.assert_close(stems[name][1], single[name])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_cuda_tensor_stays_on_its_device(builtins):
    import sepkit

    x = 0.1 * torch.randn(1, 8192, device="cuda")
    stems = sepkit.separate(x, 8192)
    assert all(stem.device == x.device for stem in stems.values())


def test_bad_input_is_a_sepkit_error(builtins):
    import sepkit

    with pytest.raises(sepkit.SepkitError, match="floating-point samples"):
        sepkit.separate(np.zeros((1, 100), dtype=np.int16), 8000)
    with pytest.raises(sepkit.SepkitError, match="floating-point samples"):
        sepkit.separate(torch.zeros(1, 100, dtype=torch.int32), 8000)
    with pytest.raises(sepkit.SepkitError, match=r"\[channels, samples\]"):
        sepkit.separate(np.zeros((1, 1, 1, 100), dtype=np.float32), 8000)
    with pytest.raises(sepkit.SepkitError, match="unknown separation option"):
        sepkit.separate(np.zeros((1, 100), dtype=np.float32), 8000, overlapp=0.5)
    with pytest.raises(sepkit.SepkitError, match="unknown model 'nope'"):
        sepkit.separate(np.zeros((1, 100), dtype=np.float32), 8000, model="nope")


def test_named_models_are_loaded_once(builtins, monkeypatch):
    import sepkit
    import sepkit.models
    from sepkit import api

    api._loaded.clear()
    calls = []
    real = sepkit.models.load_model
    monkeypatch.setattr(sepkit.models, "load_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    x = np.zeros((1, 800), dtype=np.float32)
    sepkit.separate(x, 8000)
    sepkit.separate(x, 8000, model="default")
    assert len(calls) == 1
