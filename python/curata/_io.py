"""Crash-safe file writes shared by everything curata saves (indexes, reports)."""

from __future__ import annotations

import errno
import os
import tempfile
from typing import IO, Any, Callable

from . import _core


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], *, text: bool = False,
                 size: int | None = None) -> str:
    """Write ``path`` so that it holds either its old content or the complete new one.

    ``write(fh)`` fills a temporary file in the same directory (binary, or UTF-8 text when
    ``text``); it is flushed and fsynced, given the permissions of the file it replaces (0o644
    for a new one: ``mkstemp``'s 0o600 would hide it from colleagues and web servers), renamed
    over ``path`` with ``os.replace`` and the directory is fsynced so the rename itself is
    durable. On any error the temporary file is removed and the error re-raised. Returns the
    path as a string.

    ``size``: the exact number of bytes ``write`` will produce, when known. The temporary file is
    then preallocated (Linux ``fallocate``; skipped where the file system cannot), so the writes
    need no block allocation per page (2-3x faster writes into the page cache for large files),
    and a full disk raises ``OSError`` (ENOSPC) before anything is written.
    """
    path = os.fsdecode(os.fspath(path))  # bytes paths too (tempfile's prefix must be a str)
    directory = os.path.dirname(os.path.abspath(path))
    # Checked up front: the write would otherwise fill a temporary file (all of a large index)
    # before failing, with an error that names the temporary file instead of ``path``.
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "cannot write a file over a directory", path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "the directory to write into does not exist", directory)
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        mode = 0o644
    # The temporary name adds 14 bytes to the file's: a legal name near the 255-byte limit would
    # make it too long (ENAMETOOLONG), so at most 100 bytes of the name go into it.
    stem = os.fsdecode(os.fsencode(os.path.basename(path))[:100])
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + stem + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as fh:
            if size:
                _core.preallocate(fh.fileno(), size)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)
    return path


def _fsync_directory(directory: str) -> None:
    # Makes the rename durable. Not every platform can open a directory (Windows); there the
    # rename is as durable as the OS makes it.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
