"""The ``synthetic`` dataset plugin: determinism, exact stems, roles, cache reuse, and musical sanity."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from pydantic import ValidationError

from sepkit.errors import SepkitError
from sepkit.plugins import registry
from sepkit_plugins.synthetic.dataset import SyntheticDataset
from sepkit_plugins.synthetic.generator import DOMAINS, generate_item, midi_to_hz

SOURCES = ["accompaniment", "vocals"]


def make(tmp_path, role="paired", sources=SOURCES, **config) -> SyntheticDataset:
    values = {"tracks": 2, "seconds": 2.0, "cache_dir": str(tmp_path), **config}
    return SyntheticDataset(SyntheticDataset.parse_config(values), role=role, sources=list(sources))


def read(track, stem, dtype="float64"):
    samples, rate = soundfile.read(track.stems[stem][0].path, dtype=dtype)
    return samples, rate


def all_files(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_registered_through_the_entry_point():
    entry = registry("dataset").get("synthetic")
    assert entry.cls is SyntheticDataset
    assert entry.provider.distribution == "sepkit"


def test_same_config_gives_bit_identical_files(tmp_path):
    first = make(tmp_path / "one").tracks()
    second = make(tmp_path / "two").tracks()
    assert [t.name for t in first] == [t.name for t in second] == ["a-train-0000", "a-train-0001"]
    for a, b in zip(first, second):
        for stem in ("mixture", "vocals", "accompaniment"):
            assert a.stems[stem][0].path != b.stems[stem][0].path
            assert a.stems[stem][0].path.read_bytes() == b.stems[stem][0].path.read_bytes()


@pytest.mark.parametrize("change", [{"split": "validation"}, {"domain": "b"}, {"seed": 1}])
def test_split_domain_and_seed_change_the_audio(tmp_path, change):
    base, _ = read(make(tmp_path).tracks()[0], "mixture")
    other, _ = read(make(tmp_path, **change).tracks()[0], "mixture")
    assert base.shape == other.shape
    assert np.abs(base - other).max() > 0.1
    # Items within a split differ too.
    second, _ = read(make(tmp_path).tracks()[1], "mixture")
    assert np.abs(base - second).max() > 0.1


def test_mixture_is_exactly_the_sum_of_the_stems_and_levels_are_bounded(tmp_path):
    tracks = make(tmp_path, tracks=3, split="test", domain="b").tracks()
    for track in tracks:
        for dtype in ("float32", "float64"):
            mixture, _ = read(track, "mixture", dtype)
            vocals, _ = read(track, "vocals", dtype)
            accompaniment, _ = read(track, "accompaniment", dtype)
            assert np.array_equal(mixture, vocals + accompaniment)
            assert np.isfinite(mixture).all()
        assert np.abs(mixture).max() <= 0.9
        assert np.abs(mixture).max() == pytest.approx(float(track.metadata["mixture_peak"]), abs=1e-4)
        # The drawn vocal-to-accompaniment ratio is what the files hold.
        ratio = 20 * np.log10(np.sqrt(np.mean(vocals**2)) / np.sqrt(np.mean(accompaniment**2)))
        assert ratio == pytest.approx(float(track.metadata["vocal_to_accompaniment_db"]), abs=0.05)
        assert -3.0 <= ratio <= 6.0 + 0.05


def test_track_count_duration_and_sample_rate(tmp_path):
    dataset = make(tmp_path, tracks=3, seconds=1.5, sample_rate=16000, name="demo-a")
    tracks = dataset.tracks()
    assert len(tracks) == 3
    assert dataset.name == "demo-a" and {t.subset for t in tracks} == {"demo-a"}
    for track in tracks:
        for stem in ("mixture", "vocals", "accompaniment"):
            info = soundfile.info(str(track.stems[stem][0].path))
            assert (info.frames, info.samplerate, info.channels, info.subtype) == (24000, 16000, 1, "PCM_16")


def test_default_track_counts_per_split(tmp_path):
    # No tracks() call: only the configuration is resolved, nothing is generated.
    counts = {"paired": 24, "validation": 6, "test": 6, "mixtures": 16}
    for role, expected in counts.items():
        dataset = SyntheticDataset(SyntheticDataset.parse_config({"cache_dir": str(tmp_path)}), role=role, sources=SOURCES)
        assert dataset.track_count == expected
    solo = SyntheticDataset(SyntheticDataset.parse_config({"cache_dir": str(tmp_path)}), role="solo", sources=["vocals"])
    assert (solo.split, solo.track_count) == ("vocals", 16)
    assert not any(tmp_path.iterdir())


def test_roles_list_the_stems_they_need(tmp_path):
    paired = make(tmp_path).tracks()[0]
    assert sorted(paired.stems) == ["accompaniment", "mixture", "vocals"]
    vocals_only = make(tmp_path, sources=["vocals"]).tracks()[0]
    assert sorted(vocals_only.stems) == ["mixture", "vocals"]

    mixtures = make(tmp_path, role="mixtures")
    assert mixtures.split == "mixtures"
    assert [sorted(t.stems) for t in mixtures.tracks()] == [["mixture"], ["mixture"]]
    assert {p.name for p in all_files(mixtures.folder)} == {"mixture.wav", "manifest.json"}

    for source in SOURCES:
        solo = make(tmp_path, role="solo", sources=[source])
        assert solo.split == source
        assert [sorted(t.stems) for t in solo.tracks()] == [[source], [source]]
        assert {p.name for p in all_files(solo.folder)} == {f"{source}.wav", "manifest.json"}
    # A paired split can also feed the unpaired roles.
    assert sorted(make(tmp_path, role="solo", sources=["vocals"], split="train").tracks()[0].stems) == ["vocals"]


def test_unpaired_pools_are_independent_draws():
    common = {"seed": 0, "domain": "b", "index": 0, "seconds": 2.0, "sample_rate": 8192}
    from_mixtures = generate_item(split="mixtures", **common)
    from_vocals = generate_item(split="vocals", **common)
    from_accompaniment = generate_item(split="accompaniment", **common)
    assert not np.array_equal(from_mixtures.vocals, from_vocals.vocals)
    assert not np.array_equal(from_mixtures.accompaniment, from_accompaniment.accompaniment)
    assert not np.array_equal(from_vocals.vocals, from_accompaniment.vocals)


def test_bad_sources_splits_and_keys_are_refused(tmp_path):
    with pytest.raises(
        SepkitError,
        match=r"synthetic dataset 'synthetic' has sources drums, bass, other, vocals, accompaniment; the recipe asks for 'piano'",
    ):
        make(tmp_path, sources=["vocals", "piano"])
    with pytest.raises(SepkitError, match=r"accompaniment is the sum of drums, bass and other, so it cannot be a source beside drums"):
        make(tmp_path, sources=["vocals", "accompaniment", "drums"])
    with pytest.raises(SepkitError, match=r"split 'vocals' holds no drums solo recordings; use split 'drums'"):
        make(tmp_path, role="solo", sources=["drums"], split="vocals")
    with pytest.raises(SepkitError, match=r"split 'mixtures' cannot serve the paired role"):
        make(tmp_path, split="mixtures")
    with pytest.raises(SepkitError, match=r"split 'vocals' cannot serve the test role"):
        make(tmp_path, role="test", split="vocals")
    with pytest.raises(SepkitError, match=r"split 'accompaniment' holds no vocals solo recordings; use split 'vocals'"):
        make(tmp_path, role="solo", sources=["vocals"], split="accompaniment")
    with pytest.raises(SepkitError, match=r"split 'vocals' cannot serve the mixtures role"):
        make(tmp_path, role="mixtures", split="vocals")
    with pytest.raises(ValidationError, match="root"):
        SyntheticDataset.parse_config({"root": "x"})
    with pytest.raises(ValidationError, match="domain"):
        SyntheticDataset.parse_config({"domain": "c"})
    with pytest.raises(ValidationError, match="seconds"):
        SyntheticDataset.parse_config({"seconds": 0.1})
    with pytest.raises(ValidationError, match="channels"):
        SyntheticDataset.parse_config({"channels": 3})


def test_cache_is_reused_and_repaired(tmp_path):
    dataset = make(tmp_path)
    dataset.tracks()
    files = all_files(dataset.folder)
    assert len(files) == 2 * 6 + 1  # mixture and five stems per song, and the manifest
    stamps = {p: p.stat().st_mtime_ns for p in files}
    contents = {p: p.read_bytes() for p in files}

    again = make(tmp_path)
    assert again.folder == dataset.folder
    again.tracks()
    assert {p: p.stat().st_mtime_ns for p in all_files(dataset.folder)} == stamps

    # A missing file makes the next use regenerate the split, with the same bytes.
    victim = dataset.folder / "a-train-0001" / "vocals.wav"
    victim.unlink()
    make(tmp_path).tracks()
    assert {p: p.read_bytes() for p in all_files(dataset.folder)} == contents
    assert not [p for p in dataset.folder.rglob("*.tmp")]


def test_cache_folder_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEPKIT_CACHE_DIR", str(tmp_path / "env"))
    dataset = SyntheticDataset(SyntheticDataset.parse_config({"tracks": 1, "seconds": 1.0}), role="test", sources=SOURCES)
    assert dataset.folder.parent == tmp_path / "env" / "synthetic"
    track = dataset.tracks()[0]
    assert track.stems["mixture"][0].path.is_relative_to(tmp_path / "env")


def autocorrelation_pitch(frame: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """f0 (Hz) and periodicity (normalised autocorrelation at the period) of one frame.

    Searches 60-1500 Hz and takes the shortest lag whose peak reaches 90% of the best one (to avoid
    sub-octave errors), refined by parabolic interpolation.
    """
    frame = frame - frame.mean()
    n = len(frame)
    spectrum = np.fft.rfft(frame, 2 * n)
    ac = np.fft.irfft(np.abs(spectrum) ** 2)[:n]
    ac = ac / ac[0] * n / (n - np.arange(n))  # unbiased: a periodic frame scores 1 at its period
    low, high = int(sample_rate / 1500), int(sample_rate / 60)
    window = ac[low : high + 1]
    peaks = np.flatnonzero((window[1:-1] >= window[:-2]) & (window[1:-1] >= window[2:])) + 1
    best = window[peaks].max()
    lag = low + peaks[window[peaks] >= 0.9 * best][0]
    a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c)
    return sample_rate / (lag + shift), float(b)


@pytest.mark.parametrize("domain", ["a", "b"])
def test_voice_is_harmonic_and_sings_its_notes_within_the_domain_range(domain):
    rate = 16000
    profile = DOMAINS[domain]
    item = generate_item(seed=3, domain=domain, split="train", index=0, seconds=6.0, sample_rate=rate)
    low_hz, high_hz = profile.voice_hz
    tolerance = profile.vibrato_semitones[1] + 0.2  # vibrato plus estimation error, in semitones
    checked = []
    for note in item.notes:
        if note.end - note.start < 0.2:
            continue
        middle = int((note.start + note.end) / 2 * rate)
        frame = item.vocals[middle - 480 : middle + 480].astype(np.float64)  # 60 ms
        f0, periodicity = autocorrelation_pitch(frame, rate)
        assert periodicity > 0.8, f"note at {note.start:.2f}s is not periodic ({periodicity:.2f})"
        assert low_hz <= f0 <= high_hz
        assert abs(12 * np.log2(f0 / midi_to_hz(note.midi))) < tolerance, (note, f0)
        checked.append(f0)
    assert len(checked) >= 5
    # librosa's YIN agrees with the sung notes (median pitch over voiced frames).
    import librosa

    yin = librosa.yin(item.vocals.astype(np.float64), fmin=60, fmax=1500, sr=rate, frame_length=1024, hop_length=256)
    times = librosa.frames_to_time(np.arange(len(yin)), sr=rate, hop_length=256)
    sung = np.zeros(len(yin), dtype=bool)
    for note in item.notes:
        sung |= (times > note.start + 0.05) & (times < note.end - 0.05)
    assert low_hz <= np.median(yin[sung]) <= high_hz
    assert abs(12 * np.log2(np.median(yin[sung]) / np.median(checked))) < 2.0
    # Between phrases the voice is silent.
    rests = np.ones(len(item.vocals), dtype=bool)
    for note in item.notes:
        rests[int(note.start * rate) : int(note.end * rate) + int(0.05 * rate)] = False
    assert rests.any() and np.abs(item.vocals[rests]).max() == 0.0


def test_domains_differ_in_pitch_and_tempo():
    def median_pitch_and_tempo(domain):
        pitches, tempi = [], []
        for index in range(4):
            item = generate_item(seed=0, domain=domain, split="train", index=index, seconds=2.0, sample_rate=8192)
            pitches += [n.midi for n in item.notes]
            tempi.append(float(item.metadata["tempo_bpm"]))
        return np.median(pitches), np.median(tempi)

    pitch_a, tempo_a = median_pitch_and_tempo("a")
    pitch_b, tempo_b = median_pitch_and_tempo("b")
    assert pitch_b - pitch_a >= 6
    assert tempo_b - tempo_a >= 10


@pytest.mark.parametrize("domain", ["a", "b"])
def test_accompaniment_has_percussion_on_the_beat_grid(domain):
    rate = 8192
    item = generate_item(seed=1, domain=domain, split="test", index=2, seconds=4.0, sample_rate=rate)
    beat = 60.0 / float(item.metadata["tempo_bpm"])
    grid = rate * beat / DOMAINS[domain].hihats_per_beat
    width = int(0.015 * rate)
    for name in ("snare", "hihat", "kick"):
        onsets = item.drum_onsets[name]
        assert len(onsets) >= 2
        # On the grid (the logged tempo has two decimals: a few samples of drift over 4 s).
        assert np.abs(onsets / grid - np.round(onsets / grid)).max() * grid <= 3.0
    # High-band energy (second difference) jumps at snare and hi-hat hits, in the accompaniment only.
    onsets = np.concatenate([item.drum_onsets["snare"], item.drum_onsets["hihat"]])
    onsets = onsets[(onsets > width) & (onsets < len(item.accompaniment) - width)]

    def jump_at_hits(samples: np.ndarray) -> float:
        high = np.diff(samples.astype(np.float64), n=2) ** 2
        return float(np.median([high[p : p + width].mean() / max(high[p - width : p].mean(), 1e-12) for p in onsets]))

    assert jump_at_hits(item.accompaniment) > 10.0
    assert jump_at_hits(item.vocals) < 1.5
    # ... and they are the drums stem's: the tonal stems have none
    assert jump_at_hits(item.drums) > 10.0
    assert jump_at_hits(item.bass) < 3.0


FOUR = ["drums", "bass", "other", "vocals"]


@pytest.mark.parametrize("channels", [1, 2])
def test_four_stems_sum_exactly_to_the_accompaniment_and_the_mixture(tmp_path, channels):
    tracks = make(tmp_path, tracks=2, split="validation", domain="b", channels=channels, sources=FOUR).tracks()
    assert sorted(tracks[0].stems) == sorted(["mixture", *FOUR])
    folder = tracks[0].stems["mixture"][0].path.parent
    assert {p.name for p in folder.iterdir()} == {f"{s}.wav" for s in ("mixture", *FOUR, "accompaniment")}
    for track in tracks:
        for dtype in ("float32", "float64"):
            stems = {s: read(track, s, dtype)[0] for s in ("mixture", *FOUR)}
            accompaniment, _ = soundfile.read(folder.parent / track.name / "accompaniment.wav", dtype=dtype)
            assert stems["mixture"].shape == ((16384,) if channels == 1 else (16384, 2))
            assert np.array_equal(stems["drums"] + stems["bass"] + stems["other"], accompaniment)
            assert np.array_equal(stems["vocals"] + accompaniment, stems["mixture"])
        for source in FOUR:
            assert np.sqrt(np.mean(stems[source] ** 2)) > 0.01, source  # every stem sounds


def test_two_and_four_stem_recipes_share_one_generation(tmp_path):
    """The paired files are the same whichever sources a recipe names: one cache folder."""
    two = make(tmp_path)
    four = make(tmp_path, sources=FOUR)
    assert two.folder == four.folder
    assert two.tracks()[0].stems["mixture"] == four.tracks()[0].stems["mixture"]


def spectral_centroid(samples: np.ndarray, rate: int) -> float:
    power = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    return float((np.fft.rfftfreq(len(samples), 1 / rate) * power).sum() / power.sum())


@pytest.mark.parametrize("domain", ["a", "b"])
def test_bass_and_other_stems_are_their_instruments(domain):
    rate = 8192
    item = generate_item(seed=1, domain=domain, split="test", index=2, seconds=4.0, sample_rate=rate)
    # bass: plucked notes an octave under the chord roots (MIDI 36-66 with the key), energy at its
    # fundamentals; other: the triads above it
    bass, other = spectral_centroid(item.bass, rate), spectral_centroid(item.other, rate)
    assert 40.0 < bass < 250.0 and other > 1.5 * bass
    power = np.abs(np.fft.rfft(item.bass.astype(np.float64))) ** 2
    assert power[np.fft.rfftfreq(len(item.bass), 1 / rate) < 300.0].sum() > 0.95 * power.sum()
    # (the drums stem holds the hits: test_accompaniment_has_percussion_on_the_beat_grid)


def test_source_pools_hold_their_one_stem(tmp_path):
    for source in ("drums", "bass", "other"):
        solo = make(tmp_path, role="solo", sources=[source])
        assert (solo.split, solo.track_count) == (source, 2)
        assert [sorted(t.stems) for t in solo.tracks()] == [[source], [source]]
        assert {p.name for p in all_files(solo.folder)} == {f"{source}.wav", "manifest.json"}
    # Pools are independent draws, of each other and of the paired splits.
    common = {"seed": 0, "domain": "b", "index": 0, "seconds": 2.0, "sample_rate": 8192}
    assert not np.array_equal(generate_item(split="drums", **common).drums, generate_item(split="bass", **common).drums)
    assert not np.array_equal(generate_item(split="drums", **common).drums, generate_item(split="train", **common).drums)


def test_stereo_places_each_source_and_keeps_the_music_of_the_mono_item():
    common = {"seed": 2, "domain": "a", "split": "train", "index": 1, "seconds": 3.0, "sample_rate": 8192}
    mono = generate_item(**common)
    stereo = generate_item(channels=2, **common)
    # The same draws: notes, drums and levels; only the placement is new.
    assert stereo.notes == mono.notes
    assert all(np.array_equal(stereo.drum_onsets[k], mono.drum_onsets[k]) for k in mono.drum_onsets)
    assert stereo.metadata["tempo_bpm"] == mono.metadata["tempo_bpm"]
    for source in FOUR:
        left, right = (channel.astype(np.float64) for channel in getattr(stereo, source))
        assert getattr(stereo, source).shape == (2, len(mono.mixture))
        pan = float(stereo.metadata[f"pan_{source}"])
        # constant-power panning: the level difference between the channels follows the drawn pan
        angle = 0.25 * np.pi * (pan + 1.0)
        expected_db = 20 * np.log10(np.sin(angle) / np.cos(angle))
        measured_db = 10 * np.log10(np.mean(right**2) / np.mean(left**2))
        width = float(stereo.metadata[f"width_{source}"])
        if width == 0:
            assert measured_db == pytest.approx(expected_db, abs=0.05), source
        else:  # the widening copy moves the levels by up to a few dB, never across the centre
            assert measured_db == pytest.approx(expected_db, abs=0.5 + 15 * width), source
            assert abs(expected_db) < 1.0 or np.sign(measured_db) == np.sign(expected_db), source
        # width: the channels are not one signal scaled (except the bass, which has none)
        correlation = np.corrcoef(left, right)[0, 1]
        assert (correlation > 0.999) if width == 0 else (correlation < 0.999), source
        # the downmix is the mono item's source up to a gain (same notes, same hits)
        downmix = left + right
        reference = getattr(mono, source).astype(np.float64)
        assert np.corrcoef(downmix, reference)[0, 1] > 0.9, source
    assert float(stereo.metadata["pan_other"]) ** 2 >= 0.3**2  # the chords are off centre
    assert np.abs(stereo.mixture).max() <= 0.9
    ratio = 20 * np.log10(np.sqrt(np.mean(stereo.vocals.astype(np.float64) ** 2) / np.mean(stereo.accompaniment.astype(np.float64) ** 2)))
    assert ratio == pytest.approx(float(stereo.metadata["vocal_to_accompaniment_db"]), abs=0.05)


def test_stereo_files(tmp_path):
    mono = make(tmp_path, sources=FOUR)
    stereo = make(tmp_path, sources=FOUR, channels=2)
    assert mono.folder != stereo.folder
    for stem in ("mixture", *FOUR):
        info = soundfile.info(str(stereo.tracks()[0].stems[stem][0].path))
        assert (info.channels, info.subtype) == (2, "PCM_16")


def test_stereo_images_keep_bss_eval_v4_well_posed():
    """One channel of a source must not be a short filter of the other: BSS Eval v4 explains each
    estimate by 512-tap filters of the reference channels, and an ill-posed projection turns a
    near-perfect estimate's SIR and ISR into noise. A stereo estimate scores about as its mono
    counterpart does."""
    from sepkit.evaluation.protocols import ScoringInput, get_protocol

    common = {"seed": 1, "domain": "b", "split": "test", "index": 0, "seconds": 2.0, "sample_rate": 8192}
    protocol = get_protocol("bsseval-v4")
    scores = {}
    for channels in (1, 2):
        item = generate_item(channels=channels, **common)
        references = np.stack([item.accompaniment, item.vocals]).astype(np.float64).reshape(2, channels, -1)
        noise = 0.001 * np.random.default_rng(0).standard_normal(references.shape)
        estimates = references + 0.1 * references[::-1] + noise  # each estimate leaks 10% of the other source
        item_input = ScoringInput("song", "b", SOURCES, references, estimates, references.sum(axis=0), 8192)
        scores[channels] = protocol.score(item_input).metrics
    for source in SOURCES:
        assert scores[2][source]["SDR"] == pytest.approx(scores[1][source]["SDR"], abs=1.0), source
        for metric in ("ISR", "SIR"):
            assert scores[2][source][metric] > scores[1][source][metric] - 3.0, (source, metric, scores)
        assert scores[2][source]["SIR"] > 10.0, source
