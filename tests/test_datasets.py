"""Dataset layouts (fake trees of each), splits, stem derivation, the loader, its cache and bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import sepkit_plugins.datasets
from sepkit.data import load_tracks, role_stems
from sepkit.data.splits import halves, thirds
from sepkit.dataset import DatasetError, StemFile, Track
from sepkit.plugins import registry, use_plugins

FILE_RATE = 8000  # rate of the generated files
RATE = 4000  # rate they are loaded at
SECONDS = 0.5
PAIRED = ["mixture", "accompaniment", "vocals"]
SOURCES = ["accompaniment", "vocals"]


def noise(seed: int, seconds: float = SECONDS, rate: int = FILE_RATE, channels: int = 1, amplitude: float = 0.2) -> np.ndarray:
    """[C, L] band-limited noise (below 1 kHz, so resampling to 4 kHz keeps it intact)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    spectrum = np.fft.rfft(rng.standard_normal((channels, n)), axis=-1)
    spectrum[:, np.fft.rfftfreq(n, 1 / rate) > 1000] = 0
    x = np.fft.irfft(spectrum, n=n, axis=-1)
    return (amplitude * x / np.abs(x).max()).astype(np.float32)


def write(path: Path, audio: np.ndarray, rate: int = FILE_RATE, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.T if audio.ndim == 2 else audio, rate, subtype=subtype)
    return path


@pytest.fixture(autouse=True, scope="module")
def _only_the_dataset_layouts():
    """The built-in layouts, registered directly (other plugins cannot disturb these tests)."""
    with use_plugins(sepkit_plugins.datasets):
        yield


def dataset(kind: str, role: str = "paired", sources: list[str] | None = None, **config):
    cls = registry("dataset").get(kind).cls
    return cls(cls.parse_config(config), role=role, sources=sources if sources is not None else SOURCES)


@pytest.fixture
def load(tmp_path):
    def run(datasets, stems=PAIRED, channels=1, **kwargs):
        datasets = datasets if isinstance(datasets, list) else [datasets]
        kwargs.setdefault("cache_dir", tmp_path / "cache")
        return load_tracks(datasets, stems=stems, sample_rate=RATE, channels=channels, clip=True, **kwargs)

    return run


def resampled(x: np.ndarray) -> np.ndarray:
    import soxr

    return soxr.resample(x.T, FILE_RATE, RATE, quality="HQ").T.reshape(x.shape[0], -1)


def stem_tree(root: Path, names: list[str], *, files=("mixture", "accompaniment", "vocals"), ext=".wav") -> dict:
    """``root/<name>/{files}``; the mixture is accompaniment + vocals. Returns the generated signals."""
    signals = {}
    for i, name in enumerate(names):
        acc, voc = noise(2 * i), noise(2 * i + 1)
        parts = {"accompaniment": acc, "vocals": voc, "mixture": acc + voc}
        for stem in files:
            write(root / name / f"{stem}{ext}", parts[stem])
        signals[name] = parts
    return signals


# -- registration, splits, roles ---------------------------------------------------------------
def test_every_layout_is_registered():
    import importlib.metadata

    names = set(registry("dataset").names())
    assert names == {"stems", "files", "musdb", "dsd100", "medleydb", "ikala", "ccmixter"}
    entry_points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="sepkit")}
    assert entry_points["datasets"] == "sepkit_plugins.datasets"


def test_thirds_and_halves_are_contiguous_and_cover_everything():
    items = list(range(10))
    parts = [thirds(items, p) for p in ("unpaired", "validation", "test")]
    assert parts == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert thirds(items, "all") == items
    assert halves(list(range(50)), "first") == list(range(25))
    assert halves(list(range(50)), "second") == list(range(25, 50))
    with pytest.raises(ValueError, match="unknown thirds split 'train'"):
        thirds(items, "train")


def test_role_stems():
    assert role_stems("paired", SOURCES) == PAIRED
    assert role_stems("test", SOURCES) == PAIRED
    assert role_stems("mixtures", SOURCES) == ["mixture"]
    assert role_stems("solo", ["vocals"]) == ["vocals"]


# -- stems -------------------------------------------------------------------------------------
def test_stems_discovery_order_and_loading(tmp_path, load):
    signals = stem_tree(tmp_path / "data", ["b-song", "a-song", "C-song"])
    (tmp_path / "data" / ".hidden").mkdir()
    (tmp_path / "data" / "notes").mkdir()
    (tmp_path / "data" / "notes" / "readme.txt").write_text("not audio")
    ds = dataset("stems", root=str(tmp_path / "data"), name="mine")
    tracks = ds.tracks()
    assert [t.name for t in tracks] == ["C-song", "a-song", "b-song"]  # sorted by name (code points)
    result = load(ds)
    assert result.failed == [] and result.skipped == 0
    first = result.tracks[0]
    assert (first.name, first.subset) == ("C-song", "mine")
    assert first.audio.shape == (3, 1, int(SECONDS * RATE)) and first.audio.dtype == np.float32
    parts = signals["C-song"]
    for index, stem in enumerate(PAIRED):
        np.testing.assert_allclose(first.audio[index], resampled(parts[stem]), atol=1e-5)


def test_stems_derive_accompaniment_and_mixture(tmp_path, load):
    signals = stem_tree(tmp_path / "no-acc", ["t"], files=("mixture", "vocals"))
    stem_tree(tmp_path / "no-mix", ["t"], files=("accompaniment", "vocals"))
    derived_acc = load(dataset("stems", root=str(tmp_path / "no-acc"))).tracks[0].audio
    derived_mix = load(dataset("stems", root=str(tmp_path / "no-mix"))).tracks[0].audio
    expected = np.stack([resampled(signals["t"][s]) for s in PAIRED])
    np.testing.assert_allclose(derived_acc, expected, atol=1e-5)
    np.testing.assert_allclose(derived_mix, expected, atol=1e-5)


def test_stems_stem_files_builds_stems_from_other_files(tmp_path, load):
    root = tmp_path / "multi"
    parts = {name: noise(i) for i, name in enumerate(["bass", "drums", "other", "vocals"])}
    for name, x in parts.items():
        write(root / "song" / f"{name}.wav", x)
    ds = dataset("stems", root=str(root), stem_files={"accompaniment": ["bass", "drums", "other"]})
    audio = load(ds).tracks[0].audio
    np.testing.assert_allclose(audio[1], resampled(parts["bass"] + parts["drums"] + parts["other"]), atol=1e-5)
    np.testing.assert_allclose(audio[0], resampled(sum(parts.values())), atol=1e-5)  # mixture = sum of sources
    # Solo accompaniment from a folder with a mixture and vocals: "mixture - vocals".
    write(root / "song" / "mixture.wav", sum(parts.values()))
    solo = dataset("stems", role="solo", sources=["accompaniment"], root=str(root),
                   stem_files={"accompaniment": ["mixture", "-vocals"]})
    audio = load(solo, stems=["accompaniment"]).tracks[0].audio
    np.testing.assert_allclose(audio[0], resampled(parts["bass"] + parts["drums"] + parts["other"]), atol=1e-5)


def test_solo_source_is_never_derived_from_the_mixture_alone(tmp_path, load):
    stem_tree(tmp_path / "d", ["t1", "t2"], files=("mixture", "vocals"))
    solo = dataset("stems", role="solo", sources=["accompaniment"], root=str(tmp_path / "d"))
    with pytest.raises(DatasetError, match=r"none of its 2 track\(s\) could be loaded.*no 'accompaniment' stem"):
        load(solo, stems=["accompaniment"])


def test_stems_split_thirds(tmp_path):
    names = [f"s{i:02d}" for i in range(7)]
    stem_tree(tmp_path / "d", names, files=("mixture",))
    got = {p: [t.name for t in dataset("stems", role="mixtures", root=str(tmp_path / "d"), split=p).tracks()]
           for p in ("unpaired", "validation", "test")}
    assert got == {"unpaired": names[:2], "validation": names[2:4], "test": names[4:]}


# -- files -------------------------------------------------------------------------------------
def test_files_for_mixtures_and_solo(tmp_path, load):
    write(tmp_path / "f" / "b.wav", noise(1))
    write(tmp_path / "f" / "a.flac", noise(2), subtype="PCM_16")
    write(tmp_path / "f" / "sub" / "c.ogg", noise(3), subtype="VORBIS")
    (tmp_path / "f" / "cover.jpg").write_bytes(b"\xff\xd8")
    mixtures = dataset("files", role="mixtures", root=str(tmp_path / "f"))
    assert [t.name for t in mixtures.tracks()] == ["a", "b", "sub/c"]
    assert list(mixtures.tracks()[0].stems) == ["mixture"]
    result = load(mixtures, stems=["mixture"])
    assert len(result.tracks) == 3 and result.tracks[0].audio.shape[:2] == (1, 1)
    flat = dataset("files", role="solo", sources=["vocals"], root=str(tmp_path / "f"), recursive=False)
    assert [t.name for t in flat.tracks()] == ["a", "b"]
    audio = load(flat, stems=["vocals"]).tracks[1].audio
    np.testing.assert_allclose(audio[0], resampled(noise(1)), atol=1e-5)


def test_files_refuses_roles_that_need_references(tmp_path):
    write(tmp_path / "f" / "a.wav", noise(1))
    with pytest.raises(DatasetError, match=r"no references; use it for data.mixtures or data.solo.<source>, not data.test"):
        dataset("files", role="test", root=str(tmp_path / "f")).tracks()


# -- musdb ---------------------------------------------------------------------------------------
def musdb_tree(root: Path, names: dict[str, list[str]]) -> dict:
    signals = {}
    for subset, tracks in names.items():
        for i, name in enumerate(tracks):
            parts = {s: noise(10 * i + k) for k, s in enumerate(["bass", "drums", "other", "vocals"])}
            parts["mixture"] = sum(parts.values())
            for stem, x in parts.items():
                write(root / subset / name / f"{stem}.wav", x)
            signals[(subset, name)] = parts
    return signals


def test_musdb_wav_layout_accompaniment_and_validation_split(tmp_path, load):
    signals = musdb_tree(tmp_path / "musdb", {"train": ["Zed - Song", "ANiMAL - Rockshow"], "test": ["Al - Tune"]})
    ds = dataset("musdb", root=str(tmp_path / "musdb"))
    assert [t.name for t in ds.tracks()] == ["ANiMAL - Rockshow", "Zed - Song"]
    assert [t.name for t in dataset("musdb", root=str(tmp_path / "musdb"), split="valid").tracks()] == ["ANiMAL - Rockshow"]
    assert [t.name for t in dataset("musdb", root=str(tmp_path / "musdb"), split="train").tracks()] == ["Zed - Song"]
    assert [t.name for t in dataset("musdb", root=str(tmp_path / "musdb"), subset="all").tracks()] == [
        "ANiMAL - Rockshow", "Zed - Song", "Al - Tune"]
    test = load(dataset("musdb", root=str(tmp_path / "musdb"), subset="test"))
    parts = signals[("test", "Al - Tune")]
    np.testing.assert_allclose(test.tracks[0].audio[1], resampled(parts["bass"] + parts["drums"] + parts["other"]), atol=1e-5)
    np.testing.assert_allclose(test.tracks[0].audio[2], resampled(parts["vocals"]), atol=1e-5)
    four = load(dataset("musdb", sources=["bass", "drums", "other", "vocals"], root=str(tmp_path / "musdb"), subset="test"),
                stems=["mixture", "bass", "drums", "other", "vocals"])
    assert four.tracks[0].audio.shape[0] == 5


def test_musdb_stem_mp4_points_to_the_wav_layout(tmp_path):
    (tmp_path / "musdb" / "train").mkdir(parents=True)
    (tmp_path / "musdb" / "train" / "A - B.stem.mp4").write_bytes(b"\0" * 10)
    with pytest.raises(DatasetError, match=r"\.stem\.mp4 files, which need ffmpeg; decode them to the wav layout"):
        dataset("musdb", root=str(tmp_path / "musdb")).tracks()


def test_unknown_source_names_what_a_layout_provides(tmp_path):
    musdb_tree(tmp_path / "musdb", {"train": ["A - B"]})
    with pytest.raises(DatasetError, match=r"no source 'piano'; this layout provides bass, drums, other, vocals, accompaniment"):
        dataset("musdb", sources=["piano", "vocals"], root=str(tmp_path / "musdb")).tracks()


# -- dsd100 --------------------------------------------------------------------------------------
def dsd_tree(root: Path, dev: int, test: int) -> dict:
    signals = {}
    for part, count in (("Dev", dev), ("Test", test)):
        for i in range(count):
            name = f"{i + 1:03d} - Artist {part} - Song"
            parts = {s: noise(100 * (part == "Test") + 10 * i + k) for k, s in enumerate(["bass", "drums", "other", "vocals"])}
            for stem, x in parts.items():
                write(root / "Sources" / part / name / f"{stem}.wav", x)
            write(root / "Mixtures" / part / name / "mixture.wav", sum(parts.values()))
            signals[(part, name)] = parts
    return signals


def test_dsd100_splits_and_accompaniment(tmp_path, load):
    signals = dsd_tree(tmp_path / "DSD100", dev=2, test=6)
    root = str(tmp_path / "DSD100")
    names = {s: [t.name[:3] for t in dataset("dsd100", root=root, split=s).tracks()]
             for s in ("train", "test", "test-validation", "test-test", "all")}
    assert names["train"] == ["001", "002"]
    assert names["test"] == ["001", "002", "003", "004", "005", "006"]
    assert names["test-validation"] == ["001", "002", "003"] and names["test-test"] == ["004", "005", "006"]
    assert len(names["all"]) == 8
    result = load(dataset("dsd100", root=root, split="test-test"))
    assert result.tracks[0].subset == "DSD100"
    parts = signals[("Test", "004 - Artist Test - Song")]
    accompaniment = parts["bass"] + parts["drums"] + parts["other"]
    np.testing.assert_allclose(result.tracks[0].audio[1], resampled(accompaniment), atol=1e-5)  # mixture - vocals
    summed = load(dataset("dsd100", root=root, split="test-test", accompaniment="sum"))
    np.testing.assert_allclose(summed.tracks[0].audio[1], resampled(accompaniment), atol=1e-5)


def test_dsd100_missing_folder_names_the_layout(tmp_path):
    (tmp_path / "DSD100" / "Mixtures" / "Dev").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"Sources/Dev does not exist \(expected <root>/Sources/Dev/<track>/vocals.wav\)"):
        dataset("dsd100", root=str(tmp_path / "DSD100")).tracks()


# -- medleydb ------------------------------------------------------------------------------------
METADATA = """album: ''
artist: {artist}
composer: [Someone O'Brien, Other]
excerpt: 'no'
genre: Singer/Songwriter
has_bleed: 'no'
instrumental: '{instrumental}'
mix_filename: {name}_MIX.wav
origin: Weathervane Music
producer:
- Producer One
- Producer Two
raw_dir: {name}_RAW
stem_dir: {name}_STEMS
stems:
{stems}title: Night Owl  # a comment
version: 1.2
website: [www.example.com]
"""


def medley_tree(root: Path, name: str, instruments: list[str], *, seed: int, metadata_in_root: bool = False) -> dict:
    folder = root / "Audio" / name
    stems_text = ""
    signals = {}
    for index, instrument in enumerate(instruments, 1):
        filename = f"{name}_STEM_{index:02d}.wav"
        signals[filename] = noise(seed + index, amplitude=0.1)
        write(folder / f"{name}_STEMS" / filename, signals[filename])
        stems_text += (
            f"  S{index:02d}:\n    component: ''\n    filename: {filename}\n    instrument: {instrument}\n"
            f"    raw:\n      R01: {{filename: {name}_RAW_{index:02d}_01.wav, instrument: {instrument}}}\n"
        )
    write(folder / f"{name}_MIX.wav", 0.5 * sum(signals.values()))
    vocal = any("singer" in i or "rapper" in i for i in instruments)
    text = METADATA.format(artist=name.split("_")[0], name=name, stems=stems_text, instrumental="no" if vocal else "yes")
    metadata = (root / "Metadata" if metadata_in_root else folder) / f"{name}_METADATA.yaml"
    metadata.parent.mkdir(parents=True, exist_ok=True)
    metadata.write_text(text)
    return signals


def test_medleydb_metadata_parser_agrees_with_pyyaml(tmp_path):
    yaml = pytest.importorskip("yaml")
    from sepkit_plugins.datasets.medleydb_metadata import parse_track_metadata, parse_yaml_subset

    medley_tree(tmp_path, "Band_Song", ["female singer", "clean electric guitar", "[male rapper, vocalists]"], seed=0)
    text = (tmp_path / "Audio" / "Band_Song" / "Band_Song_METADATA.yaml").read_text()
    ours, theirs = parse_yaml_subset(text), yaml.safe_load(text)
    assert set(ours) == set(theirs)
    assert ours["stems"]["S01"] == theirs["stems"]["S01"]
    assert ours["stems"]["S03"]["instrument"] == theirs["stems"]["S03"]["instrument"] == ["male rapper", "vocalists"]
    assert ours["composer"] == theirs["composer"] and ours["producer"] == theirs["producer"]
    assert ours["title"] == theirs["title"] == "Night Owl"
    parsed = parse_track_metadata(text)
    assert parsed.stem_dir == "Band_Song_STEMS" and parsed.mix_filename == "Band_Song_MIX.wav"
    assert not parsed.instrumental
    assert [s.instruments for s in parsed.stems] == [("female singer",), ("clean electric guitar",), ("male rapper", "vocalists")]


def test_medleydb_vocals_from_metadata_and_instrumental_tracks(tmp_path, load):
    root = tmp_path / "MedleyDB"
    sung = medley_tree(root, "A_Sung", ["female singer", "acoustic guitar", "male rapper", "drum set"], seed=0)
    medley_tree(root, "B_Instrumental", ["piano", "double bass"], seed=10, metadata_in_root=True)
    paired = dataset("medleydb", root=str(root))
    assert [t.name for t in paired.tracks()] == ["A_Sung", "B_Instrumental"]
    result = load(paired)
    files = list(sung.values())
    vocals, accompaniment = files[0] + files[2], files[1] + files[3]
    audio = result.tracks[0].audio
    np.testing.assert_allclose(audio[2], resampled(vocals), atol=1e-5)
    np.testing.assert_allclose(audio[1], resampled(accompaniment), atol=1e-5)
    np.testing.assert_allclose(audio[0], resampled(vocals + accompaniment), atol=1e-5)  # mixture = sum
    instrumental = result.tracks[1].audio
    assert np.all(instrumental[2] == 0) and np.abs(instrumental[1]).max() > 0.01
    # The solo vocals role leaves instrumental tracks out; solo accompaniment keeps them.
    assert [t.name for t in dataset("medleydb", role="solo", sources=["vocals"], root=str(root)).tracks()] == ["A_Sung"]
    assert len(dataset("medleydb", role="solo", sources=["accompaniment"], root=str(root)).tracks()) == 2
    assert [t.name for t in dataset("medleydb", root=str(root), include_instrumental=False).tracks()] == ["A_Sung"]
    # mixture = "file" uses the released mix.
    mixed = load(dataset("medleydb", root=str(root), mixture="file"))
    np.testing.assert_allclose(mixed.tracks[0].audio[0], resampled(0.5 * sum(files)), atol=1e-5)


def test_medleydb_track_without_metadata_is_reported_and_skipped(tmp_path, load):
    root = tmp_path / "MedleyDB"
    medley_tree(root, "A_Sung", ["female singer", "piano"], seed=0)
    (root / "Audio" / "C_NoMeta").mkdir(parents=True)
    result = load(dataset("medleydb", root=str(root)))
    assert [t.name for t in result.tracks] == ["A_Sung"]
    assert result.skipped == 1
    path, reason = result.failed[0]
    assert path.endswith("C_NoMeta") and "no C_NoMeta_METADATA.yaml found" in reason


def test_medleydb_thirds_are_taken_before_role_filtering(tmp_path):
    root = tmp_path / "MedleyDB"
    for i in range(6):
        medley_tree(root, f"T{i}_Song", ["female singer", "piano"] if i % 2 == 0 else ["piano"], seed=10 * i)
    mixtures = [t.name for t in dataset("medleydb", role="mixtures", root=str(root), split="unpaired").tracks()]
    vocals = [t.name for t in dataset("medleydb", role="solo", sources=["vocals"], root=str(root), split="unpaired").tracks()]
    assert mixtures == ["T0_Song", "T1_Song"] and vocals == ["T0_Song"]


# -- ikala, ccmixter -------------------------------------------------------------------------------
def test_ikala_channels(tmp_path, load):
    stereo = {name: noise(i, channels=2) for i, name in enumerate(["10161_verse", "10161_chorus", "20001_verse"])}
    for name, x in stereo.items():
        write(tmp_path / "iKala" / "Wavfile" / f"{name}.wav", x)
    ds = dataset("ikala", root=str(tmp_path / "iKala"))
    assert [t.name for t in ds.tracks()] == ["10161_chorus", "10161_verse", "20001_verse"]
    audio = load(ds).tracks[0].audio
    x = resampled(stereo["10161_chorus"])
    np.testing.assert_allclose(audio[1, 0], x[0], atol=1e-5)  # accompaniment: left
    np.testing.assert_allclose(audio[2, 0], x[1], atol=1e-5)  # voice: right
    np.testing.assert_allclose(audio[0, 0], x[0] + x[1], atol=1e-5)  # mixture: their sum
    assert [t.name for t in dataset("ikala", root=str(tmp_path / "iKala" / "Wavfile"), split="test").tracks()] == ["20001_verse"]


def test_ccmixter_layout(tmp_path, load):
    root = tmp_path / "ccmixter_corpus"
    music, voice = noise(1), noise(2)
    write(root / "Song A" / "source-01.wav", music)
    write(root / "Song A" / "source-02.wav", voice)
    write(root / "Song A" / "mix.wav", music + voice)
    (root / "README").write_text("ccMixter")
    audio = load(dataset("ccmixter", root=str(root))).tracks[0].audio
    np.testing.assert_allclose(audio, np.stack([resampled(music + voice), resampled(music), resampled(voice)]), atol=1e-5)
    solo = load(dataset("ccmixter", role="solo", sources=["vocals"], root=str(root)), stems=["vocals"])
    np.testing.assert_allclose(solo.tracks[0].audio[0], resampled(voice), atol=1e-5)


# -- the cache -----------------------------------------------------------------------------------
def test_second_run_reads_the_cache_without_decoding(tmp_path, load, monkeypatch):
    stem_tree(tmp_path / "d", ["a", "b"])
    ds = dataset("stems", root=str(tmp_path / "d"))
    first = load(ds)
    assert (first.cache_hits, first.cache_misses) == (0, 6)
    import sepkit.audio

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(sepkit.audio, "decode", no_decoding)
    second = load(ds)
    assert (second.cache_hits, second.cache_misses) == (6, 0)
    for a, b in zip(first.tracks, second.tracks):
        np.testing.assert_array_equal(a.audio, b.audio)
    monkeypatch.undo()
    # A changed file is decoded again.
    path = tmp_path / "d" / "a" / "vocals.wav"
    write(path, noise(99, seconds=SECONDS))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    third = load(ds)
    assert third.cache_misses == 1
    # Another rate is another entry.
    assert load_tracks([ds], stems=PAIRED, sample_rate=2000, channels=1, cache_dir=tmp_path / "cache").cache_misses == 6


def test_the_cache_directory_follows_the_environment(tmp_path, monkeypatch):
    from sepkit.data.cache import default_cache_dir

    monkeypatch.setenv("SEPKIT_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere" / "audio"
    stem_tree(tmp_path / "d", ["a"])
    load_tracks([dataset("stems", root=str(tmp_path / "d"))], stems=PAIRED, sample_rate=RATE, channels=1)
    assert len(list((tmp_path / "elsewhere" / "audio").rglob("*.npy"))) == 3


def test_without_cache_nothing_is_written(tmp_path, load):
    stem_tree(tmp_path / "d", ["a"])
    result = load(dataset("stems", root=str(tmp_path / "d")), use_cache=False)
    assert len(result.tracks) == 1 and not (tmp_path / "cache").exists()


# -- bad input -----------------------------------------------------------------------------------
def test_missing_root_and_empty_folder(tmp_path, load):
    with pytest.raises(DatasetError, match=rf"folder {tmp_path / 'nowhere'} does not exist"):
        load(dataset("stems", root=str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no track folders with audio files in .*empty"):
        load(dataset("stems", root=str(tmp_path / "empty")))
    with pytest.raises(DatasetError, match=r"no audio files .* in .*empty"):
        load(dataset("files", role="mixtures", root=str(tmp_path / "empty")), stems=["mixture"])


def test_unreadable_file_is_reported_and_skipped(tmp_path, load):
    stem_tree(tmp_path / "d", ["a", "b", "c"])
    broken = tmp_path / "d" / "b" / "vocals.wav"
    broken.write_bytes(b"garbage" * 50)
    result = load(dataset("stems", root=str(tmp_path / "d")))
    assert [t.name for t in result.tracks] == ["a", "c"]
    assert result.skipped == 1
    assert result.failed == [(str(broken), "cannot read audio (Format not recognised.)")]


def test_nothing_usable_is_an_error_naming_the_root(tmp_path, load):
    stem_tree(tmp_path / "d", ["a", "b"])
    for name in ("a", "b"):
        (tmp_path / "d" / name / "mixture.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match=rf"dataset 'd' at {tmp_path / 'd'}: none of its 2 track\(s\) could be loaded; "
                                           r"first problem: .*a/mixture.wav: cannot read audio"):
        load(dataset("stems", root=str(tmp_path / "d")))


def test_truncated_and_nan_files_are_skipped_with_their_reason(tmp_path, load):
    stem_tree(tmp_path / "d", ["a", "b", "c"])
    cut = tmp_path / "d" / "a" / "vocals.wav"
    cut.write_bytes(cut.read_bytes()[:1000])
    x = noise(5)
    x[0, 10] = np.nan
    write(tmp_path / "d" / "b" / "vocals.wav", x)
    result = load(dataset("stems", root=str(tmp_path / "d")))
    assert [t.name for t in result.tracks] == ["c"]
    reasons = dict(result.failed)
    assert reasons[str(cut)].startswith("truncated file")
    assert reasons[str(tmp_path / "d" / "b" / "vocals.wav")] == "1 NaN or infinite sample(s)"


def test_silent_file_is_kept_with_a_warning(tmp_path, load):
    stem_tree(tmp_path / "d", ["a"])
    silent = write(tmp_path / "d" / "a" / "vocals.wav", np.zeros((1, int(SECONDS * FILE_RATE)), np.float32))
    result = load(dataset("stems", root=str(tmp_path / "d")))
    assert len(result.tracks) == 1
    assert (str(silent), "stem 'vocals' is silent") in result.warnings


def test_stem_lengths_are_trimmed_within_tolerance_and_refused_beyond(tmp_path, load):
    stem_tree(tmp_path / "d", ["a", "b"])
    write(tmp_path / "d" / "a" / "vocals.wav", noise(1, seconds=SECONDS + 0.01))  # 10 ms longer: trimmed
    long = write(tmp_path / "d" / "b" / "vocals.wav", noise(1, seconds=SECONDS + 1.0))  # 1 s longer: refused
    result = load(dataset("stems", root=str(tmp_path / "d")))
    assert [t.name for t in result.tracks] == ["a"]
    assert result.tracks[0].audio.shape[-1] == int(SECONDS * RATE)
    path, reason = result.failed[0]
    assert path == str(long) and "is 1.00 s longer than" in reason and "the stems do not line up" in reason


def test_sample_rate_mismatch_is_resampled_with_a_warning(tmp_path, load):
    stem_tree(tmp_path / "d", ["a"])
    other_rate = write(tmp_path / "d" / "a" / "vocals.wav", noise(1, rate=6000), rate=6000)
    result = load(dataset("stems", root=str(tmp_path / "d")))
    assert result.tracks[0].audio.shape == (3, 1, int(SECONDS * RATE))
    assert any(p == str(other_rate) and "recorded at 6000 Hz" in r for p, r in result.warnings)


def test_channel_mismatch_between_stems_is_refused_for_multichannel_models(tmp_path, load):
    stem_tree(tmp_path / "d", ["a"])
    stereo = write(tmp_path / "d" / "a" / "mixture.wav", noise(3, channels=2))
    with pytest.raises(DatasetError, match=r"first problem: .*a/(mixture|vocals|accompaniment)\.wav: has \d channel\(s\) but"):
        load(dataset("stems", root=str(tmp_path / "d")), channels=2)
    # Downmixed to mono, the layouts agree.
    assert load(dataset("stems", root=str(tmp_path / "d")), channels=1).tracks[0].audio.shape[1] == 1
    assert stereo.exists()


def test_stems_of_one_name_in_two_formats_are_ambiguous(tmp_path):
    stem_tree(tmp_path / "d", ["a"])
    write(tmp_path / "d" / "a" / "vocals.flac", noise(1), subtype="PCM_16")
    with pytest.raises(DatasetError, match=r"both vocals.flac and vocals.wav"):
        dataset("stems", root=str(tmp_path / "d")).tracks()


def test_signed_stem_files_in_a_custom_track(tmp_path, load):
    """Track/StemFile with gains is the plugin interface: a stand-alone layout can use it."""
    from sepkit.dataset import Dataset

    mix, voc = write(tmp_path / "m.wav", noise(1)), write(tmp_path / "v.wav", noise(2))

    class OneTrack(Dataset):
        def tracks(self):
            return [Track("t", {"mixture": (StemFile(mix),), "accompaniment": (StemFile(mix), StemFile(voc, gain=-1.0)),
                                "vocals": (StemFile(voc),)})]

    result = load(OneTrack(None, role="paired", sources=SOURCES))
    np.testing.assert_allclose(result.tracks[0].audio[1], resampled(noise(1) - noise(2)), atol=1e-5)


# -- the offline corpus --------------------------------------------------------------------------
def test_offline_corpus_through_the_stems_plugin(corpus, tmp_path):
    ds = dataset("stems", role="test", root=str(corpus / "test"), name="test")
    result = load_tracks([ds], stems=PAIRED, sample_rate=8192, channels=1, clip=True, cache_dir=tmp_path / "cache")
    assert len(result.tracks) == 10 and result.failed == []
    assert [t.name for t in result.tracks] == sorted(t.name for t in result.tracks)
    for track in result.tracks:
        assert 29.9 * 8192 < track.num_samples < 30.6 * 8192
        # The corpus stores mixture == vocals + accompaniment exactly; resampling is linear.
        np.testing.assert_allclose(track.audio[0], track.audio[1] + track.audio[2], atol=1e-4)
    mixtures = dataset("files", role="mixtures", root=str(corpus / "unsupervised" / "mixtures"), split="unpaired")
    assert len(mixtures.tracks()) == 26 // 3
