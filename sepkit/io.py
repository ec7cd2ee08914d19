"""Writing files so that a reader, a crash or a full disk never sees half of one.

Every file sepkit writes (models, training states, results, plots, stems, caches) goes through
:class:`AtomicFile`: the bytes go to a hidden temporary file in the target's own folder
(``.<name>.<pid>-<random>.partial``), which is flushed to the disk (``fsync``) and then renamed
over the target in one step. A reader sees the old file or the new one, never a mixture; a killed
process leaves at most its temporary file, which the next write of the same target removes (a
live writer holds an advisory lock on it, so only abandoned ones go). The result has the
permissions a plain ``open(path, "w")`` would give: ``0o666`` less the umask for a new file, the
old file's mode when one is replaced. A write that fails (no space left, no permission) removes the
temporary file and raises :class:`WriteError`, a one-line error naming the target and the cause.
See docs/reliability.md.
"""

from __future__ import annotations

import errno
import os
import secrets
import time
from pathlib import Path
from types import TracebackType
from typing import Callable

from .errors import SepkitError

try:  # advisory locks tell abandoned temporary files from those of a live writer
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

PARTIAL_SUFFIX = ".partial"
#: A temporary file whose writer is alive but that nobody has locked for this long is abandoned
#: (its pid was reused by another program).
_UNLOCKED_GRACE_SECONDS = 60.0


class WriteError(SepkitError, OSError):
    """A file that could not be written (disk full, permissions, a folder in the way)."""

    def __init__(self, path: str | os.PathLike[str], cause: BaseException | str) -> None:
        reason = (cause.strerror or str(cause)) if isinstance(cause, OSError) else str(cause)
        SepkitError.__init__(self, f"cannot write {path}: {reason}")
        if isinstance(cause, OSError):
            self.errno = cause.errno  # type: ignore[misc]
        self.path = Path(path)
        self.reason = reason


def no_space(exc: BaseException) -> bool:
    """True for the errors of a full disk or an exhausted quota."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _write_all(fd: int, data: bytes | bytearray | memoryview, path: Path) -> None:
    """Write every byte of ``data`` to ``fd`` (``path`` names the target; tests inject faults here)."""
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        view = view[written:]


def partial_name(target: Path) -> str:
    return f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL_SUFFIX}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except (OverflowError, ValueError):
        return False
    return True


def _abandoned(path: Path) -> bool:
    """A temporary file no live writer holds: its lock is free, and its writer is gone (or its pid
    now belongs to another program, after a grace period)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # a live writer holds it
        # ".<name>.<pid>-<random>.partial" (or an older sepkit's ".<name>.<pid>.partial")
        middle = path.name[: -len(PARTIAL_SUFFIX)].rsplit(".", 1)[-1]
        try:
            pid = int(middle.split("-", 1)[0])
        except ValueError:
            return False  # not ours
        if not pid_alive(pid) or pid == os.getpid():
            return True
        return fcntl is not None and time.time() - os.fstat(fd).st_mtime > _UNLOCKED_GRACE_SECONDS
    finally:
        os.close(fd)


def remove_stale_partials(target: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of ``target`` that a killed writer left behind; returns them."""
    target = Path(target)
    removed = []
    try:
        candidates = list(target.parent.glob(f".{_glob_escape(target.name)}.*{PARTIAL_SUFFIX}"))
    except OSError:
        return removed
    for candidate in candidates:
        if candidate.is_file() and not candidate.is_symlink() and _abandoned(candidate):
            try:
                candidate.unlink()
                removed.append(candidate)
            except OSError:
                pass
    return removed


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX: the folder entry is data too); best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicFile:
    """One target file written through a temporary file: :meth:`write` bytes (or let a library
    write to :attr:`temporary` by name), then :meth:`commit`; :meth:`discard` (or an exception in a
    ``with`` block) removes the temporary file. ``exclusive`` commits only if the target does not
    exist yet (:class:`FileExistsError` otherwise), for files that must be created exactly once.
    """

    def __init__(self, path: str | os.PathLike[str], *, exclusive: bool = False) -> None:
        self.path = Path(path)
        self.exclusive = exclusive
        self._fd: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(self.path))
            remove_stale_partials(self.path)
            mode = None  # a new file: 0o666 less the umask, as open() gives
            try:
                mode = self.path.stat().st_mode & 0o7777  # a replaced file keeps its mode
            except OSError:
                pass
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
            self.temporary = self.path.with_name(partial_name(self.path))
            self._fd = os.open(self.temporary, flags, 0o666)
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # a cleaner looking at it lets go at once
            if mode is not None:
                os.fchmod(self._fd, mode)
        except OSError as exc:
            self.discard()
            raise WriteError(self.path, exc) from None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data`` to the temporary file (file-like, so ``np.save`` and ``savefig`` can use it)."""
        assert self._fd is not None, "write after commit or discard"
        try:
            _write_all(self._fd, data, self.path)
        except OSError as exc:
            self.discard()
            raise WriteError(self.path, exc) from None
        return len(memoryview(data).cast("B"))

    def commit(self) -> Path:
        """Flush the temporary file to the disk and rename it over the target."""
        assert self._fd is not None, "commit after commit or discard"
        try:
            os.fsync(self._fd)
            if self.exclusive:
                os.link(self.temporary, self.path)  # fails if the target exists: nothing replaced
                os.unlink(self.temporary)
            else:
                os.replace(self.temporary, self.path)
        except FileExistsError:
            self.discard()
            raise
        except OSError as exc:
            self.discard()
            raise WriteError(self.path, exc) from None
        os.close(self._fd)  # releases the lock only now: nobody takes a live file for abandoned
        self._fd = None
        _fsync_folder(self.path.parent)
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (idempotent)."""
        temporary = getattr(self, "temporary", None)
        if temporary is not None:
            try:
                temporary.unlink()
            except OSError:
                pass
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    @property
    def done(self) -> bool:
        return self._fd is None

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None:
            self.discard()
        elif not self.done:
            self.commit()


def write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview, *, exclusive: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with AtomicFile(path, exclusive=exclusive) as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, *, exclusive: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"), exclusive=exclusive)


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], object]) -> Path:
    """Atomically write what ``writer(temporary_path)`` writes, for libraries that take a file name
    (libsndfile). Their ``OSError`` becomes a :class:`WriteError` naming ``path``."""
    with AtomicFile(path) as handle:
        try:
            writer(handle.temporary)
        except WriteError:
            raise
        except OSError as exc:
            raise WriteError(path, exc) from None
    return Path(path)


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line to a log in one ``write`` (``O_APPEND``): a kill leaves at most a torn last
    line, which :func:`read_lines` ignores."""
    path = Path(path)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise WriteError(path, exc) from None
    try:
        size = os.fstat(fd).st_size
        _write_all(fd, data, path)
    except OSError as exc:
        try:  # take back a partial line, so that the next one does not continue it
            os.ftruncate(fd, size)
        except (OSError, UnboundLocalError):
            pass
        raise WriteError(path, exc) from None
    finally:
        os.close(fd)


__all__ = [
    "AtomicFile", "WriteError", "append_line", "no_space", "remove_stale_partials", "write_bytes", "write_text", "write_with",
]
