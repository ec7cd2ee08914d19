"""The fast torch BSS Eval against museval itself, and the cheap training-curve SDR.

museval's metrics are loaded from its own ``metrics.py`` (no ffmpeg needed); every comparison runs
both implementations on the same signals.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sepkit.errors import ShapeError
from sepkit.evaluation.bss_eval import (
    _SegmentCorrelator,
    bss_eval_images_framewise,
    bss_eval_sources,
    simple_sdr,
)
from sepkit.evaluation.museval_backend import (
    MusevalUnavailableError,
    museval_bss_eval_sources,
    museval_bss_eval_v4,
    museval_metrics,
)

RATE = 8192


def corpus_excerpt(corpus, track: str, seconds: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """References ``[2, N]`` (accompaniment, vocals) and the mixture of a corpus test track, at
    8192 Hz as the paper scores them."""
    import soundfile as sf
    import soxr

    stems = {}
    for name in ("mixture", "accompaniment", "vocals"):
        audio, rate = sf.read(str(corpus / "test" / track / f"{name}.flac"), dtype="float32")
        stems[name] = soxr.resample(audio, rate, RATE, quality="HQ").astype(np.float64)[: int(seconds * RATE)]
    return np.stack([stems["accompaniment"], stems["vocals"]]), stems["mixture"]


def leaky_estimates(references: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each reference plus a scaled leak of the other one plus noise at about -40 dB."""
    rng = np.random.default_rng(seed)
    acc, voc = references
    noise = 0.01 * np.sqrt(np.mean(references**2))
    return np.stack([acc + 0.2 * voc, voc + 0.1 * acc]) + noise * rng.standard_normal(references.shape)


def wiener_like_estimates(references: np.ndarray, mixture: np.ndarray) -> np.ndarray:
    """A soft mask from smoothed, floored reference magnitudes applied to the mixture's STFT
    (artefacts and interference as a real separator leaves them)."""
    from scipy.signal import istft, stft
    from scipy.ndimage import uniform_filter1d

    _, _, spectra = stft(references, nperseg=512, noverlap=256)
    _, _, mix_spec = stft(mixture, nperseg=512, noverlap=256)
    magnitude = uniform_filter1d(np.abs(spectra), size=5, axis=-1) + 0.05 * np.abs(spectra).mean()
    masks = magnitude**2 / (magnitude**2).sum(axis=0, keepdims=True)
    _, out = istft(masks * mix_spec[None], nperseg=512, noverlap=256)
    return out[:, : references.shape[-1]]


def fast_numbers(references, estimates, mixture=None, **kwargs) -> np.ndarray:
    scores = bss_eval_sources(references, estimates, mixture=mixture, **kwargs)
    rows = [scores.sdr, scores.sir, scores.sar] + ([scores.mixture_sdr] if mixture is not None else [])
    return np.stack([r.cpu().numpy() for r in rows])


def museval_numbers(references, estimates, mixture=None) -> np.ndarray:
    rows = list(museval_bss_eval_sources(references, estimates))
    if mixture is not None:
        rows.append(museval_bss_eval_sources(references, np.broadcast_to(mixture, references.shape).copy())[0])
    return np.stack(rows)


# -- the paper's whole-track bss_eval_sources ------------------------------------------------------------


@pytest.mark.parametrize("track, kind", [("te000", "leak"), ("te005", "wiener")])
def test_equals_museval_on_corpus_tracks(corpus, track, kind):
    references, mixture = corpus_excerpt(corpus, track)
    if kind == "leak":
        estimates = leaky_estimates(references)
    else:
        estimates = wiener_like_estimates(references, mixture)
    want = museval_numbers(references, estimates, mixture)
    got = fast_numbers(references, estimates, mixture)
    assert np.all(np.isfinite(want))
    assert np.abs(got - want).max() < 0.01, (got, want)
    assert np.abs(got - want).max() < 1e-5  # in fact equal up to float rounding


def test_float32_input_and_mono_layouts_agree(corpus):
    references, mixture = corpus_excerpt(corpus, "te003", seconds=4.0)
    estimates = leaky_estimates(references, seed=3)
    as_2d = fast_numbers(references, estimates, mixture)
    as_3d = fast_numbers(references[:, None], estimates[:, None], mixture[None])
    as_tensors = fast_numbers(torch.from_numpy(references), torch.from_numpy(estimates), torch.from_numpy(mixture))
    np.testing.assert_allclose(as_3d, as_2d, atol=1e-9)
    np.testing.assert_allclose(as_tensors, as_2d, atol=1e-9)
    single = fast_numbers(references.astype(np.float32), estimates.astype(np.float32), mixture.astype(np.float32))
    np.testing.assert_allclose(single, as_2d, atol=0.01)


def test_multichannel_filters_equal_museval():
    """Stereo: museval's distortion filters mix channels (nchan x nchan filters per source)."""
    rng = np.random.default_rng(1)
    n = 8000
    sources = rng.standard_normal((2, 2, n))
    sources[:, 1] += 0.5 * sources[:, 0]  # correlated channels
    estimates = sources + 0.3 * sources[::-1] + 0.05 * rng.standard_normal(sources.shape)
    estimates[:, 0] += 0.2 * np.roll(estimates[:, 1], 3, axis=-1)
    np.testing.assert_allclose(fast_numbers(sources, estimates), museval_numbers(sources, estimates), atol=1e-6)


@pytest.mark.parametrize("n", [1500, 15362, 15363, 40000])
def test_short_and_segment_boundary_lengths_equal_museval(n):
    rng = np.random.default_rng(n)
    references = rng.standard_normal((2, n))
    estimates = references + 0.4 * references[::-1] + 0.1 * rng.standard_normal((2, n))
    np.testing.assert_allclose(fast_numbers(references, estimates), museval_numbers(references, estimates), atol=1e-6)


@pytest.mark.parametrize("n", [5, 700, 16258, 16259, 40000])
def test_segment_correlator_equals_direct_correlation(n):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, n))
    y = rng.standard_normal((3, n))
    lags = 64  # segments of 16384 - 2 * 63 = 16258 samples
    got = _SegmentCorrelator(n, lags).correlate(torch.from_numpy(x), [torch.from_numpy(y[:1]), torch.from_numpy(y[1:])]).numpy()
    for p in range(2):
        for r in range(3):
            full = np.correlate(np.pad(x[p], lags), y[r], mode="valid")  # lag k at index k + lags
            want = full[1 : 2 * lags]  # lags -(L-1)..(L-1)
            np.testing.assert_allclose(got[p, r], want, atol=1e-9 * n)


def test_silent_reference_is_nan_and_leaves_the_others_unchanged():
    rng = np.random.default_rng(2)
    references = rng.standard_normal((3, 8000))
    references[2] = 0.0
    estimates = references + 0.3 * references[[1, 0, 0]] + 0.1 * rng.standard_normal(references.shape)
    got = fast_numbers(references, estimates, references.sum(axis=0))
    assert np.isnan(got[:, 2]).all()
    without = museval_numbers(references[:2], estimates[:2], references.sum(axis=0))
    np.testing.assert_allclose(got[:, :2], without, atol=1e-6)
    with pytest.raises(ValueError, match="silent"):  # museval refuses such input altogether
        museval_bss_eval_sources(references, estimates)


@pytest.mark.parametrize("bad", ["nan", "inf", "silent"])
def test_unusable_estimate_is_nan_and_does_not_spoil_the_others(bad):
    rng = np.random.default_rng(3)
    references = rng.standard_normal((2, 6000))
    estimates = references + 0.3 * references[::-1] + 0.1 * rng.standard_normal(references.shape)
    broken = estimates.copy()
    broken[1] = {"nan": np.nan, "inf": np.inf, "silent": 0.0}[bad]
    got = fast_numbers(references, broken, references.sum(axis=0))
    assert np.isnan(got[:3, 1]).all()
    np.testing.assert_allclose(got[:3, 0], museval_numbers(references, estimates)[:, 0], atol=1e-6)
    assert np.isfinite(got[3]).all()  # the mixture is still scored for every source


def test_bad_shapes_are_one_line_shape_errors():
    ones = np.ones((2, 100))
    with pytest.raises(ShapeError, match=r"estimates have shape \[2, 1, 90\] but references have \[2, 1, 100\]"):
        bss_eval_sources(ones, np.ones((2, 90)))
    with pytest.raises(ShapeError, match=r"references: expected real audio .* got shape \[100\]"):
        bss_eval_sources(np.ones(100), np.ones(100))
    with pytest.raises(ShapeError, match="of torch.int64"):
        bss_eval_sources(np.ones((2, 100), dtype=np.int64), ones)
    with pytest.raises(ShapeError, match="references hold NaN"):
        bss_eval_sources(np.full((2, 100), np.nan), ones)
    with pytest.raises(ShapeError, match=r"mixture: expected \[1, 100\]"):
        bss_eval_sources(ones, ones, mixture=np.ones(99))
    with pytest.raises(ShapeError, match="window and hop"):
        bss_eval_images_framewise(ones, ones, window=0)


def test_solve_is_right_after_set_num_threads():
    """torch 2.13's batched CPU solve breaks after set_num_threads(n >= 2); the fast path uses
    un-batched 2-D solves only, checked here against numpy in a process that set 2 threads."""
    script = textwrap.dedent(
        """
        import numpy as np, torch
        torch.set_num_threads(2)
        from sepkit.evaluation.bss_eval import EPS, _Projection, bss_eval_sources
        from sepkit.evaluation.museval_backend import museval_bss_eval_sources
        rng = np.random.default_rng(0)
        refs = rng.standard_normal((2, 1, 6000)); ests = refs + 0.3 * refs[::-1] + 0.1 * rng.standard_normal(refs.shape)
        columns = torch.from_numpy(ests.reshape(2, -1))
        p = _Projection(torch.from_numpy(refs), [columns], torch.arange(2), [0, 1], 512)
        g = p.gram.numpy(); d = p.cross.numpy()
        want = np.linalg.solve(g + EPS * np.eye(len(g)), d)
        print("solve", float(np.abs(p.x_all.numpy() - want).max() / np.abs(want).max()))
        own = np.linalg.solve(g[512:, 512:] + EPS * np.eye(512), d[512:, 1:])
        print("own", float(np.abs(p.x_own.numpy()[512:, 1:] - own).max() / np.abs(own).max()))
        fast = bss_eval_sources(refs, ests)
        slow = museval_bss_eval_sources(refs, ests)
        print("metrics", float(max(np.abs(fast.sdr.numpy() - slow[0]).max(), np.abs(fast.sar.numpy() - slow[2]).max())))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    values = dict(line.split() for line in done.stdout.strip().splitlines())
    assert float(values["solve"]) < 1e-8 and float(values["own"]) < 1e-8, done.stdout
    assert float(values["metrics"]) < 1e-6, done.stdout


# -- BSS Eval v4 (framewise) ---------------------------------------------------------------------------------


@pytest.mark.parametrize("channels, window, hop", [(1, 4000, 4000), (2, 4000, 3000), (2, 30000, 30000)])
def test_v4_equals_museval_with_silent_windows(channels, window, hop):
    rng = np.random.default_rng(channels)
    references = rng.standard_normal((2, channels, 20000))
    estimates = references + 0.3 * references[::-1] + 0.1 * rng.standard_normal(references.shape)
    references[0, :, 8000:13000] = 0.0  # silent windows: NaN for every source, as museval
    estimates[1, :, 12000:20000] = 0.0
    want = museval_bss_eval_v4(references, estimates, window=window, hop=hop)
    got = bss_eval_images_framewise(references, estimates, window=window, hop=hop)
    for w, g in zip(want, (got.sdr, got.isr, got.sir, got.sar)):
        g = g.numpy()
        assert g.shape == w.shape
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_allclose(g[~np.isnan(g)], w[~np.isnan(w)], atol=1e-8)
    assert np.isnan(want[0]).any() == (window < references.shape[-1])


def test_v4_equals_museval_on_a_corpus_track(corpus):
    """Per window, SDR is exactly museval's (it needs no filter). ISR, SIR and SAR project each
    window with filters fitted on the whole track, whose components along the near-null directions
    of band-limited audio are set by rounding: museval itself moves by ~0.01 dB when the
    references change by 1e-13, so they are compared at that precision."""
    references, mixture = corpus_excerpt(corpus, "te007", seconds=8.0)
    estimates = leaky_estimates(references, seed=7)
    want = museval_bss_eval_v4(references, estimates, window=RATE, hop=RATE)
    got = bss_eval_images_framewise(references, estimates, window=RATE, hop=RATE, mixture=mixture)
    np.testing.assert_allclose(got.sdr.numpy(), want[0], atol=1e-8)
    for w, g in zip(want[1:], (got.isr, got.sir, got.sar)):
        g = g.numpy()
        assert np.abs(g - w).max() < 0.05
        assert np.abs(np.median(g, axis=1) - np.median(w, axis=1)).max() < 0.02
    mix_want = museval_bss_eval_v4(references, np.stack([mixture, mixture]), window=RATE, hop=RATE)[0]
    np.testing.assert_allclose(got.mixture_sdr.numpy(), mix_want, atol=1e-8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_equals_cpu():
    rng = np.random.default_rng(4)
    references = rng.standard_normal((2, 2, 40000))
    estimates = references + 0.3 * references[::-1] + 0.1 * rng.standard_normal(references.shape)
    cpu = fast_numbers(references, estimates, references.sum(0))
    cuda = fast_numbers(references, estimates, references.sum(0), device="cuda")
    np.testing.assert_allclose(cuda, cpu, atol=1e-6)
    framewise = bss_eval_images_framewise(references, estimates, window=8000, device="cuda")
    assert framewise.sdr.device.type == "cuda"
    np.testing.assert_allclose(framewise.sar.cpu().numpy(), bss_eval_images_framewise(references, estimates, window=8000).sar.numpy(), atol=1e-6)


# -- the cheap training-curve SDR -------------------------------------------------------------------------------


def test_simple_sdr_is_the_filter_free_ratio():
    rng = np.random.default_rng(5)
    reference = torch.from_numpy(rng.standard_normal((4, 2, 1000)))
    for gain in (0.5, 0.9):
        value = simple_sdr(reference, gain * reference, dims=(-2, -1))
        np.testing.assert_allclose(value.numpy(), 10 * np.log10(1 / (1 - gain) ** 2) * np.ones(4), rtol=1e-12)
    noise = torch.from_numpy(rng.standard_normal((4, 2, 1000)))
    value = simple_sdr(reference, reference + noise)  # per channel by default
    want = 10 * np.log10((reference**2).sum(-1).numpy() / (noise**2).sum(-1).numpy())
    np.testing.assert_allclose(value.numpy(), want, rtol=1e-12)
    silent = simple_sdr(torch.zeros(3, 10), torch.ones(3, 10))
    assert torch.isnan(silent).all()


def test_simple_sdr_gives_gradients_and_checks_shapes():
    reference = torch.randn(2, 500)
    estimate = (0.8 * reference).requires_grad_()
    simple_sdr(reference, estimate).sum().backward()
    assert estimate.grad is not None and torch.isfinite(estimate.grad).all()
    with pytest.raises(ShapeError, match="simple_sdr"):
        simple_sdr(torch.ones(2, 10), torch.ones(2, 11))


# -- museval without ffmpeg ----------------------------------------------------------------------------------------


def test_museval_metrics_load_without_musdb_or_ffmpeg():
    script = (
        "import sys; from sepkit.evaluation.museval_backend import museval_metrics; m = museval_metrics();"
        "print(hasattr(m, 'bss_eval'), 'musdb' in sys.modules, 'stempeg' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "False"]


def test_missing_museval_is_an_explicit_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "museval" else real(name, *a))
    monkeypatch.delitem(sys.modules, "museval.metrics", raising=False)
    museval_metrics.cache_clear()
    try:
        with pytest.raises(MusevalUnavailableError, match=r"museval is not installed.*--fast"):
            museval_metrics()
    finally:
        museval_metrics.cache_clear()


def test_a_batch_is_scored_item_by_item():
    rng = np.random.default_rng(6)
    references = rng.standard_normal((3, 2, 1, 4000))
    estimates = references + 0.3 * references[:, ::-1] + 0.1 * rng.standard_normal(references.shape)
    mixture = references.sum(axis=1)
    batch = bss_eval_sources(torch.from_numpy(references), torch.from_numpy(estimates), mixture=torch.from_numpy(mixture))
    assert batch.sdr.shape == (3, 2) and batch.mixture_sdr.shape == (3, 2)
    for b in range(3):
        np.testing.assert_allclose(
            np.stack([batch.sdr[b], batch.sir[b], batch.sar[b], batch.mixture_sdr[b]]),
            fast_numbers(references[b], estimates[b], mixture[b]),
            atol=1e-9,
        )


def test_an_exactly_singular_system_falls_back_to_least_squares_as_museval():
    from sepkit.evaluation.bss_eval import _solve

    gram = torch.full((2, 2), 1e17, dtype=torch.float64)  # eps I vanishes in the rounding
    rhs = torch.ones(2, 1, dtype=torch.float64)
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.solve(gram.numpy() + np.finfo(float).eps * np.eye(2), rhs.numpy())
    np.testing.assert_allclose(_solve(gram, rhs).numpy(), np.linalg.lstsq(gram.numpy(), rhs.numpy(), rcond=None)[0])
