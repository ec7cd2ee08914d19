"""ExcerptSampler: positions, context padding, uniform track choice, loudness, seeding and resuming."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from pydantic import PositiveInt

from sepkit.component import ComponentConfig
from sepkit.data.sampler import ExcerptSampler
from sepkit.errors import NotImplementedComponentError, ShapeError
from sepkit.representation import Representation
from sepkit.separator import Window


class FramingConfig(ComponentConfig):
    hop: PositiveInt = 4


class Framing(Representation):
    """Test representation: non-overlapping frames of ``hop`` samples, features log1p(|x|)."""

    Config = FramingConfig

    @property
    def num_bins(self) -> int:
        return self.config.hop

    @property
    def hop_length(self) -> int:
        return self.config.hop

    @property
    def frame_length(self) -> int:
        return self.config.hop

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.config.hop

    def encode(self, waveform):
        b, c, length = waveform.shape
        t = length // self.config.hop
        frames = waveform[..., : t * self.config.hop].reshape(b, c, t, self.config.hop).transpose(-1, -2)
        return torch.log1p(frames.abs()), None

    def decode(self, features, context, length):
        raise NotImplementedError

    def to_linear(self, features):
        return torch.expm1(features)

    def from_linear(self, magnitudes):
        return torch.log1p(magnitudes)


HOP = 4
WINDOW = Window(input_frames=12, output_frames=4, context_before=3, context_after=5, input_bins=HOP, output_bins=HOP)


def representation() -> Framing:
    return Framing(FramingConfig(hop=HOP), sample_rate=100)


def ramp_track(index: int, frames: int, stems: int = 1, channels: int = 1) -> np.ndarray:
    """A track whose every sample is 1000 * (index + 1) + frame + 1 (so features identify the frame)."""
    frame_values = 1000.0 * (index + 1) + np.arange(frames) + 1
    x = np.repeat(frame_values, HOP).astype(np.float32)
    return np.broadcast_to(x, (stems, channels, x.size)).copy()


def padded_features(track: np.ndarray) -> torch.Tensor:
    features, _ = representation().encode(torch.as_tensor(track))
    return torch.nn.functional.pad(features, (WINDOW.context_before, WINDOW.context_after))


def test_excerpts_are_slices_of_the_padded_encoded_tracks():
    tracks = [ramp_track(0, 10, stems=3, channels=2), ramp_track(1, 25, stems=3, channels=2)]
    sampler = ExcerptSampler(tracks, representation(), WINDOW, device="cpu", seed=1)
    assert (sampler.num_tracks, sampler.total_frames, sampler.num_stems) == (2, 35, 3)
    indices, starts = sampler.draw(64)
    batch = sampler.excerpts(indices, starts)
    assert batch.shape == (64, 3, 2, HOP, WINDOW.input_frames) and batch.dtype == torch.float32
    padded = [padded_features(t) for t in tracks]
    for b in range(64):
        k, s = int(indices[b]), int(starts[b])
        torch.testing.assert_close(batch[b], padded[k][..., s : s + WINDOW.input_frames], rtol=0, atol=0)


def test_output_region_stays_inside_the_track_and_every_start_occurs():
    tracks = [ramp_track(0, 7), ramp_track(1, 20)]
    sampler = ExcerptSampler(tracks, representation(), WINDOW, seed=0)
    indices, starts = sampler.draw(4000)
    batch = sampler.excerpts(indices, starts)
    before, out = WINDOW.context_before, WINDOW.output_frames
    values = torch.expm1(batch[:, 0, 0, 0, :])  # the encoded sample value per frame (0 = padding)
    central = values[:, before : before + out]
    assert bool((central > 0).all()), "an output frame fell outside its track"
    track_of = torch.div(central, 1000, rounding_mode="floor") - 1
    assert bool((track_of == indices[:, None]).all())
    for k, frames in enumerate((7, 20)):
        seen = set(starts[indices == k].tolist())
        assert seen == set(range(frames - out + 1))  # each valid start, nothing else
    # Context reaches into the zero padding exactly at the track edges.
    first = batch[(indices == 0) & (starts == 0)][0, 0, 0, 0]
    assert bool((first[:before] == 0).all()) and bool((first[before : before + 7] > 0).all())
    last = batch[(indices == 1) & (starts == 20 - out)][0, 0, 0, 0]
    after = WINDOW.context_after
    assert bool((last[-after:] == 0).all()) and bool((last[:-after] > 0).all())


def test_tracks_are_drawn_uniformly_whatever_their_length():
    tracks = [ramp_track(0, 5), ramp_track(1, 200), ramp_track(2, 40)]
    sampler = ExcerptSampler(tracks, representation(), WINDOW, seed=3)
    indices, _ = sampler.draw(30000)
    shares = torch.bincount(indices, minlength=3).float() / 30000
    torch.testing.assert_close(shares, torch.full((3,), 1 / 3), atol=0.015, rtol=0)


def test_seeded_reproducible_and_resumable():
    tracks = [ramp_track(0, 30), ramp_track(1, 50)]
    a = ExcerptSampler(tracks, representation(), WINDOW, seed=7, loudness=(0.2, 1.2))
    b = ExcerptSampler(tracks, representation(), WINDOW, seed=7, loudness=(0.2, 1.2))
    c = ExcerptSampler(tracks, representation(), WINDOW, seed=8, loudness=(0.2, 1.2))
    first = a.sample(16)
    torch.testing.assert_close(first, b.sample(16), rtol=0, atol=0)
    assert not torch.equal(first, c.sample(16))
    state = a.state_dict()
    assert state["generator"].dtype == torch.uint8
    expected = [a.sample(16) for _ in range(3)]
    a.load_state_dict(state)
    for batch in expected:
        torch.testing.assert_close(a.sample(16), batch, rtol=0, atol=0)


def test_loudness_scales_linear_magnitudes_per_example():
    tracks = [ramp_track(0, 30, stems=2), ramp_track(1, 50, stems=2)]
    sampler = ExcerptSampler(tracks, representation(), WINDOW, seed=5, loudness=(0.2, 1.2))
    state = sampler.state_dict()
    plain = sampler.excerpts(*sampler.draw(256))
    sampler.load_state_dict(state)
    augmented = sampler.sample(256)
    linear_plain, linear_aug = torch.expm1(plain), torch.expm1(augmented)
    mask = linear_plain > 0
    ratio = torch.where(mask, linear_aug / linear_plain.clamp_min(1e-12), torch.nan)
    per_example = ratio.flatten(1).nanmean(1)
    spread = (ratio.flatten(1) - per_example[:, None]).abs().nan_to_num(0).amax(1)
    assert float(spread.max()) < 1e-3  # one factor per example, for every stem, bin and frame
    assert float(per_example.min()) >= 0.2 - 1e-4 and float(per_example.max()) <= 1.2 + 1e-4
    assert float(per_example.std()) > 0.2  # factors differ between examples (U(0.2, 1.2): std 0.29)
    assert bool((augmented[~mask] == 0).all())  # silence (padding) stays silence


def test_paired_sampler_is_not_augmented():
    sampler = ExcerptSampler([ramp_track(0, 30)], representation(), WINDOW, seed=2)
    state = sampler.state_dict()
    plain = sampler.excerpts(*sampler.draw(32))
    sampler.load_state_dict(state)
    torch.testing.assert_close(sampler.sample(32), plain, rtol=0, atol=0)


def test_short_tracks_are_left_out_with_a_warning():
    tracks = [ramp_track(0, 3), ramp_track(1, 30)]
    with pytest.warns(UserWarning, match=r"1 track\(s\) shorter than one excerpt \(4 output frames, 0.16 s\) left out: tiny"):
        sampler = ExcerptSampler(tracks, representation(), WINDOW, names=["tiny", "long"])
    assert sampler.num_tracks == 1 and sampler.names == ["long"] and sampler.skipped == ["tiny"]
    indices, _ = sampler.draw(10)
    assert bool((indices == 0).all())


def test_no_track_long_enough_is_an_error():
    with pytest.raises(ShapeError, match=r"no track is long enough for one excerpt: .* needs 4 frames \(0.16 s\) .*\(a, b\)"):
        ExcerptSampler([ramp_track(0, 3), ramp_track(1, 2)], representation(), WINDOW, names=["a", "b"])


def test_tracks_must_share_their_layout():
    with pytest.raises(ShapeError, match=r"second: 2 stems x 1 channels, the first track has 1 x 1"):
        ExcerptSampler([ramp_track(0, 30), ramp_track(1, 30, stems=2)], representation(), WINDOW, names=["first", "second"])
    with pytest.raises(ShapeError, match=r"tracks are \[stems, channels, samples\]"):
        ExcerptSampler([np.zeros((1, 100), np.float32)], representation(), WINDOW)


def test_torch_tracks_and_the_device():
    track = torch.as_tensor(ramp_track(0, 30))
    sampler = ExcerptSampler([track], representation(), WINDOW, device=torch.device("cpu"), seed=0)
    batch = sampler.sample(8)
    assert batch.device.type == "cpu" and sampler.buffer.device.type == "cpu"
    assert "1 tracks" in repr(sampler)


def test_with_the_magnitude_stft_representation():
    from sepkit.plugins import registry

    entry = registry("representation").get("magnitude-stft")
    config = entry.cls.parse_config({"n_fft": 512, "hop_length": 256})
    try:
        stft = entry.cls(config, sample_rate=8192)
    except NotImplementedComponentError:
        pytest.skip("magnitude-stft is still a placeholder")
    window = Window(input_frames=158, output_frames=66, context_before=46, context_after=46, input_bins=350, output_bins=258)
    rng = np.random.default_rng(0)
    tracks = [(0.3 * rng.standard_normal((3, 1, 8192 * 5))).astype(np.float32) for _ in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = ExcerptSampler(tracks, stft, window, seed=0, loudness=None)
    indices, starts = sampler.draw(4)
    batch = sampler.excerpts(indices, starts)
    assert batch.shape == (4, 3, 1, 257, 158)
    for b in range(4):
        features, _ = stft.encode(torch.as_tensor(tracks[int(indices[b])]))
        padded = torch.nn.functional.pad(features, (46, 46))
        s = int(starts[b])
        torch.testing.assert_close(batch[b], padded[..., s : s + 158])


def test_from_loaded_tracks_uses_their_names():
    from sepkit.data.loading import LoadedTrack

    loaded = [LoadedTrack("short one", "s", ramp_track(0, 2)), LoadedTrack("long one", "s", ramp_track(1, 40))]
    with pytest.warns(UserWarning, match="left out: short one"):
        sampler = ExcerptSampler.from_loaded(loaded, representation(), WINDOW, seed=0)
    assert sampler.names == ["long one"]
