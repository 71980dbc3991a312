"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _temp_with(path: Path, data: bytes, mode: int) -> str:
    """A fsynced temp file beside `path` holding `data`, with permission bits `mode`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def _sync_dir(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes) -> None:
    """Create `path` holding `data`; FileExistsError if it exists (a link, unlike a rename, never replaces)."""
    umask = os.umask(0)
    os.umask(umask)
    tmp = _temp_with(path, data, 0o666 & ~umask)
    try:
        os.link(tmp, path)
    finally:
        os.unlink(tmp)
    _sync_dir(path)


def replace(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, keeping its permission bits."""
    tmp = _temp_with(path, data, os.stat(path).st_mode & 0o7777)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _sync_dir(path)
