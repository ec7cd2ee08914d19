"""Named models: ``umxhq`` resolves offline and fails to download in one line; with its URLs pointed
at local random-weight files, ``sepkit separate --model umxhq`` downloads, verifies, converts once
and separates."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import soundfile as sf

from sepkit.models import find_model, models_dir
from sepkit.plugins import use_plugins
from sepkit.testing.cli import invoke

from sepkit_openunmix import published

from openunmix_helpers import TINY_RATE, checkpoints, isolated_cache, one_thread  # noqa: F401 (fixtures)


def _local_umxhq(monkeypatch, files, *, url=None):  # type: ignore[no-untyped-def]
    """``published.UMXHQ`` with its files replaced by ``files`` (file:// URLs, or ``url`` for all)."""
    replaced = tuple(
        dataclasses.replace(
            f,
            url=url.format(name=f.name) if url else files[f.target].as_uri(),
            sha256=hashlib.sha256(files[f.target].read_bytes()).hexdigest(),
            size=files[f.target].stat().st_size,
        )
        for f in published.UMXHQ.files
    )
    monkeypatch.setattr(published, "UMXHQ", dataclasses.replace(published.UMXHQ, files=replaced))


def test_umxhq_is_registered_with_the_published_files_and_downloads_nothing_to_resolve():
    with use_plugins(entry_points=True):
        found = find_model("umxhq")
        assert found.sources == ("vocals", "drums", "bass", "other") and found.sample_rate == 44100
        assert found.provider.distribution == "sepkit-openunmix" and "MIT" in (found.license or "")
        for file, item in zip(published.UMXHQ.files, found.files):
            assert item.key == file.target and item.location == file.url and item.sha256 == file.sha256
            assert item.location.startswith("https://zenodo.org/records/3370489/files/")
        assert found.status() == "remote" and found.size == 4 * 35_637_796
        karaoke = find_model("umxhq-vocals")
        assert karaoke.sources == ("vocals", "accompaniment") and len(karaoke.files) == 1
        listed = json.loads(invoke("models", "--json").stdout)
        assert {m["name"] for m in listed} >= {"umxhq", "umxhq-vocals"}


def test_an_unreachable_download_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SEPKIT_CACHE_DIR", str(tmp_path / "cache"))  # the session cache holds other tests' models
    sf.write(tmp_path / "song.wav", np.zeros((800, 2), dtype=np.float32), TINY_RATE)
    _local_umxhq(monkeypatch, checkpoints(tmp_path, published.TARGETS), url="http://127.0.0.1:9/{name}")
    with use_plugins(entry_points=True):
        result = invoke("separate", tmp_path / "song.wav", "--model", "umxhq", "-o", tmp_path / "out")
    assert result.exit_code != 0
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message and "127.0.0.1" in message, message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.wav"))
    assert not models_dir().exists() or not any(p.is_file() for p in models_dir().rglob("*"))


def test_separate_downloads_verifies_converts_once_and_separates(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "song.wav", (0.1 * rng.standard_normal((6000, 2))).astype(np.float32), TINY_RATE)
    files = checkpoints(tmp_path, published.TARGETS)
    _local_umxhq(monkeypatch, files)
    with use_plugins(entry_points=True):
        first = invoke("separate", tmp_path / "song.wav", "--model", "umxhq", "-o", tmp_path / "out")
        assert first.exit_code == 0, first.stderr
        converted = find_model("umxhq").converted_path()
        assert converted.is_file()
        stamp = converted.stat().st_mtime_ns
        again = invoke("separate", tmp_path / "song.wav", "--model", "umxhq", "-o", tmp_path / "out", "--overwrite")
        assert again.exit_code == 0, again.stderr
        assert converted.stat().st_mtime_ns == stamp  # converted once, then reused
    stems = sorted(p.stem for p in (tmp_path / "out").rglob("*.wav"))
    assert stems == ["bass", "drums", "other", "vocals"]
    from safetensors import safe_open

    with safe_open(str(converted), framework="pt") as handle:
        provenance = json.loads(handle.metadata()["metadata"])["converted_from"]["files"]
    assert provenance["vocals"]["url"] == files["vocals"].as_uri()
    assert provenance["vocals"]["sha256"] == hashlib.sha256(files["vocals"].read_bytes()).hexdigest()
