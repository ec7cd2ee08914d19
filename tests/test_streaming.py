"""Streaming excerpts (issue 18): waveforms stay in the audio cache, each batch is encoded on the
device; the same draws and the same excerpts as the resident sampler, resumable, chosen by
data.residency and data.memory_budget."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from sepkit.data.loading import load_tracks
from sepkit.data.sampler import ExcerptSampler
from sepkit.data.streaming import StreamingSampler
from sepkit.data.tracks import TrackAudio
from sepkit.errors import SepkitError
from sepkit.plugins import registry
from sepkit.recipe.schema import DataConfig, parse_memory_budget
from sepkit.separator import Window
from sepkit.training.residency import choose_residency, feature_bytes
from test_training import load, make_trainer, tiny_data, weights  # noqa: F401  (fixture)

WINDOW = Window(input_frames=40, output_frames=16, context_before=12, context_after=12, input_bins=80, output_bins=70)


def stft(n_fft: int = 128, hop: int = 32, center: bool = True):
    entry = registry("representation").get("magnitude-stft")
    return entry.cls(entry.cls.parse_config({"n_fft": n_fft, "hop_length": hop, "center": center}), sample_rate=4000)


def noise_tracks(stems: int, seconds: list[float], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.3 * rng.standard_normal((stems, 1, int(s * 4000)))).astype(np.float32) for s in seconds]


@pytest.mark.parametrize("n_fft,hop,center", [(128, 32, True), (100, 32, True), (128, 48, False)])
def test_streamed_excerpts_equal_the_resident_samplers(n_fft, hop, center):
    """Same seed, same draws, same features: tracks barely longer than an excerpt put the context
    into the padding at both ends, where both samplers must give zero frames."""
    rep = stft(n_fft, hop, center)
    tracks = noise_tracks(3, [0.3, 0.35, 2.0])
    resident = ExcerptSampler(tracks, rep, WINDOW, seed=5, loudness=(0.2, 1.2))
    streamed = StreamingSampler(tracks, rep, WINDOW, seed=5, loudness=(0.2, 1.2))
    for _ in range(4):
        a, b = resident.sample(48), streamed.sample(48)
        assert a.shape == b.shape == (48, 3, 1, rep.num_bins, WINDOW.input_frames)
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    indices, starts = streamed.draw(1000)
    edges = streamed.excerpts(indices, starts)
    reference = resident.excerpts(indices, starts)
    torch.testing.assert_close(edges, reference, rtol=1e-6, atol=1e-6)
    first = reference[starts == 0]
    assert first.shape[0] > 0 and bool((first[..., : WINDOW.context_before] == 0).all())
    assert bool((first[..., WINDOW.context_before :] != 0).any())


class LinearFeatures(type(stft())):
    """The magnitude STFT declared as no magnitude spectrogram: its loudness augmentation then scales
    the features' linear magnitudes (expm1, x gain, log1p) instead of the waveform."""

    magnitude_spectrogram = False


def test_chunks_buffers_and_both_ways_of_applying_loudness_give_the_resident_excerpts():
    """A batch read and encoded a few excerpts at a time into reused buffers, with the loudness on
    the waveform (a magnitude spectrogram) or on the features: the resident sampler's excerpts, and
    a batch already returned is not overwritten by the next one."""
    rep = stft()
    tracks = noise_tracks(3, [0.3, 0.35, 2.0, 1.1])
    plain = LinearFeatures(rep.config, sample_rate=rep.sample_rate)
    for representation in (rep, plain):
        resident = ExcerptSampler(tracks, representation, WINDOW, seed=7, loudness=(0.3, 1.5))
        streamed = StreamingSampler(tracks, representation, WINDOW, seed=7, loudness=(0.3, 1.5))
        assert streamed.chunk >= 40  # one chunk for a batch of 40, unless told otherwise
        first = streamed.sample(40)
        kept = first.clone()
        torch.testing.assert_close(first, resident.sample(40), rtol=1e-6, atol=1e-6)
        for chunk in (1, 3, 7):
            streamed.chunk = chunk
            torch.testing.assert_close(streamed.sample(40), resident.sample(40), rtol=1e-6, atol=1e-6)
        assert torch.equal(first, kept)
        streamed.chunk = 40
        state = streamed.state_dict()
        whole = streamed.sample(40)
        streamed.load_state_dict(state)
        streamed.chunk = 6
        torch.testing.assert_close(streamed.sample(40), whole, rtol=1e-6, atol=1e-7)


def test_assembled_stems_are_the_float32_sums_of_gain_times_file():
    """Bit for bit the stems of the obvious arithmetic (0 + gain x file + ..., clipped), written
    without temporaries."""
    from sepkit.data.tracks import assemble

    files = (0.8 * np.random.default_rng(3).standard_normal((4, 3, 2, 500))).astype(np.float32)
    signature = (((0, 1.0),), ((0, 1.0), (1, -1.0)), ((2, 0.5), (1, 1.0), (0, -0.25)), ())
    for clip in (False, True):
        expected = np.zeros((4, 4, 2, 500), np.float32)
        for stem, parts in enumerate(signature):
            for index, gain in parts:
                expected[:, stem] = expected[:, stem] + np.float32(gain) * files[:, index]
            if clip:
                expected[:, stem] = np.clip(expected[:, stem], -1.0, 1.0)
        out = np.full_like(expected, 9.0)
        assert np.array_equal(assemble(files, signature, clip, out=out), expected)
        assert np.array_equal(assemble(files, signature, clip), expected)
    assert float(np.abs(expected).max()) == 1.0


def test_streaming_resumes_exactly_and_refuses_a_state_from_another_kind_of_generator():
    rep = stft()
    sampler = StreamingSampler(noise_tracks(1, [1.0, 1.5]), rep, WINDOW, seed=3, loudness=(0.5, 1.0))
    sampler.sample(8)
    state = sampler.state_dict()
    expected = [sampler.sample(8) for _ in range(3)]
    sampler.load_state_dict(state)
    for batch in expected:
        assert torch.equal(sampler.sample(8), batch)
    with pytest.raises(SepkitError, match="drew on another kind of device"):
        sampler.load_state_dict({"generator": torch.zeros(16, dtype=torch.uint8)})  # a CUDA generator's size


def _derived_stems_dataset(root, rate=4000):
    """Tracks with a mixture and vocals only: the accompaniment is derived (mixture - vocals), and
    the loud mixture is clipped, so excerpts exercise the loader's whole arithmetic."""
    rng = np.random.default_rng(1)
    for i, seconds in enumerate((1.3, 2.2)):
        folder = root / f"t{i}"
        folder.mkdir(parents=True)
        n = int(seconds * rate)
        vocals = 0.5 * np.sin(2 * np.pi * 330 * np.arange(n) / rate)
        mixture = vocals + 0.8 * rng.standard_normal(n)
        sf.write(folder / "mixture.wav", mixture, rate, subtype="FLOAT")
        sf.write(folder / "vocals.wav", vocals, rate, subtype="FLOAT")


def test_lazy_tracks_read_from_the_cache_equal_the_loaded_tracks(tmp_path):
    from sepkit.plugins import registry as reg

    _derived_stems_dataset(tmp_path / "data")
    entry = reg("dataset").get("stems")
    dataset = entry.cls(entry.cls.parse_config({"root": str(tmp_path / "data")}), role="paired", sources=["accompaniment", "vocals"])
    options = dict(stems=["mixture", "accompaniment", "vocals"], sample_rate=4000, channels=1, cache_dir=tmp_path / "cache")
    loaded = load_tracks([dataset], **options)
    lazy = load_tracks([dataset], **options, lazy=True)  # cold cache for no file: written by the first load
    cold = load_tracks([dataset], **{**options, "cache_dir": tmp_path / "cold"}, lazy=True)
    for full, track, first_time in zip(loaded.tracks, lazy.tracks, cold.tracks):
        assert isinstance(track.audio, TrackAudio) and track.audio.shape == full.audio.shape
        assert all(isinstance(audio, np.memmap) for audio in track.audio.files + first_time.audio.files)
        assert len(track.audio.files) == 2  # the mixture is read once for the mixture and the accompaniment
        assert np.array_equal(track.audio.materialise(), full.audio)
        assert np.array_equal(first_time.audio.materialise(), full.audio)
        length = full.audio.shape[-1]
        for start, stop in ((-500, 300), (100, 2100), (length - 200, length + 700)):
            expected = np.zeros((3, 1, stop - start), np.float32)
            lo, hi = max(start, 0), min(stop, length)
            expected[..., lo - start : hi - start] = full.audio[..., lo:hi]
            assert np.array_equal(track.audio.read(start, stop), expected)
    assert float(np.abs(loaded.tracks[0].audio[0]).max()) == 1.0  # the mixture was clipped
    rep = stft()
    resident = ExcerptSampler.from_loaded(loaded.tracks, rep, WINDOW, seed=2)
    streamed = StreamingSampler.from_loaded(lazy.tracks, rep, WINDOW, seed=2)
    torch.testing.assert_close(streamed.sample(32), resident.sample(32), rtol=1e-6, atol=1e-6)


def test_memory_budget_and_the_auto_choice():
    assert parse_memory_budget(None) == ("share", 0.4)
    assert parse_memory_budget("512MiB") == ("bytes", 512 * 2**20)
    assert parse_memory_budget("2.5 GB") == ("bytes", 2.5e9)
    assert parse_memory_budget("25%") == ("share", 0.25)
    for bad in ("lots", "0GB", "120%", "-3GB"):
        with pytest.raises(ValueError, match="memory_budget"):
            DataConfig(memory_budget=bad)
    sizes = {"paired": 30, "mixtures": 500, "solo.vocals": 60}
    assert choose_residency("auto", sizes, 100) == {"paired": "features", "mixtures": "stream", "solo.vocals": "features"}
    assert choose_residency("auto", sizes, 10) == dict.fromkeys(sizes, "stream")
    assert choose_residency("auto", sizes, 10**9) == dict.fromkeys(sizes, "features")
    assert choose_residency("stream", sizes, 10**9) == dict.fromkeys(sizes, "stream")
    rep = stft()
    frames = rep.num_frames(4000)
    padded = frames + WINDOW.context_before + WINDOW.context_after
    assert feature_bytes([(3, 1, 4000), (1, 1, 10)], rep, WINDOW) == 3 * rep.num_bins * padded * 4


def test_streamed_training_equals_resident_training_and_resumes(tmp_path, tiny_data):
    """On the CPU both residencies draw from the same generator and give the same excerpts: the same
    run to float rounding; a streamed run resumes bit for bit; auto with a tiny budget streams."""
    resident = make_trainer(load(tmp_path, tiny_data, max_epochs=1, critic_iterations=1), tmp_path / "resident")
    streamed_recipe = load(tmp_path, tiny_data, max_epochs=2, critic_iterations=1)
    streamed_recipe = streamed_recipe.model_copy(update={"data": streamed_recipe.data.model_copy(update={"residency": "stream"})})
    streamed = make_trainer(streamed_recipe, tmp_path / "streamed")
    assert isinstance(resident.data.mixtures, ExcerptSampler)
    assert all(isinstance(s, StreamingSampler) for s in streamed.data.samplers().values())
    assert set(streamed.data.residency.values()) == {"stream"}
    for _ in range(2):
        assert resident.train_update() is not None and streamed.train_update() is not None
    a, b = weights(resident), weights(streamed)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)

    full = make_trainer(streamed_recipe, tmp_path / "full")
    full.fit()
    cut = make_trainer(streamed_recipe, tmp_path / "cut")
    cut.fit(stop_after_updates=4)
    again = make_trainer(streamed_recipe, tmp_path / "cut")
    again.fit(resume=True)
    for key, value in weights(full).items():
        assert torch.equal(value, weights(again)[key]), key

    tight = load(tmp_path, tiny_data, critic_iterations=1)
    tight = tight.model_copy(update={"data": tight.data.model_copy(update={"memory_budget": "1KB"})})
    assert set(make_trainer(tight, tmp_path / "tight").data.residency.values()) == {"stream"}
