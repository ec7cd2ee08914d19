"""sepkit's converted Open-Unmix against the real ``openunmix`` package, on the same input.

Random weights (every parameter and batch-norm statistic drawn), tiny sizes; one full-size check of
the umxhq layout. "Relative" is the largest difference over the largest value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sepkit
from sepkit.separation import EngineOptions, StreamingSeparator
from sepkit.separation.wiener import soft_mask_wiener
from sepkit.separation.windows import separate_features
from sepkit.testing import check_separator

from sepkit_openunmix.convert import openunmix_state_dicts
from sepkit_openunmix.network import UnmixNetwork
from sepkit_openunmix.separator import OpenUnmix

from openunmix_helpers import (  # noqa: F401 (fixture)
    TINY, TINY_HOP, checkpoints, convert_cli, isolated_cache, one_thread, openunmix_filtering, openunmix_model,
    reference_networks, relative,
)

TOLERANCE = 1e-5


def _song(seconds: float = 1.5, channels: int = 2, seed: int = 0) -> torch.Tensor:
    """A few tones and noise, ``[1, channels, samples]`` at 8 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 8000)) / 8000
    tones = [0.3 * np.sin(2 * np.pi * f * t) for f in (220.0, 347.0, 1250.0)[:channels]]
    tones += [0.2 * np.sin(2 * np.pi * 600 * t)] * (channels - len(tones))
    audio = np.stack(tones) + 0.05 * rng.standard_normal((channels, t.size))
    return torch.from_numpy(audio.astype(np.float32))[None]


def _model(tmp_path, files, *extra):  # type: ignore[no-untyped-def]
    result = convert_cli(files, tmp_path / "umx.safetensors", *extra)
    assert result.exit_code == 0, result.stderr
    return sepkit.load_model(tmp_path / "umx.safetensors")


def _reference(networks, features: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Open-Unmix's networks on features ``[B, C, F, T]`` -> ``[B, N, C, F, T]``."""
    with torch.no_grad():
        return torch.stack([network(features.clone()) for network in networks], dim=1)


# ----------------------------------------------------------------------------------- layout


def test_the_state_dict_is_open_unmixs_at_full_umxhq_size():
    """Every key and shape of a umxhq network (2049 bins, max_bin 1487, hidden 512, stereo BLSTM)."""
    theirs = openunmix_model.OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487).state_dict()
    ours = UnmixNetwork(
        num_bins=2049, max_bin=1487, channels=2, hidden_size=512, layers=3, unidirectional=False, dropout=0.4
    ).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    assert ours["lstm.weight_hh_l2_reverse"].shape == (4 * 256, 256)  # hidden_size / 2 per direction


@pytest.mark.parametrize(
    "config, sources",
    [
        ({"hidden_size": 8, "max_bin": 20, "output_frames": 6, "context_frames": 3}, 2),
        ({"hidden_size": 6, "nb_layers": 1, "unidirectional": True, "output_frames": 5, "context_frames": 2}, 3),
        ({"hidden_size": 8, "residual": True, "output_frames": 4, "context_frames": 0}, 2),
    ],
)
def test_open_unmix_keeps_the_separator_contract(config, sources):
    separator = check_separator(OpenUnmix, config, num_sources=sources, num_channels=2, num_bins=33)
    w = separator.window
    assert w.context_before == config["context_frames"]
    assert w.context_after == (0 if config.get("unidirectional") else config["context_frames"])
    assert len(separator.targets) == sources - bool(config.get("residual"))


# ----------------------------------------------------------------------------------- equality


def test_a_whole_track_window_gives_open_unmixs_magnitudes(tmp_path):
    """No chunking: one window over every frame (context 0) is Open-Unmix's whole-track pass."""
    files = checkpoints(tmp_path)
    audio = _song()
    frames = 1 + audio.shape[-1] // TINY_HOP
    model = _model(tmp_path, files, "--output-frames", frames, "--context-frames", 0)
    features, _ = model.representation.encode(audio)
    ours = separate_features(model.separator, features)
    theirs = _reference(reference_networks(files), features)
    assert ours.shape == theirs.shape == (1, 2, 2, TINY["nb_bins"], frames)
    assert relative(ours, theirs) < TOLERANCE


def test_the_engines_windows_give_open_unmix_on_each_window(tmp_path):
    """With chunking: every frame equals Open-Unmix run on the (zero-padded) window that owns it,
    through separate_features and through the streaming engine's chunks (audio out)."""
    files = checkpoints(tmp_path)
    out, context = 16, 8
    model = _model(tmp_path, files, "--output-frames", out, "--context-frames", context)
    audio = _song(seconds=2.3)
    features, mixture_stft = model.representation.encode(audio)
    frames = features.shape[-1]
    padded = torch.nn.functional.pad(features, (context, context + out))
    networks = reference_networks(files)
    starts = list(range(0, frames - out, out)) + [frames - out]  # regular windows, the last shifted back
    theirs = torch.zeros(1, 2, 2, TINY["nb_bins"], frames)
    done = torch.zeros(frames, dtype=torch.bool)
    for start in starts:
        window = _reference(networks, padded[..., start : start + out + 2 * context])[..., context : context + out]
        fresh = ~done[start : start + out]  # overlap 0: the shifted last window fills only what is left
        theirs[..., start : start + out][..., fresh] = window[..., fresh]
        done[start : start + out] = True
    assert len(starts) >= 4 and bool(done.all())

    ours = separate_features(model.separator, features, overlap=0.0)
    assert relative(ours, theirs) < TOLERANCE

    expected = model.representation.decode(theirs, mixture_stft, audio.shape[-1])[0]
    chunk = 20 / model.representation.frames_per_second  # 20 frames
    streamer = StreamingSeparator(model.representation, model.separator, EngineOptions(overlap=0.0, chunk_seconds=chunk, batch_size=3))
    blocks = [streamer.push(audio[..., i : i + 700].numpy()) for i in range(0, audio.shape[-1], 700)]
    streamed = np.concatenate([b for b in blocks + [streamer.finish()] if b is not None], axis=-1)[0]
    assert streamed.shape == tuple(expected.shape)
    assert relative(torch.from_numpy(streamed), expected) < TOLERANCE


def test_the_residual_is_the_mixture_minus_the_targets_where_open_unmix_agrees(tmp_path):
    """Open-Unmix's residual is the complex mixture minus the targets; with the mixture phase that is
    (|X| - sum |S|) e^{i angle X}: sepkit's floored magnitude wherever the targets do not exceed the mix."""
    files = checkpoints(tmp_path, ("vocals",))
    audio = _song()
    frames = 1 + audio.shape[-1] // TINY_HOP
    model = _model(tmp_path, files, "--residual", "accompaniment", "--output-frames", frames, "--context-frames", 0)
    assert model.sources == ["vocals", "accompaniment"]
    features, _ = model.representation.encode(audio)
    ours = separate_features(model.separator, features)[0]
    vocals = _reference(reference_networks(files), features)[0, 0]
    signed = features[0] - vocals
    assert relative(ours[0], vocals) < TOLERANCE
    kept = signed >= 0
    assert 0.2 < float(kept.float().mean()) < 1.0  # both cases occur with these random weights
    assert relative(ours[1][kept], signed[kept]) < TOLERANCE
    assert float(ours[1][~kept].abs().max()) == 0.0


def test_the_wiener_option_is_open_unmixs_single_iteration_for_a_mono_model(tmp_path):
    """Open-Unmix's one EM iteration from mixture-phase estimates: for one channel the spatial
    covariance is 1 and its filter is the power mask |S_j|^2 / sum |S_k|^2, which is sepkit's
    post-filter. They differ where Open-Unmix's regularisation (1e-5, added to the estimates' power
    after scaling the mixture to a peak magnitude of 10) or sepkit's floor (1e-12, which splits a bin
    that every estimate leaves empty evenly instead of zeroing it) matter; compared on the bins whose
    estimates' scaled power is at least 1e4 times that regularisation."""
    files = checkpoints(tmp_path, ("vocals", "drums", "bass"), nb_channels=1)
    model = _model(tmp_path, files)
    audio = _song(channels=1)
    features, mixture_stft = model.representation.encode(audio)
    estimates = _reference(reference_networks(files, nb_channels=1), features)  # [1, N, 1, F, T]
    ours = soft_mask_wiener(model.representation, estimates, features)[0]  # [N, 1, F, T]
    mix = torch.view_as_real(mixture_stft[0]).permute(2, 1, 0, 3)  # [T, F, C, 2]
    theirs = openunmix_filtering.wiener(estimates[0].permute(3, 2, 1, 0), mix, 1)  # [T, F, C, 2, N]
    theirs = theirs.square().sum(dim=3).sqrt().permute(3, 2, 1, 0)  # magnitudes [N, C, F, T]
    scale = max(1.0, float(features.max()) / 10.0)
    loud = estimates[0].square().sum(dim=0) / scale**2 >= 1e4 * 1e-5
    assert float(loud.float().mean()) > 0.2
    assert relative(ours[:, loud], theirs[:, loud]) < 1e-4
    assert relative(ours.sum(dim=0), features[0]) < TOLERANCE  # the masks sum to one


def test_for_stereo_the_filters_differ_as_documented(tmp_path):
    """Open-Unmix's EM shares information between the channels (2x2 spatial covariances); sepkit's
    post-filter does not. docs/pretrained.md says they match for mono only: they do differ here."""
    files = checkpoints(tmp_path, ("vocals", "drums"))
    model = _model(tmp_path, files)
    audio = _song()
    features, mixture_stft = model.representation.encode(audio)
    estimates = _reference(reference_networks(files), features)
    ours = soft_mask_wiener(model.representation, estimates, features)[0]
    mix = torch.view_as_real(mixture_stft[0]).permute(2, 1, 0, 3)
    theirs = openunmix_filtering.wiener(estimates[0].permute(3, 2, 1, 0), mix, 1)
    theirs = theirs.square().sum(dim=3).sqrt().permute(3, 2, 1, 0)
    assert relative(ours, theirs) > 1e-3


def test_converted_weights_go_back_into_open_unmix_unchanged(tmp_path):
    files = checkpoints(tmp_path)
    model = _model(tmp_path, files)
    for state, path in zip(openunmix_state_dicts(model.separator), files.values()):
        network = openunmix_model.OpenUnmix(**TINY)
        network.load_state_dict(state, strict=True)
        original = {k: v for k, v in torch.load(path, weights_only=True).items() if k in state}
        assert set(original) == set(state)
        assert all(torch.equal(state[k], original[k]) for k in state)
