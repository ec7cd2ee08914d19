"""Fetching model files into a content-addressed cache: verified by sha256, renamed into place only
when complete (:class:`sepkit.io.AtomicFile`), so that an interrupted, truncated or tampered
download leaves nothing behind.

A fetched file lives at ``<folder>/<sha256>/<file name>``: the same bytes published under two names
are stored once, and a file in the cache is never re-verified (it got there only after its hash
matched). Standard library only (urllib): no extra dependency, proxies from the usual environment
variables.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from .errors import SepkitError
from .io import AtomicFile, WriteError

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
#: Seconds to wait for a server to answer (and between two reads).
TIMEOUT = 30.0
CHUNK = 1 << 20

#: ``progress(bytes_done, bytes_total_or_None)``
Progress = Callable[[int, "int | None"], object]


class DownloadError(SepkitError):
    """A model file that cannot be fetched or does not match its published hash."""


def is_url(text: str) -> bool:
    return urllib.parse.urlsplit(str(text)).scheme in ("http", "https", "file")


def split_hash(url: str) -> tuple[str, str | None]:
    """``URL#sha256=HEX`` -> ``(URL, HEX)`` (pip's notation); ``(URL, None)`` without one."""
    base, _, fragment = url.partition("#")
    if fragment.startswith("sha256="):
        return base, check_sha256(fragment[len("sha256="):], url)
    return url, None


def check_sha256(value: str, what: str) -> str:
    value = value.strip().lower()
    if not SHA256_PATTERN.match(value):
        raise DownloadError(f"{what}: sha256 must be 64 hexadecimal digits, got {value!r}")
    return value


def file_name(url: str) -> str:
    """The last path segment of a URL (``model.safetensors`` when it has none)."""
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    return name or "model.safetensors"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def cached_path(folder: Path, url: str, sha256: str) -> Path:
    return Path(folder) / sha256 / file_name(url)


def fetch(
    url: str,
    folder: Path,
    *,
    sha256: str,
    progress: Progress | None = None,
    timeout: float = TIMEOUT,
) -> Path:
    """The cached copy of ``url`` (``folder/<sha256>/<file name>``), downloading it first if needed.

    Every failure (unreachable host, HTTP error, a download shorter than announced, a hash
    mismatch, a full disk) is a one-line :class:`DownloadError` and leaves no file in ``folder``.
    """
    sha256 = check_sha256(sha256, url)
    target = cached_path(folder, url, sha256)
    if target.is_file():
        return target
    created = not target.parent.exists()
    try:
        with AtomicFile(target) as handle:
            digest = _download(url, handle, progress=progress, timeout=timeout)
            if digest != sha256:
                raise DownloadError(
                    f"{url}: sha256 mismatch (expected {sha256}, got {digest}): the file is corrupt or was "
                    "replaced; nothing was kept"
                )
    except WriteError as exc:
        raise DownloadError(f"{url}: cannot store the download: {exc}") from None
    finally:
        if created and not target.is_file():
            _remove_empty(target.parent)
    return target


def _download(url: str, handle: AtomicFile, *, progress: Progress | None, timeout: float) -> str:
    """Stream ``url`` into ``handle``; returns the sha256 of what arrived (checked to be complete)."""
    digest = hashlib.sha256()
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (the caller checked the scheme)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"cannot download {url}: {_reason(exc.reason)}") from None
    except (OSError, ValueError) as exc:
        raise DownloadError(f"cannot download {url}: {_reason(exc)}") from None
    received = 0
    with response:
        length = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
        total = int(length) if length and length.isdigit() else None
        try:
            while block := response.read(CHUNK):
                handle.write(block)
                digest.update(block)
                received += len(block)
                if progress is not None:
                    progress(received, total)
        except http.client.IncompleteRead:
            raise DownloadError(f"cannot download {url}: truncated after {received} of {total} bytes") from None
        except (http.client.HTTPException, ConnectionError, TimeoutError, urllib.error.URLError) as exc:
            raise DownloadError(
                f"cannot download {url}: the connection broke after {received} bytes ({_reason(exc)})"
            ) from None
    if total is not None and received != total:
        raise DownloadError(f"cannot download {url}: truncated after {received} of {total} bytes")
    return digest.hexdigest()


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror)
    text = str(reason).strip()
    return text.splitlines()[0] if text else type(reason).__name__

