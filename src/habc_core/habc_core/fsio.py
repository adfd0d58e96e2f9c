"""Durable file writes: the one place that knows how a write survives a crash or a power cut.

`atomic_write_bytes` / `atomic_write_text` replace a file so a reader sees the old content or
the new, never half: the data goes to a temporary file in the same directory (a rename stays on
one filesystem), is fsynced (a power cut cannot leave an empty file behind a valid name), is
renamed over the target, and the directory is fsynced (so the rename itself is durable).

`write_new_file` is the building block of writers that make a whole directory atomically (a
checkpoint): it creates one file that must not exist yet, with a fixed mode, and fsyncs it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Files other users read (episodes, stores, checkpoints deployed by another user): the mode is
# set explicitly, never left to the umask or to mkstemp's 0600.
DEFAULT_MODE = 0o644


def fsync_dir(path: Path | str) -> None:
    """Make a rename or a new file in `path` durable (its directory entry); a no-op where the
    filesystem does not let a directory be opened or synced."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_fd(fd: int, data: bytes, mode: int) -> None:
    """Write all of `data` to the open descriptor, set its mode, fsync it and close it."""
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), mode)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_new_file(path: Path | str, data: bytes, mode: int = DEFAULT_MODE) -> None:
    """Create `path` (FileExistsError if it exists) holding `data` with `mode`, fsynced.

    The caller makes its directory durable (e.g. fsync_dir once after the last file).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    _write_fd(fd, data, mode)


def atomic_write_bytes(path: Path | str, data: bytes, mode: int = DEFAULT_MODE) -> Path:
    """Replace `path` with `data` atomically and durably (module docstring); returns `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _write_fd(fd, data, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: Path | str, text: str, mode: int = DEFAULT_MODE) -> Path:
    """`atomic_write_bytes` of `text` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode)
