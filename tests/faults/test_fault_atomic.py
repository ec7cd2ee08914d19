"""sepkit.io: what an atomic write promises (case 1 of issue 15 and the write faults behind the others)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import enospc_under, full_disk, partials

from sepkit.io import AtomicFile, WriteError, append_line, remove_stale_partials, write_bytes, write_text


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the umask for one test (restored after it)."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(value: int) -> None:
        os.umask(value)

    yield set_mask
    os.umask(saved)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_permissions_open_would_give(tmp_path, umask, mask):
    umask(mask)
    with open(tmp_path / "plain", "w") as handle:
        handle.write("x")
    write_text(tmp_path / "atomic", "x")
    assert mode(tmp_path / "atomic") == mode(tmp_path / "plain") == 0o666 & ~mask


def test_a_replaced_file_keeps_its_mode_and_the_old_content_until_the_rename(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "kept.txt"
    target.write_text("old")
    os.chmod(target, 0o640)
    handle = AtomicFile(target)
    handle.write(b"new")
    assert target.read_text() == "old", "readers see the old file until the commit"
    assert [p.name for p in partials(tmp_path)] == [handle.temporary.name]
    handle.commit()
    assert target.read_text() == "new" and mode(target) == 0o640 and not partials(tmp_path)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "state.bin"
    write_bytes(target, b"good state")
    with enospc_under(tmp_path, monkeypatch), pytest.raises(WriteError) as caught:
        write_bytes(target, b"x" * 100_000)
    assert str(caught.value) == f"cannot write {target}: No space left on device"
    assert caught.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"good state" and not partials(tmp_path)


def test_a_real_full_disk(tmp_path, monkeypatch):
    """A tmpfs as root (else the monkeypatched ENOSPC): the kernel's error, the old file kept."""
    folder = tmp_path / "full"
    with full_disk(folder, monkeypatch, size="8k") as how:
        write_bytes(folder / "small", b"fits")
        with pytest.raises(WriteError, match="No space left on device"):
            write_bytes(folder / "small", os.urandom(64 * 1024))
        assert (folder / "small").read_bytes() == b"fits", how
        assert not partials(folder)


def test_a_log_line_that_does_not_fit_is_taken_back(tmp_path, monkeypatch):
    import sepkit.io

    log = tmp_path / "metrics.jsonl"
    append_line(log, '{"step": 1}')

    def short_write(fd, data, path):  # half the line reaches the disk, then it is full
        os.write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sepkit.io, "_write_all", short_write)
    with pytest.raises(WriteError, match="No space left"):
        append_line(log, '{"step": 2, "loss": 0.5}')
    assert log.read_text() == '{"step": 1}\n'


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "vocals.wav"
    # a child that starts writing the target, then is killed -9 in the middle
    script = (
        "import os, sys; from sepkit.io import AtomicFile\n"
        f"f = AtomicFile({str(target)!r}); f.write(b'x' * 1000); print(f.temporary, flush=True); os.kill(os.getpid(), 9)\n"
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    left = Path(child.stdout.strip())
    assert child.returncode == -9 and left.exists() and left.name.startswith(".vocals.wav.")
    older = tmp_path / ".vocals.wav.999999999.partial"  # an older sepkit's name, its pid long gone
    older.write_bytes(b"y")
    unrelated = tmp_path / ".other.wav.999999999.partial"
    unrelated.write_bytes(b"z")
    write_bytes(target, b"complete")
    assert target.read_bytes() == b"complete"
    assert not left.exists() and not older.exists(), "stale temporaries of the same output are removed"
    assert unrelated.exists(), "those of other outputs are not this write's business"


def test_the_temporary_of_a_live_writer_is_kept(tmp_path):
    target = tmp_path / "model.safetensors"
    live = AtomicFile(target)
    live.write(b"in progress")
    assert remove_stale_partials(target) == []
    assert live.temporary.exists()
    live.commit()
    assert target.read_bytes() == b"in progress"


def test_exclusive_creation_never_replaces(tmp_path):
    write_text(tmp_path / "record", "first", exclusive=True)
    with pytest.raises(FileExistsError):
        write_text(tmp_path / "record", "second", exclusive=True)
    assert (tmp_path / "record").read_text() == "first" and not partials(tmp_path)


def test_no_hand_written_atomic_write_is_left_in_the_package():
    """One helper for the package: no mkstemp/os.replace pairs outside sepkit.io (the trainer,
    which calls sepkit.io through save_state and save_model, is the lead's to switch)."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("sepkit", "plugins/sepkit_plugins", "scripts"):
        for path in (root / folder).rglob("*.py"):
            if path.name == "io.py" and path.parent.name == "sepkit":
                continue
            text = path.read_text(encoding="utf-8")
            if "mkstemp(" in text or "os.replace(" in text or '}.partial"' in text:
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
