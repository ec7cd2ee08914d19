"""A lock file per run folder, so that two ``sepkit run`` processes never train into one folder.

The lock is ``<folder>/.sepkit-run.lock``: it names its owner (pid, host, start time) for the
error message, and the owner holds an advisory ``flock`` on it for as long as it runs. The kernel
drops that lock when the owner dies, however it dies (kill -9 included), so a lock file left behind
is known to be stale and is taken over; no pid is trusted on its own (pids are reused). Where
``flock`` does not exist the pid is checked instead.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from .errors import SepkitError
from .io import pid_alive

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".sepkit-run.lock"


class LockedError(SepkitError):
    """The run folder is in use by another live process."""


def _owner(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(owner: dict[str, object]) -> str:
    if not owner:
        return "another process"
    started = owner.get("started")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(float(started))) if isinstance(started, (int, float)) else ""
    host = owner.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return f"pid {owner.get('pid', '?')}{where}{when}"


def _alive(owner: dict[str, object]) -> bool:
    """Without flock: is the owner's pid alive? (A lock taken on another host is assumed alive.)"""
    if owner.get("host") not in (None, socket.gethostname()):
        return True
    pid = owner.get("pid")
    return isinstance(pid, int) and pid_alive(pid)


class RunLock:
    """Hold ``folder``'s lock (``with RunLock(folder):``); a live owner elsewhere is a :class:`LockedError`."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None
        self._created_folder = False
        self.took_over: dict[str, object] | None = None

    def acquire(self) -> "RunLock":
        self._created_folder = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # the file may be replaced while we open it: try again on the new one
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            try:
                previous = _owner(self.path)
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        raise LockedError(self._message(previous)) from None
                    try:
                        same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                    except FileNotFoundError:
                        same = False
                    if not same:
                        os.close(fd)  # released and removed by its owner meanwhile: try the new one
                        continue
                elif previous and previous.get("pid") != os.getpid() and _alive(previous):
                    raise LockedError(self._message(previous))
                if previous.get("pid") not in (None, os.getpid()):
                    self.took_over = previous  # a stale lock: its owner died without removing it
                record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            except BaseException:
                os.close(fd)
                self._remove_folder()
                raise
            self._fd = fd
            return self
        raise LockedError(f"{self.folder}: its lock file {self.path} keeps changing; is another sepkit run starting?")

    def _message(self, owner: dict[str, object]) -> str:
        return (
            f"{self.folder} is in use by another sepkit run ({_describe(owner)}; lock file {self.path}); "
            "wait for it to finish, or stop it first"
        )

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink()  # while still holding it: a waiting process then sees a new file
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        self._remove_folder()

    def _remove_folder(self) -> None:
        """A folder made only to hold the lock goes with it (a refused start leaves nothing)."""
        if self._created_folder:
            try:
                self.folder.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


__all__ = ["LOCK_FILE", "LockedError", "RunLock"]
