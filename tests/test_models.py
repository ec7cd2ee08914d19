"""Named models: the register_models hook, --model NAME|PATH|URL, verified downloads into the cache.

No test touches the internet: remote models are file:// URLs or a server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import separation_plugin
from sepkit import hookimpl
from sepkit.errors import PluginError, SepkitError
from sepkit.model import save_model
from sepkit.plugins import use_plugins


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SEPKIT_CACHE_DIR", str(folder))
    return folder


def cache_files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


@pytest.fixture
def model_file(tmp_path) -> Path:
    with use_plugins(separation_plugin):
        recipe, representation, separator = separation_plugin.build(seed=3)
        return save_model(tmp_path / "published" / "tiny.safetensors", recipe=recipe,
                          representation=representation, separator=separator)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Models:
    """A plugin object registering whatever the test asks for."""

    def __init__(self, *registrations):
        self.registrations = registrations

    @hookimpl
    def register_models(self, register):
        for args, kwargs in self.registrations:
            register(*args, **kwargs)


def models_plugin(*registrations) -> Models:
    return Models(*registrations)


def named(name, source, **kwargs):
    return ((name, source), kwargs)


# ------------------------------------------------------------------------------ a local server


class Server:
    """Serves ``files`` {path: bytes} on 127.0.0.1; ``lie_about_length`` announces more bytes than it sends."""

    def __init__(self, files: dict[str, bytes], *, lie_about_length: bool = False):
        self.files = files
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.requests += 1
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data) * 2 if lie_about_length else len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------ registry


def test_the_default_model_is_registered_by_a_plugin_not_named_by_the_core():
    from sepkit.models import model_registry

    defaults = (Path(__file__).parent.parent / "sepkit" / "separation" / "defaults.py").read_text()
    assert "sepkit_plugins" not in defaults
    with use_plugins(entry_points=True):
        entry = model_registry().get("default")
    assert entry.provider.plugin == "default-model" and entry.provider.distribution == "sepkit"
    assert Path(entry.files[0].location).name == "model.safetensors"


def test_names_urls_and_hashes_are_checked_at_registration(model_file):
    from sepkit.models import model_registry

    cases = [
        (named("Bad_Name", model_file), "names are lowercase words"),
        (named("remote", "https://example.org/m.safetensors"), "needs its sha256"),
        (named("remote", "https://example.org/m.safetensors", sha256="abc"), "64 hexadecimal digits"),
        (named("parts", {"a": "https://example.org/a.pth"}, sha256={"a": "0" * 64}), "needs convert="),
        (named("parts", {"a": "https://example.org/a.pth"}, sha256={"b": "0" * 64}, convert=print), "unknown file(s) b"),
    ]
    for registration, message in cases:
        with use_plugins(models_plugin(registration)), pytest.raises(PluginError, match=message.replace("(", r"\(").replace(")", r"\)")):
            model_registry()
    with use_plugins(models_plugin(named("twice", model_file)), models_plugin(named("twice", model_file))):
        with pytest.raises(PluginError, match="registered twice"):
            model_registry()


def test_a_name_path_and_file_url_resolve(cache, model_file):
    from sepkit.models import load_model, resolve_model

    with use_plugins(separation_plugin, models_plugin(named("tiny", model_file, description="a tiny model"))):
        assert resolve_model("tiny").path == model_file
        assert resolve_model(str(model_file)).path == model_file
        assert resolve_model(model_file.as_uri()).path == model_file  # file:// without a hash: read in place
        assert cache_files(cache) == []
        pinned = resolve_model(f"{model_file.as_uri()}#sha256={sha256(model_file)}")  # with one: verified copy
        assert pinned.path == cache / "models" / sha256(model_file) / "tiny.safetensors"
        assert pinned.path.read_bytes() == model_file.read_bytes()
        assert load_model("tiny").sources == ["accompaniment", "vocals"]
        with pytest.raises(SepkitError, match=r"unknown model 'nope'.*named models: tiny"):
            resolve_model("nope")
        with pytest.raises(SepkitError, match=r"#sha256=<64 hex digits>"):
            resolve_model("https://example.org/tiny.safetensors")


def test_a_url_model_is_downloaded_once_verified_and_reused(cache, model_file):
    from sepkit.models import list_models, resolve_model

    data = model_file.read_bytes()
    with Server({"/m/tiny.safetensors": data}) as server:
        url = f"{server.url}/m/tiny.safetensors"
        plugin = models_plugin(named("tiny-remote", url, sha256=sha256(model_file), sample_rate=8000, size=len(data)))
        with use_plugins(separation_plugin, plugin):
            (before,) = list_models()
            assert before["status"] == "remote" and before["path"] is None and before["sample_rate"] == 8000
            first = resolve_model("tiny-remote").path
            second = resolve_model("tiny-remote").path
            (after,) = list_models()
    assert first == second == cache / "models" / sha256(model_file) / "tiny.safetensors"
    assert server.requests == 1 and first.read_bytes() == data
    assert after["status"] == "cached" and after["sources"] == ["accompaniment", "vocals"]
    assert after["size_bytes"] == len(data) and after["provider"].startswith("plugin ")
    assert first.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_bad_downloads_are_one_line_and_leave_nothing(cache, model_file, run_cli, tmp_path):
    data = model_file.read_bytes()
    song = tmp_path / "song.wav"
    sf.write(str(song), np.zeros(800, dtype=np.float32), 8000)
    good = sha256(model_file)
    with Server({"/tiny.safetensors": data}) as server, Server({"/tiny.safetensors": data}, lie_about_length=True) as liar:
        cases = {
            "wrong hash": (f"{server.url}/tiny.safetensors#sha256={'0' * 64}", "sha256 mismatch"),
            "truncated": (f"{liar.url}/tiny.safetensors#sha256={good}", "truncated after"),
            "missing": (f"{server.url}/other.safetensors#sha256={good}", "HTTP 404"),
            "unreachable": (f"http://127.0.0.1:{free_port()}/tiny.safetensors#sha256={good}", "cannot download"),
            "file url, wrong hash": (f"{model_file.as_uri()}#sha256={'1' * 64}", "sha256 mismatch"),
        }
        with use_plugins(separation_plugin):
            for case, (url, message) in cases.items():
                result = run_cli("separate", song, "--model", url, "-o", tmp_path / "out")
                lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("downloading the model")]
                assert result.exit_code != 0, case
                assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (case, result.stderr)
                assert cache_files(cache) == [], case
                assert not (tmp_path / "out").exists(), case


def test_converted_models_are_made_once_and_cached(cache, model_file, tmp_path):
    from sepkit.models import list_models, resolve_model

    parts = {"vocals": tmp_path / "vocals.pth", "rest": tmp_path / "rest.pth"}
    for name, path in parts.items():
        path.write_bytes(name.encode() * 10)
    calls = []

    def convert(files, target):
        calls.append(sorted(files))
        assert {k: p.read_bytes() for k, p in files.items()} == {k: p.read_bytes() for k, p in parts.items()}
        target.write_bytes(model_file.read_bytes())

    urls = {k: p.as_uri() for k, p in parts.items()}
    hashes = {k: sha256(p) for k, p in parts.items()}
    with use_plugins(separation_plugin, models_plugin(named("parts", urls, sha256=hashes, convert=convert))):
        first = resolve_model("parts").path
        second = resolve_model("parts").path
        (row,) = list_models()
    assert calls == [["rest", "vocals"]] and first == second
    assert first.parent == cache / "models" / "converted" and first.read_bytes() == model_file.read_bytes()
    assert row["status"] == "cached" and row["sample_rate"] == 8000


def test_a_failing_converter_names_its_plugin_and_leaves_no_model(cache, tmp_path):
    from sepkit.models import resolve_model

    checkpoint = tmp_path / "x.pth"
    checkpoint.write_bytes(b"not a model")

    def convert(files, target):
        raise ValueError("unexpected key fc9")

    plugin = models_plugin(named("broken", checkpoint.as_uri() + f"#sha256={sha256(checkpoint)}", convert=convert))
    with use_plugins(plugin):
        with pytest.raises(PluginError, match=r"cannot convert model 'broken': ValueError: unexpected key fc9"):
            resolve_model("broken")
    assert not [f for f in cache_files(cache) if "converted" in f]


def test_sepkit_models_lists_names_sources_and_status(run_cli, cache, model_file):
    remote = named("tiny-remote", "https://example.org/tiny.safetensors", sha256="0" * 64, sources=["a", "b"], size=2_500_000)
    with use_plugins(models_plugin(named("tiny", model_file, description="a tiny model"), remote)):
        listed = run_cli("models", "--json")
        table = run_cli("models")
    assert listed.exit_code == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["tiny"]["status"] == "local" and rows["tiny"]["sample_rate"] == 8000
    assert rows["tiny"]["sources"] == ["accompaniment", "vocals"] and rows["tiny"]["description"] == "a tiny model"
    assert rows["tiny-remote"]["status"] == "remote" and rows["tiny-remote"]["size_bytes"] == 2_500_000
    assert table.exit_code == 0 and "tiny-remote" in table.stdout and "2.5 MB" in table.stdout and "remote" in table.stdout
