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
import uuid
from pathlib import Path, PurePosixPath

from collections.abc import Iterator, Sequence

from .attributes import InstanceRecord
from .deletion import Removal, remove_empty_folders
from .file_scan import is_temp_name
from .files import discard, ensure_directory, fsync_directory, temp_path_beside
from .object_checks import ExpectedObject, ObjectCheck, check_local, read_record
from .object_writer import ObjectWriter
from .objects import CHUNK, ObjectMissing, ObjectStoreError, StoredObject, verify
from .part10 import WrittenFile

INCOMING = "incoming"  # a local tier's area for writers whose key is not known yet
TRASH = ".trash"  # removed files wait here to be unlinked, outside any lock (empty_trash)


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

    def __init__(self, root: Path, *, sync: bool = True, areas: tuple[str, ...] = ()) -> None:
        """`areas`: folders under the root made by `check` (the hot tier's files/ and incoming/)."""
        self.root = root
        self.sync = sync
        self.areas = areas

    def check(self) -> None:
        """The root exists (or can be made) and is writable: a probe file is written and removed."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for area in self.areas:
                (self.root / area).mkdir(exist_ok=True)
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
        """Files whose key starts with `prefix`, one page after key `cursor`, in the order
        of their path components (temp files of copies in progress are not objects).
        A page walks only what it returns: folders wholly before the cursor are skipped."""
        found: list[StoredObject] = []
        for key, size in self._walk(prefix, tuple(cursor.split("/")) if cursor else None):
            if len(found) == limit:
                return found, found[-1].key
            found.append(StoredObject(key=key, size=size, sha256=None))
        return found, None

    def _walk(self, prefix: str, after: tuple[str, ...] | None) -> Iterator[tuple[str, int]]:
        # Only the directory the prefix names, not the whole root.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = key_path(self.root, base) if base else self.root
        yield from self._walk_folder(start, tuple(base.split("/")) if base else (), prefix, after)

    def _walk_folder(self, folder: Path, parts: tuple[str, ...], prefix: str, after: tuple[str, ...] | None):
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):  # removed meanwhile, or never made
            return
        for entry in entries:
            here = (*parts, entry.name)
            if here == (TRASH,):
                continue  # no objects: files waiting to be unlinked
            if entry.is_dir(follow_symlinks=False):
                if after is None or here >= after[: len(here)]:
                    yield from self._walk_folder(Path(entry.path), here, prefix, after)
            elif entry.is_file(follow_symlinks=False) and not is_temp_name(entry.name):
                key = "/".join(here)
                if (after is None or here > after) and key.startswith(prefix):
                    try:
                        yield key, entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue

    # -- what only a local tier does: a writer handed out, placing, bulk removal, checks

    def writer(self, key: str | None) -> ObjectWriter:
        """A writer for a new object (its temp file is created on first write)."""
        return ObjectWriter(self.path(key) if key is not None else None, self.root / INCOMING, sync=self.sync)

    def place(self, writer: ObjectWriter, key: str, *, overwrite: bool) -> tuple[bool, WrittenFile]:
        return writer.place(self.path(key), overwrite=overwrite)

    def remove(self, keys: Sequence[str]) -> Removal:
        """Take the files away from their keys, make that durable, and remove the folders
        it emptied (never a key's top folder). A file already gone counts as removed.

        They are renamed into the trash rather than unlinked: a rename costs ~0.03 ms
        here, an unlink of a 514 KiB file ~2 ms of waiting on the filesystem, and a
        removal often runs under a study lock (migration, deletion). empty_trash
        unlinks them later; whatever a crash leaves there is garbage by construction."""
        done: list[str] = []
        failed: list[tuple[str, str]] = []
        folders: dict[Path, Path] = {}
        trash = self.root / TRASH
        trash.mkdir(exist_ok=True)
        for key in keys:
            try:
                path = self.path(key)
            except ObjectStoreError as error:  # only a tampered journal names such a key: never follow it
                failed.append((key, str(error)))
                continue
            try:
                os.rename(path, trash / f"{uuid.uuid4().hex}.removed")  # no longer an instance: never *.dcm
            except FileNotFoundError:
                pass
            except OSError as error:
                try:  # EXDEV: a folder of the tier on another filesystem
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError:
                    failed.append((key, f"{type(error).__name__}: {error.strerror or error}"))
                    continue
            done.append(key)
            folders[path.parent] = self.root / PurePosixPath(key).parts[0]
        for folder in folders:
            if folder.is_dir():
                fsync_directory(folder)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            remove_empty_folders(folder, folders[folder])
        return Removal(done=tuple(done), failed=tuple(failed))

    def empty_trash(self) -> int:
        """Unlink what remove() put in the trash; how many files that was."""
        try:
            entries = list(os.scandir(self.root / TRASH))
        except FileNotFoundError:
            return 0
        for entry in entries:
            discard(entry.path)
        return len(entries)

    def check_objects(self, expected: Sequence[ExpectedObject]) -> list[ObjectCheck]:
        return check_local(self.root, expected)

    def read_record(self, key: str) -> InstanceRecord:
        return read_record(self.root, key)
