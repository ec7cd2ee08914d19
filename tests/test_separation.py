"""The separation engine: window layout, overlap-add, streaming, channels, Wiener post-filter.

The key property: the windowed, batched, chunked engine gives the same output as one pass of the
separator over the whole (zero-padded) signal wherever the separator's context is covered.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import separation_plugin
from sepkit.errors import NotImplementedComponentError, SepkitError, ShapeError
from sepkit.model import Model
from sepkit.plugins import use_plugins
from sepkit.separation import DEFAULT_OVERLAP, StreamingSeparator, WindowPlan, separate_features
from sepkit.separation.engine import EngineOptions
from sepkit.separation.windows import _taper, window_step
from sepkit.separator import Window


@pytest.fixture(scope="module")
def plugins():
    with use_plugins(separation_plugin) as system:
        yield system


def whole_pass(separator, features):
    """The reference: the separator run once over the whole zero-padded signal."""
    w = separator.window
    with torch.inference_mode():
        return separator(F.pad(features, (w.context_before, w.context_after)))


def tiny_model(**kwargs) -> Model:
    recipe, representation, separator = separation_plugin.build(**kwargs)
    return Model(recipe=recipe, representation=representation, separator=separator)


def noise(*shape, seed=0, scale=0.3):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# -- window layout -------------------------------------------------------------------------------

WINDOW = Window(input_frames=24, output_frames=18, context_before=4, context_after=2, input_bins=5, output_bins=5)


def test_paper_layout_shifts_the_last_window_back():
    plan = WindowPlan(WINDOW, 0.0, 100)
    assert plan.step == 18
    assert plan.all_starts().tolist() == [0, 18, 36, 54, 72, 82]
    weights = plan.weights(plan.all_starts())
    assert (weights[:-1] == 1).all()
    # the shifted last window only fills frames 90..99, which the window at 72 did not cover
    assert weights[-1].tolist() == [0.0] * 8 + [1.0] * 10


@pytest.mark.parametrize("frames, starts", [(1, [0]), (17, [0]), (18, [0]), (19, [0, 1]), (36, [0, 18])])
def test_short_signals(frames, starts):
    assert WindowPlan(WINDOW, 0.0, frames).all_starts().tolist() == starts


def test_overlapping_layout_and_taper():
    assert window_step(WINDOW, 0.25) == round(18 * 0.75)
    plan = WindowPlan(WINDOW, 0.5, 60)
    assert plan.all_starts().tolist() == [0, 9, 18, 27, 36, 42]
    taper = _taper(WINDOW, 9)
    assert (taper > 0).all()
    # a ramp down and the next window's ramp up add up to exactly one
    np.testing.assert_allclose(taper[9:] + taper[:9], 1.0, rtol=0, atol=1e-12)
    # windows touching a frame range: the ones a chunk has to run
    assert plan.starts_touching(20, 30).tolist() == [9, 18, 27]
    assert plan.starts_touching(50, 60).tolist() == [36, 42]


@pytest.mark.parametrize("overlap", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_overlap(overlap):
    """Checked where an overlap enters: engine options and separate_features."""
    with pytest.raises(SepkitError, match="overlap must be in"):
        EngineOptions(overlap=overlap)
    with pytest.raises(SepkitError, match="overlap must be in"):
        separate_features(PositionSeparator(), torch.zeros(1, 1, 100), overlap=overlap)


# -- overlap-add == whole-signal pass --------------------------------------------------------------


@pytest.mark.parametrize("overlap", [0.0, DEFAULT_OVERLAP, 0.5, 0.8])
@pytest.mark.parametrize("batch_size", [1, 7])
def test_windows_equal_a_whole_signal_pass(plugins, overlap, batch_size):
    _, representation, separator = separation_plugin.build(channels=2, seed=1)
    waveform = torch.from_numpy(noise(2, 2, 641))  # 2 examples, 2 channels, 81 frames
    features, _ = representation.encode(waveform)
    expected = whole_pass(separator, features)
    got = separate_features(separator, features, overlap=overlap, batch_size=batch_size)
    assert got.shape == (2, 2, 2, 5, features.shape[-1])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert expected.abs().max() > 0.1  # not a trivially silent comparison


@pytest.mark.parametrize("frames", [1, 10, 18, 19, 37])
def test_unbatched_and_short_inputs(plugins, frames):
    _, representation, separator = separation_plugin.build()
    features, _ = representation.encode(torch.from_numpy(noise(1, 1, frames * 8)))
    for overlap in (0.0, 0.3):
        got = separate_features(separator, features[0], overlap=overlap)
        assert got.shape == (2, 1, 5, frames)
        torch.testing.assert_close(got, whole_pass(separator, features)[0], rtol=0, atol=1e-6)


class PositionSeparator(torch.nn.Module):
    """Outputs, for every window, the position of each output frame in the window (0, 1, 2...)."""

    num_channels, num_bins, num_sources = 1, 1, 1
    window = WINDOW

    def forward(self, x):
        position = torch.arange(WINDOW.output_frames, dtype=x.dtype)
        return position.expand(x.shape[0], 1, 1, 1, -1).clone()


def reference_overlap_add(frames: int, overlap: float) -> np.ndarray:
    """A plain loop over windows, written from the definition (weights normalised per frame)."""
    plan = WindowPlan(WINDOW, overlap, frames)
    starts = plan.all_starts()
    weights = plan.weights(starts)
    total = np.zeros(frames + WINDOW.output_frames)
    weight = np.zeros_like(total)
    for start, w in zip(starts, weights):
        total[start : start + WINDOW.output_frames] += w * np.arange(WINDOW.output_frames)
        weight[start : start + WINDOW.output_frames] += w
    return (total / np.where(weight > 0, weight, 1))[:frames]


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.6])
def test_overlap_add_weights(overlap):
    separator = PositionSeparator()
    got = separate_features(separator, torch.zeros(1, 1, 100), overlap=overlap, batch_size=3)[0, 0, 0]
    np.testing.assert_allclose(got.numpy(), reference_overlap_add(100, overlap), atol=1e-5)
    if overlap == 0.0:  # the paper: every frame from exactly one window
        expected = np.concatenate([np.tile(np.arange(18), 5), np.arange(8, 18)])
        np.testing.assert_array_equal(got.numpy(), expected)
    else:  # cross-faded: flat parts exact, overlaps strictly between the two windows' values
        step = window_step(WINDOW, overlap)
        assert got[0] == 0 and got[99] == 17
        assert 0 < got[step] < WINDOW.output_frames - 1


def test_separate_features_rejects_wrong_shapes(plugins):
    _, _, separator = separation_plugin.build()
    with pytest.raises(ShapeError, match=r"expects features \[channels=1, bins=5"):
        separate_features(separator, torch.zeros(1, 7, 10))
    with pytest.raises(ShapeError):
        separate_features(separator, torch.zeros(10))
    with pytest.raises(SepkitError, match="batch_size"):
        separate_features(separator, torch.zeros(1, 5, 10), batch_size=0)


# -- streaming ------------------------------------------------------------------------------------


def streamer(representation, separator, *, chunk_frames: int, **options) -> StreamingSeparator:
    """A streaming separator whose chunks are ``chunk_frames`` frames long."""
    chunk_seconds = chunk_frames / representation.frames_per_second
    return StreamingSeparator(representation, separator, EngineOptions(chunk_seconds=chunk_seconds, **options))


def reference_waveforms(representation, separator, waveform: np.ndarray, overlap: float) -> np.ndarray:
    features, context = representation.encode(torch.from_numpy(waveform))
    with torch.inference_mode():
        sources = separate_features(separator, features, overlap=overlap)
        return representation.decode(sources, context, waveform.shape[-1]).numpy()


@pytest.mark.parametrize("overlap", [0.0, DEFAULT_OVERLAP])
@pytest.mark.parametrize("chunk_frames, block", [(20, 64), (57, 1000), (10_000, 5000)])
def test_streaming_equals_whole_signal(plugins, overlap, chunk_frames, block):
    _, representation, separator = separation_plugin.build(channels=2, seed=2)
    waveform = noise(2, 2, 1605, seed=3)  # 2 lanes, 2 channels, 201 frames (last one partial)
    expected = reference_waveforms(representation, separator, waveform, overlap)
    stream = streamer(representation, separator, overlap=overlap, batch_size=5, chunk_frames=chunk_frames)
    assert stream.chunk_frames == max(chunk_frames, separator.window.output_frames)
    pieces = [stream.push(waveform[..., i : i + block]) for i in range(0, waveform.shape[-1], block)]
    pieces.append(stream.finish())
    got = np.concatenate([p for p in pieces if p is not None], axis=-1)
    assert got.shape == expected.shape == (2, 2, 2, 1605)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_streaming_memory_is_bounded_by_the_chunk(plugins):
    _, representation, separator = separation_plugin.build()
    stream = streamer(representation, separator, overlap=0.25, chunk_frames=100)
    sizes = []
    block = noise(1, 1, 400)
    for _ in range(60):
        stream.push(block)
        sizes.append(stream._buffer.shape[-1])
    stream.finish()
    # 24,000 samples went through; the buffer never held more than a chunk plus margins
    assert max(sizes) < 100 * 8 + 400 + 30 * 8 * 2
    assert max(sizes) < 24_000 / 10


def test_frame_length_is_declared_and_sets_the_margins(plugins):
    _, representation, _ = separation_plugin.build()
    assert representation.frame_length == 8
    assert representation.margin_frames == 2  # one hop of frames, plus one straddling the edge


# -- the model API: resampling, channels, Wiener ----------------------------------------------------


@pytest.mark.parametrize("overlap", [0.0, DEFAULT_OVERLAP])
def test_model_separate_streams_exactly(plugins, overlap):
    model = tiny_model()
    mixture = noise(2, 8000 + 5, seed=4)
    expected = reference_waveforms(model.representation, model.separator, mixture[:, None], overlap)
    for chunk in (None, 0.1):
        got = model.separate(mixture, 8000, overlap=overlap, chunk_seconds=chunk)
        assert list(got) == ["accompaniment", "vocals"]
        for i, source in enumerate(model.sources):
            assert got[source].dtype == np.float32 and got[source].shape == mixture.shape
            np.testing.assert_allclose(got[source], expected[:, i, 0], rtol=0, atol=2e-6)


def test_model_resamples_to_the_model_rate_and_back(plugins):
    model = tiny_model()
    mixture = noise(2, 22050, seed=5)
    whole = model.separate(mixture, 44100)
    chunked = model.separate(mixture, 44100, chunk_seconds=0.1)
    for source in model.sources:
        assert whole[source].shape == (2, 22050)
        np.testing.assert_allclose(chunked[source], whole[source], rtol=0, atol=2e-6)
    # same as resampling the whole signal, separating at 8 kHz and resampling back
    from sepkit.separation.resample import resample

    at_model_rate = resample(mixture, 44100, 8000)
    expected = reference_waveforms(model.representation, model.separator, at_model_rate[:, None], DEFAULT_OVERLAP)
    back = resample(expected[:, 1, 0], 8000, 44100)[:, :22050]
    np.testing.assert_allclose(whole["vocals"], back, rtol=0, atol=1e-5)


def test_mono_model_separates_each_channel_or_the_downmix(plugins):
    model = tiny_model()
    left, right = noise(2, 4000, seed=6)
    stereo = np.stack([left, right])
    per_channel = model.separate(stereo, 8000)
    alone = model.separate(left, 8000)
    assert alone["vocals"].shape == (4000,)
    np.testing.assert_allclose(per_channel["vocals"][0], alone["vocals"], atol=1e-6)
    swapped = model.separate(stereo[::-1], 8000)
    np.testing.assert_allclose(swapped["vocals"][::-1], per_channel["vocals"], atol=1e-6)
    downmix = model.separate(stereo, 8000, channel_mode="downmix")
    mean = model.separate(stereo.mean(axis=0), 8000)
    assert downmix["vocals"].shape == (2, 4000)
    np.testing.assert_allclose(downmix["vocals"][0], mean["vocals"], atol=1e-6)
    np.testing.assert_array_equal(downmix["vocals"][0], downmix["vocals"][1])


def test_stereo_model_and_channel_mismatch(plugins):
    model = tiny_model(channels=2)
    mono = noise(1, 800, seed=7)
    out = model.separate(mono, 8000)
    assert out["vocals"].shape == (1, 800)
    with pytest.raises(SepkitError, match="separates 2-channel audio; an input with 3 channels"):
        model.separate(noise(3, 800), 8000)


def test_wiener_masks_split_the_mixture_exactly(plugins):
    model = tiny_model()
    mixture = noise(1, 4000, seed=8)
    filtered = model.separate(mixture, 8000, wiener=True)
    plain = model.separate(mixture, 8000)
    np.testing.assert_allclose(filtered["vocals"] + filtered["accompaniment"], mixture, atol=1e-5)
    assert np.abs(filtered["vocals"] - plain["vocals"]).max() > 1e-3
    # streaming does not change the filtered result either
    chunked = model.separate(mixture, 8000, wiener=True, chunk_seconds=0.1)
    np.testing.assert_allclose(chunked["vocals"], filtered["vocals"], atol=2e-6)


def test_wiener_needs_a_magnitude_spectrogram(plugins):
    model = tiny_model()
    model.representation.magnitude_spectrogram = False
    with pytest.raises(SepkitError, match="Wiener post-filter needs a magnitude-spectrogram representation"):
        model.separate(noise(1, 800), 8000, wiener=True)


@pytest.mark.parametrize(
    "waveform, rate, message",
    [
        (np.zeros((1, 0), np.float32), 8000, "has no samples"),
        (np.array([[0.0, np.nan, 0.0] * 100], np.float32), 8000, "NaN or infinite"),
        (np.array([[0.0, np.inf] * 100], np.float32), 8000, "NaN or infinite"),
        (np.zeros((2, 2, 10), np.float32), 8000, "expects a waveform"),
        (np.zeros((1, 100), np.float32), 0, "sample_rate must be"),
        (np.zeros((1, 100), np.int16), 8000, "expects floating-point samples"),
    ],
)
def test_bad_waveforms(plugins, waveform, rate, message):
    with pytest.raises(SepkitError, match=message):
        tiny_model().separate(waveform, rate)


def test_bad_engine_options():
    with pytest.raises(SepkitError, match="channel_mode"):
        EngineOptions(channel_mode="left")
    with pytest.raises(SepkitError, match="chunk_seconds"):
        EngineOptions(chunk_seconds=0)
    with pytest.raises(SepkitError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        EngineOptions(precision="fp16")


def test_precision_resolution(monkeypatch):
    from sepkit.separation import precision as p

    assert p.resolve_precision("fp32", "cpu") == "fp32"
    assert p.resolve_precision("bf16", "cpu") == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert p.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert p.resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(SepkitError, match="bf16 is supported on cpu and cuda, not on meta"):
        p.resolve_precision("bf16", "meta")
    assert p.resolve_precision("auto", "meta") == "fp32"


def test_input_is_not_modified(plugins):
    mixture = noise(1, 800) * 5  # clipping happens on a copy
    before = mixture.copy()
    recipe, representation, separator = separation_plugin.build()
    model = Model(recipe=recipe.model_copy(update={"audio": recipe.audio.model_copy(update={"clip": True})}),
                  representation=representation, separator=separator)
    model.separate(mixture, 8000)
    np.testing.assert_array_equal(mixture, before)


# -- the built-in magnitude STFT and U-Net ----------------------------------------------------------


def real_model() -> Model:
    from sepkit.build import build_representation, build_separator
    from sepkit.model import model_recipe

    recipe = model_recipe({
        "name": "small-unet",
        "sources": ["accompaniment", "vocals"],
        "audio": {"sample_rate": 8192, "channels": 1, "clip": False},
        "representation": {"type": "magnitude-stft", "n_fft": 256, "hop_length": 128},
        "separator": {"type": "unet", "depth": 2, "base_filters": 4, "input_frames": 50},
    })
    torch.manual_seed(0)
    try:
        representation = build_representation(recipe)
        separator = build_separator(recipe, representation).eval()
    except NotImplementedComponentError as exc:
        pytest.skip(f"built-in components not implemented yet: {exc}")
    with torch.no_grad():  # positive biases, so that the ReLU outputs are not all zero
        for parameter in separator.parameters():
            if parameter.dim() == 1:
                parameter.uniform_(0.05, 0.3)
    return Model(recipe=recipe, representation=representation, separator=separator).to("cpu")


@pytest.mark.parametrize("overlap", [0.0, DEFAULT_OVERLAP])
def test_builtin_stft_and_unet_stream_exactly(overlap):
    with use_plugins(entry_points=True):
        model = real_model()
        mixture = noise(1, 8192 * 3 + 77, seed=9, scale=0.1)
        expected = reference_waveforms(model.representation, model.separator, mixture[:, None], overlap)
        assert np.abs(expected).max() > 1e-3
        got = model.separate(mixture, 8192, overlap=overlap)
        for i, source in enumerate(model.sources):
            np.testing.assert_allclose(got[source], expected[:, i, 0], rtol=0, atol=1e-5)
        # chunk boundaries on the window grid and off it: the STFT frames overlap (n_fft = 2 hops),
        # so the chunks need margins for the encoder, the separator's context and the decoder
        step = window_step(model.separator.window, overlap)
        for chunk_frames in (2 * step, 2 * step + 1):
            stream = streamer(model.representation, model.separator, overlap=overlap, chunk_frames=chunk_frames)
            assert stream.chunk_frames == chunk_frames
            pieces = [stream.push(mixture[None, :, i : i + 5000]) for i in range(0, mixture.shape[-1], 5000)]
            pieces.append(stream.finish())
            chunked = np.concatenate([p for p in pieces if p is not None], axis=-1)
            np.testing.assert_allclose(chunked[0, :, 0], expected[0, :, 0], rtol=0, atol=1e-5)


def test_bf16_separation_is_close_to_fp32_and_float32():
    """bf16 runs only the separator in bf16: the output stays float32, within bf16 rounding of fp32,
    and the model's weights are unchanged (only their memory layout may be)."""
    with use_plugins(entry_points=True):
        model = real_model()
        weights = {k: v.clone() for k, v in model.separator.state_dict().items()}
        mixture = noise(1, 8192 * 2, seed=11, scale=0.1)
        exact = model.separate(mixture, 8192, precision="fp32")
        fast = model.separate(mixture, 8192, precision="bf16")
        for source in model.sources:
            assert fast[source].dtype == np.float32
            error = np.linalg.norm(fast[source] - exact[source]) / np.linalg.norm(exact[source])
            assert 0 < error < 0.05  # bf16 has 8 mantissa bits: different, but close
        for key, value in model.separator.state_dict().items():
            torch.testing.assert_close(value, weights[key], rtol=0, atol=0)
        again = model.separate(mixture, 8192, precision="fp32")  # channels-last weights: same fp32 result
        for source in model.sources:
            np.testing.assert_allclose(again[source], exact[source], rtol=0, atol=1e-6)


def test_builtin_wiener_reconstructs_the_mixture():
    with use_plugins(entry_points=True):
        model = real_model()
        mixture = noise(1, 8192 * 2, seed=10, scale=0.1)
        out = model.separate(mixture, 8192, wiener=True)
        np.testing.assert_allclose(out["vocals"] + out["accompaniment"], mixture, atol=1e-5)


def test_separate_file_reports_progress_and_results(plugins, tmp_path):
    import soundfile as sf

    from sepkit.separation.files import separate_file

    song = tmp_path / "song.wav"
    sf.write(str(song), noise(30_001, 2, seed=11), 22050)
    calls = []
    result = separate_file(tiny_model(), song, tmp_path / "out", stems=["vocals"], progress=lambda done, total: calls.append((done, total)),
                           options=EngineOptions(chunk_seconds=0.3))
    assert result.error is None and list(result.outputs) == ["vocals"]
    assert result.duration == pytest.approx(30_001 / 22050)
    assert result.realtime_factor == pytest.approx(result.duration / result.seconds)
    done = [d for d, _ in calls]
    assert len(calls) >= 2 and done == sorted(done) and calls[-1] == (30_001, 30_001)
    assert sf.info(str(result.outputs["vocals"])).frames == 30_001
