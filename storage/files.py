"""Durable file placement: temp file beside the destination, fsync, publish, fsync dir.

Recommended order for an association storing one instance (the index is told only
after the bytes are durable, the peer only after the index committed):

1. ``tmp, file = open_temp_beside(dest)``; write with ``part10.Part10Writer``; ``finish()``
   (fsyncs the file); close.
2. ``published = publish(tmp, dest, overwrite=policy is DuplicatePolicy.REPLACE)``.
   ``False`` means a file is already at ``dest`` and was left alone.
3. Record the instance in the index (group commit), get its ``RecordOutcome``:
   - STORED and not published (the old file was an unindexed orphan): ``publish(tmp,
     dest, overwrite=True)``.
   - REJECTED/IGNORED: ``discard(tmp)`` if not published; if published (another layout
     path, e.g. date layout), ``discard(dest)`` unless ``dest`` is the previous path.
   - REPLACED: ``discard(previous_path)`` when it differs from ``dest``.
4. Answer the C-STORE.

A crash between 2 and 3 leaves an unindexed file (harmless; a re-send overwrites it,
a sweep can find it); it never leaves an index row without its file.

``place_durably`` does steps 1's fsync and 2 in one go for a file written without
fsync, paying one journal commit instead of two for a new destination.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from collections.abc import Callable
import uuid
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".part"


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Make a directory's entries (a rename, a new file or subdirectory) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_directory(path: Path, *, sync: bool = True) -> None:
    """``mkdir -p`` that fsyncs the parent of every directory it creates (unless not ``sync``)."""
    if path.is_dir():
        return
    missing = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue  # another association created it first: fine
        if sync:
            fsync_directory(directory.parent)


def temp_path_beside(dest: Path) -> Path:
    """A unique hidden name in dest's directory (same filesystem, so rename is atomic)."""
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")


def open_temp_beside(dest: Path) -> tuple[Path, BinaryIO]:
    ensure_directory(dest.parent)
    tmp = temp_path_beside(dest)
    return tmp, open(tmp, "xb")


def publish(tmp: Path, dest: Path, *, overwrite: bool) -> bool:
    """Move a finished temp file to its destination and fsync the directory.

    With ``overwrite=False`` an existing destination is left untouched and False is
    returned (hard link + unlink: atomic no-clobber without renameat2)."""
    if overwrite:
        os.replace(tmp, dest)
    else:
        try:
            os.link(tmp, dest)
        except FileExistsError:
            return False
        os.unlink(tmp)
    fsync_directory(dest.parent)
    return True


_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of dirty pages, do not wait


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return function


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing a file's dirty pages to disk now, without waiting
    (Linux sync_file_range; Python has no binding). A later fsync then has less to do.
    Where the call does not exist this does nothing: it only ever saves time."""
    function = _sync_file_range()
    if function is not None:
        function(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def fsync_path(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def place_durably(tmp: Path, dest: Path, *, overwrite: bool, sync: bool = True) -> bool:
    """Move a written (not yet fsynced) temp file to dest and make both durable.

    A new destination is linked first and fsynced after, so one journal commit carries
    the data and the new directory entry together (the directory fsync that follows
    finds little left to do). Replacing an existing file keeps the careful order -
    fsync, then rename - so a crash can never leave the stored version half-replaced.
    Returns False, touching nothing, when dest exists and overwrite is False. With
    ``sync=False`` the same moves happen and the kernel flushes them when it likes.
    """
    try:
        os.link(tmp, dest)
    except FileExistsError:
        if not overwrite:
            return False
        if sync:
            fsync_path(tmp)
        os.replace(tmp, dest)
    else:
        os.unlink(tmp)
        if sync:
            fsync_path(dest)
    if sync:
        fsync_directory(dest.parent)
    return True


def discard(path: str | os.PathLike[str] | None) -> None:
    """Remove a file if it is there; a missing file is already what we want."""
    if path is None:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
