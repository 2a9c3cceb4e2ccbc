"""A directory as a storage tier's backing store: plain synchronous functions, run off
the event loop by the tier actor (actors/node/tiers/).

Keys are relative paths under the root (`{prefix}{Study}/{Series}/{SOP}.dcm`, or for the
hot tier the index's `files/...` path); a key that would leave the root is refused.
Copies go through a temp file beside the destination, hashed on the way, fsynced and
renamed into place, so a crash never leaves a half-written object under its key.
Bytes move in 1 MiB chunks: memory stays bounded whatever the size.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from .files import TEMP_SUFFIX, discard, ensure_directory, fsync_directory, temp_path_beside
from .objects import CHUNK, ObjectMissing, ObjectStoreError, StoredObject, verify


def key_path(root: Path, key: str) -> Path:
    """Where `key` lives under `root`; a key with `..`, an absolute path or a NUL is refused."""
    relative = PurePosixPath(key)
    if not key or "\x00" in key or relative.is_absolute() or ".." in relative.parts:
        raise ObjectStoreError(f"{key!r} is not a key under the tier's root")
    return root.joinpath(*relative.parts)


def copy_hashing(source: Path, dest: Path, *, sync: bool = True) -> StoredObject:
    """Copy `source` to a new file `dest` (temp beside it, fsync, rename); its size and SHA-256."""
    ensure_directory(dest.parent, sync=sync)
    tmp = temp_path_beside(dest)
    digest, size = hashlib.sha256(), 0
    try:
        with open(source, "rb") as reader, open(tmp, "xb") as writer:
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                writer.write(chunk)
            if sync:
                writer.flush()
                os.fsync(writer.fileno())
        os.replace(tmp, dest)
        if sync:
            fsync_directory(dest.parent)
    except FileNotFoundError as error:
        discard(tmp)
        raise ObjectMissing(f"{error.filename}: no such file") from None
    except BaseException:
        discard(tmp)
        raise
    return StoredObject(key=str(dest), size=size, sha256=digest.hexdigest())


def hash_file(path: Path) -> StoredObject:
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        raise ObjectMissing(f"{path}: no such file") from None
    return StoredObject(key=str(path), size=size, sha256=digest.hexdigest())


class LocalStore:
    """One directory; the same operations as S3Store and AzureBlobStore, synchronous."""

    def __init__(self, root: Path, *, sync: bool = True) -> None:
        self.root = root
        self.sync = sync

    def check(self) -> None:
        """The root exists (or can be made) and is writable: a probe file is written and removed."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".triopacs-write-check"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as error:
            raise ObjectStoreError(f"directory {str(self.root)!r} is not writable: {error.strerror or error}") from None

    def path(self, key: str) -> Path:
        return key_path(self.root, key)

    def put_file(self, key: str, source: Path, *, size: int, sha256: str) -> StoredObject:
        copied = copy_hashing(source, self.path(key), sync=self.sync)
        if copied.size != size or copied.sha256 != sha256:
            discard(self.path(key))
            raise ObjectStoreError(f"upload {key}: {copied.size} bytes with SHA-256 {copied.sha256} read, {size} bytes {sha256} expected")
        return StoredObject(key=key, size=size, sha256=sha256, checked=True)

    def get_file(self, key: str, dest: Path, *, expected_sha256: str | None = None) -> StoredObject:
        copied = copy_hashing(self.path(key), dest, sync=False)  # a staged copy need not survive a crash
        try:
            verify(key, expected_sha256, copied.sha256 or "")
        except BaseException:
            discard(dest)
            raise
        return StoredObject(key=key, size=copied.size, sha256=copied.sha256)

    def head(self, key: str) -> StoredObject:
        """Size and SHA-256, read from the file itself (a directory keeps no metadata)."""
        found = hash_file(self.path(key))
        return StoredObject(key=key, size=found.size, sha256=found.sha256)

    def delete(self, key: str) -> None:
        path = self.path(key)
        discard(path)

    def list(self, prefix: str, *, cursor: str | None = None, limit: int = 1000) -> tuple[list[StoredObject], str | None]:
        """Files whose key starts with `prefix`, in key order, one page after key `cursor`
        (temp files of copies in progress are not objects)."""
        keys = sorted(self._keys(prefix))
        if cursor is not None:
            keys = [k for k in keys if k > cursor]
        page = keys[:limit]
        found = []
        for key in page:
            try:
                found.append(StoredObject(key=key, size=self.path(key).stat().st_size, sha256=None))
            except FileNotFoundError:
                continue
        return found, (page[-1] if len(keys) > limit else None)

    def _keys(self, prefix: str):
        # Walk only the directory the prefix names, not the whole root.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = key_path(self.root, base) if base else self.root
        if not start.is_dir():
            return
        for directory, _, names in os.walk(start):
            for name in names:
                if name.endswith(TEMP_SUFFIX) or name.startswith(".triopacs-"):
                    continue
                key = Path(directory, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key
