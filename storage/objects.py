"""What the object-store tiers (S3, Azure Blob) have in common: the key of an instance,
what a stored object says of itself, the errors, and streaming a file through a hash.

The clients (s3.py, azure_blob.py) are asyncio code: they run on the node's asyncio
portal, one crossing per whole operation (an upload, a download), never per SDK call.
Bytes always move between a local file and the store in bounded chunks: no operation
holds a whole instance in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from pathlib import Path

import attrs

from .errors import StorageError
from .layout import checked_uid

CHUNK = 1024 * 1024
SHA256_METADATA = "sha256"  # the object's user metadata key holding the SHA-256 we computed


def instance_key(prefix: str, study_uid: str, series_uid: str, sop_instance_uid: str) -> str:
    """`{prefix}{StudyUID}/{SeriesUID}/{SOPUID}.dcm`; the UIDs are checked first, so no
    key ever escapes its prefix."""
    study, series, sop = (
        checked_uid(name, value)
        for name, value in (("Study Instance UID", study_uid), ("Series Instance UID", series_uid), ("SOP Instance UID", sop_instance_uid))
    )
    return f"{prefix}{study}/{series}/{sop}.dcm"


@attrs.frozen(kw_only=True)
class StoredObject:
    key: str
    size: int
    sha256: str | None  # None for an object we did not write (a stray)
    # An upload's answer: the bytes sent were hashed and matched the SHA-256 asked for,
    # and the store confirmed it holds them (a local copy hashed as written; an S3 PUT's
    # ETag is the MD5 of the bytes sent). False: only the size was confirmed.
    checked: bool = False


class ObjectStoreError(StorageError):
    """An operation on an object store failed; `transient` when trying again may help."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ObjectMissing(ObjectStoreError):
    pass


class ChecksumMismatch(ObjectStoreError):
    pass


def read_checked(path: Path, key: str, *, size: int, sha256: str, md5: bool) -> tuple[bytes, str | None]:
    """A file below the single-request threshold, read whole and hashed in one pass on
    one worker thread (one crossing per upload, not one per chunk and one per hash).
    Raises ChecksumMismatch unless it is `size` bytes with `sha256` - what the index
    says - so nothing else ever leaves. Returns the body and, if asked, its MD5 (hex):
    what a store answers of the bytes it received."""
    with open(path, "rb") as file:
        body = file.read(size + 1)  # one byte more: a file grown since shows
    if len(body) != size:
        found = f"more than {size}" if len(body) > size else str(len(body))
        raise ChecksumMismatch(f"{key}: {found} bytes read, {size} expected")
    verify(key, sha256, hashlib.sha256(body).hexdigest())
    return body, hashlib.md5(body, usedforsecurity=False).hexdigest() if md5 else None


class FileRange(io.RawIOBase):
    """`length` bytes of a file from `start` as a read-only, seekable stream: a part of a
    multipart (block) upload is read from the file while it is sent, in the HTTP
    client's chunks, so no part is ever a buffer of its own - memory stays flat however
    large `part_size` is and however many parts are in flight. Seeking is within the
    range (the SDKs seek back to retry)."""

    def __init__(self, path: Path, start: int, length: int) -> None:
        self._file = open(path, "rb", buffering=0)
        self._start, self._length, self._position = start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = min(max(base + offset, 0), self._length)
        return self._position

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self._length - self._position)
        if count <= 0:
            return 0
        read = os.preadv(self._file.fileno(), [memoryview(buffer)[:count]], self._start + self._position)
        self._position += read
        return read

    def close(self) -> None:
        self._file.close()
        super().close()


class HashingWriter:
    """Writes downloaded chunks to a file (off the loop's thread), hashing them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._hash = hashlib.sha256()
        self._file = open(path, "xb")

    async def write(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)
        await asyncio.to_thread(self._file.write, data)

    def close(self) -> str:
        self._file.close()
        return self._hash.hexdigest()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def verify(key: str, expected: str | None, actual: str) -> None:
    if expected is not None and expected != actual:
        raise ChecksumMismatch(f"{key}: SHA-256 {actual} read, {expected} stored")
