"""sepkit.audio: decoding, channel handling, resampling, clipping and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sepkit.audio import AudioError, audio_info, load_audio, match_channels
from sepkit.errors import SepkitError


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def write(path: Path, audio: np.ndarray, rate: int, **kwargs) -> Path:
    """``audio`` is [L] or [C, L]."""
    data = audio if audio.ndim == 1 else audio.T
    sf.write(str(path), data, rate, **kwargs)
    return path


def test_same_rate_reads_exact_samples(tmp_path):
    x = sine(440, 0.5, 8000)
    path = write(tmp_path / "a.wav", x, 8000, subtype="FLOAT")
    out = load_audio(path, sample_rate=8000, channels=1)
    assert out.dtype == np.float32 and out.shape == (1, x.size)
    np.testing.assert_array_equal(out[0], x)


def test_resampling_matches_soxr_and_the_analytic_signal(tmp_path):
    import soxr

    x = sine(440, 1.0, 16000)
    path = write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    out = load_audio(path, sample_rate=8192, channels=1)
    assert out.shape == (1, 8192)
    # librosa's default resampler ("soxr_hq") is this call.
    reference = soxr.resample(x, 16000, 8192, quality="HQ")
    np.testing.assert_allclose(out[0], reference, atol=1e-6)
    # Away from the edges, the resampled sine is the sine sampled at 8192 Hz.
    expected = sine(440, 1.0, 8192)
    np.testing.assert_allclose(out[0, 500:-500], expected[500:-500], atol=2e-3)


def test_downmix_is_the_mean_and_none_keeps_channels(tmp_path):
    left, right = sine(300, 0.25, 8000), sine(500, 0.25, 8000, amplitude=0.2)
    path = write(tmp_path / "stereo.wav", np.stack([left, right]), 8000, subtype="FLOAT")
    mono = load_audio(path, sample_rate=8000, channels=1)
    np.testing.assert_allclose(mono[0], (left + right) / 2, atol=1e-7)
    both = load_audio(path, sample_rate=8000, channels=None)
    np.testing.assert_array_equal(both, np.stack([left, right]))
    assert load_audio(path, sample_rate=8000, channels=2).shape == (2, left.size)


def test_one_channel_of_a_file(tmp_path):
    left, right = sine(300, 0.25, 8000), sine(500, 0.25, 8000)
    path = write(tmp_path / "ikala.wav", np.stack([left, right]), 8000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, sample_rate=8000, channels=1, channel=1)[0], right)
    with pytest.raises(AudioError, match=r"ikala\.wav: has 2 channel\(s\), channel 2 was asked for"):
        load_audio(path, sample_rate=8000, channels=1, channel=2)


def test_mono_is_copied_to_every_channel_and_other_layouts_are_refused(tmp_path):
    x = sine(300, 0.25, 8000)
    path = write(tmp_path / "mono.wav", x, 8000, subtype="FLOAT")
    out = load_audio(path, sample_rate=8000, channels=2)
    np.testing.assert_array_equal(out, np.stack([x, x]))
    three = write(tmp_path / "three.wav", np.stack([x, x, x]), 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"three\.wav: has 3 channels; cannot map them to 2"):
        load_audio(three, sample_rate=8000, channels=2)
    assert match_channels(np.zeros((3, 4), np.float32), 1).shape == (1, 4)


def test_clipping_after_resampling(tmp_path):
    x = sine(200, 0.5, 8000, amplitude=1.5)
    path = write(tmp_path / "loud.wav", x, 8000, subtype="FLOAT")
    clipped = load_audio(path, sample_rate=4000, channels=1, clip=True)
    raw = load_audio(path, sample_rate=4000, channels=1, clip=False)
    assert clipped.max() == 1.0 and clipped.min() == -1.0
    assert raw.max() > 1.4
    np.testing.assert_array_equal(clipped, np.clip(raw, -1, 1))


@pytest.mark.parametrize("extension", [".flac", ".ogg", ".mp3"])
def test_compressed_formats(tmp_path, extension):
    x = sine(440, 1.0, 16000, amplitude=0.4)
    path = write(tmp_path / f"a{extension}", x, 16000)
    out = load_audio(path, sample_rate=16000, channels=1)
    assert abs(out.shape[1] - x.size) < 2000  # mp3 may pad
    if extension == ".flac":  # lossless (16 bit)
        np.testing.assert_allclose(out[0], x, atol=1 / 2**15)
    else:  # lossy: the spectrum's peak stays at 440 Hz
        spectrum = np.abs(np.fft.rfft(out[0, :16000] if out.shape[1] >= 16000 else out[0]))
        freqs = np.fft.rfftfreq(min(out.shape[1], 16000), 1 / 16000)
        assert abs(freqs[np.argmax(spectrum)] - 440) < 5


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"nothere\.wav: no such file"):
        load_audio(tmp_path / "nothere.wav", sample_rate=8000, channels=1)


def test_unreadable_file_names_the_file(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not audio" * 20)
    with pytest.raises(SepkitError) as info:
        load_audio(path, sample_rate=8000, channels=1)
    message = str(info.value)
    assert message.startswith(str(path)) and "cannot read audio" in message
    assert "\n" not in message


def test_empty_file(tmp_path):
    path = write(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(AudioError, match=r"empty\.wav: the file holds no samples"):
        load_audio(path, sample_rate=8000, channels=1)


@pytest.mark.parametrize("extension", [".wav", ".flac"])
def test_truncated_file(tmp_path, extension):
    full = write(tmp_path / f"full{extension}", sine(300, 1.0, 8000), 8000)
    cut = tmp_path / f"cut{extension}"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=rf"cut\{extension}: (truncated|cannot decode)"):
        load_audio(cut, sample_rate=8000, channels=1)


def test_nan_samples(tmp_path):
    x = sine(300, 0.1, 8000)
    x[17] = np.nan
    path = write(tmp_path / "nan.wav", x, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: 1 NaN or infinite sample"):
        load_audio(path, sample_rate=8000, channels=1)


def test_audio_info_reads_the_header(tmp_path):
    path = write(tmp_path / "a.flac", np.stack([sine(300, 0.5, 11025)] * 2), 11025)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (11025, 2, 5512)
    assert info.seconds == pytest.approx(0.5, abs=1e-3)
