"""One interface over the three kinds of tier: a directory (storage/local_store.py, run
on a worker thread), an S3 bucket and an Azure container (their asyncio clients, run on
the node's asyncio portal, one crossing per whole operation)."""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from ...runtime.portal import AsyncioPortal
from ...runtime.threads import run_sync_in_thread
from ....storage.attributes import InstanceRecord
from ....storage.deletion import Removal
from ....storage.local_store import INCOMING, LocalStore
from ....storage.object_checks import CORRUPT, MISSING, OK, ExpectedObject, ObjectCheck, mismatch
from ....storage.object_writer import ObjectWriter
from ....storage.objects import ObjectMissing, ObjectStoreError, StoredObject, read_checked
from ....storage.part10 import WrittenFile
from ....storage.tier_settings import HOT, TierDefinition


class Backend(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def check(self) -> None: ...
    async def put_file(self, key: str, path: Path, *, size: int, sha256: str) -> StoredObject: ...
    async def get_file(self, key: str, dest: Path, *, expected_sha256: str | None) -> StoredObject: ...
    async def head(self, key: str) -> StoredObject: ...
    async def delete(self, key: str) -> None: ...
    async def list(self, prefix: str, cursor: str | None, limit: int) -> tuple[list[StoredObject], str | None]: ...
    def local_path(self, key: str) -> Path | None: ...
    def open_writer(self, key: str | None) -> ObjectWriter: ...
    async def place(self, writer: ObjectWriter, key: str, *, overwrite: bool) -> tuple[bool, WrittenFile]: ...
    async def remove(self, keys: tuple[str, ...]) -> Removal: ...
    async def check_objects(self, expected: tuple[ExpectedObject, ...]) -> list[ObjectCheck]: ...
    async def read_record(self, key: str) -> InstanceRecord: ...
    async def empty_trash(self) -> int: ...


class LocalBackend:
    def __init__(self, definition: TierDefinition) -> None:
        settings = definition.settings
        # The data directory: stored instances, and writers whose key is not known yet.
        areas = ("files", INCOMING) if definition.name == HOT else ()
        self.store = LocalStore(Path(settings.path), sync=settings.fsync, areas=areas)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def check(self) -> None:
        await run_sync_in_thread(self.store.check)

    async def put_file(self, key: str, path: Path, *, size: int, sha256: str) -> StoredObject:
        return await run_sync_in_thread(partial(self.store.put_file, key, path, size=size, sha256=sha256))

    async def get_file(self, key: str, dest: Path, *, expected_sha256: str | None) -> StoredObject:
        return await run_sync_in_thread(partial(self.store.get_file, key, dest, expected_sha256=expected_sha256))

    async def head(self, key: str) -> StoredObject:
        return await run_sync_in_thread(self.store.head, key)

    async def delete(self, key: str) -> None:
        await run_sync_in_thread(self.store.delete, key)

    async def list(self, prefix: str, cursor: str | None, limit: int) -> tuple[list[StoredObject], str | None]:
        return await run_sync_in_thread(partial(self.store.list, prefix, cursor=cursor, limit=limit))

    def local_path(self, key: str) -> Path | None:
        return self.store.path(key)

    def open_writer(self, key: str | None) -> ObjectWriter:
        return self.store.writer(key)  # no I/O until its first write

    async def place(self, writer: ObjectWriter, key: str, *, overwrite: bool) -> tuple[bool, WrittenFile]:
        return await run_sync_in_thread(partial(self.store.place, writer, key, overwrite=overwrite))

    async def remove(self, keys: tuple[str, ...]) -> Removal:
        return await run_sync_in_thread(self.store.remove, keys)

    async def check_objects(self, expected: tuple[ExpectedObject, ...]) -> list[ObjectCheck]:
        return await run_sync_in_thread(self.store.check_objects, expected)

    async def read_record(self, key: str) -> InstanceRecord:
        return await run_sync_in_thread(self.store.read_record, key)

    async def empty_trash(self) -> int:
        return await run_sync_in_thread(self.store.empty_trash)


class ObjectBackend:
    """S3Store or AzureBlobStore, opened once on the portal's loop and kept for the
    actor's incarnation (one HTTP connection pool)."""

    def __init__(self, definition: TierDefinition, portal: AsyncioPortal) -> None:
        self.definition = definition
        self.portal = portal
        self._context: Any = None
        self.store: Any = None

    async def open(self) -> None:
        if self.definition.kind == "s3":
            from ....storage.s3 import S3Store as opener
        else:
            from ....storage.azure_blob import AzureBlobStore as opener
        self._context = opener.open(self.definition.settings)
        self.store = await self.portal.run(self._context.__aenter__)

    async def close(self) -> None:
        if self._context is not None:
            context, self._context = self._context, None
            with contextlib.suppress(Exception):
                await self.portal.run(context.__aexit__, None, None, None)

    async def check(self) -> None:
        await self.portal.run(self.store.check)

    async def put_file(self, key: str, path: Path, *, size: int, sha256: str) -> StoredObject:
        if self.store.whole(size):
            # Read and hashed on one of our worker threads: the asyncio loop, which runs
            # every upload's requests, only sends.
            body, md5 = await run_sync_in_thread(partial(read_checked, path, key, size=size, sha256=sha256, md5=True))
            return await self.portal.run(partial(self.store.put_body, key, body, sha256=sha256, md5=md5))
        return await self.portal.run(partial(self.store.put_file, key, path, size=size, sha256=sha256))

    async def get_file(self, key: str, dest: Path, *, expected_sha256: str | None) -> StoredObject:
        return await self.portal.run(partial(self.store.get_file, key, dest, expected_sha256=expected_sha256))

    async def head(self, key: str) -> StoredObject:
        return await self.portal.run(self.store.head, key)

    async def delete(self, key: str) -> None:
        await self.portal.run(self.store.delete, key)

    async def list(self, prefix: str, cursor: str | None, limit: int) -> tuple[list[StoredObject], str | None]:
        return await self.portal.run(partial(self.store.list, prefix, cursor=cursor, limit=limit))

    def local_path(self, key: str) -> Path | None:
        return None

    def open_writer(self, key: str | None) -> ObjectWriter:
        raise ObjectStoreError(f"an {self.definition.kind} tier takes whole objects (PutFile), not a stream")

    async def place(self, writer: ObjectWriter, key: str, *, overwrite: bool) -> tuple[bool, WrittenFile]:
        raise ObjectStoreError(f"an {self.definition.kind} tier takes whole objects (PutFile), not a stream")

    async def read_record(self, key: str) -> InstanceRecord:
        raise ObjectStoreError(f"an {self.definition.kind} tier's objects are parsed from a staged copy")

    async def empty_trash(self) -> int:
        return 0  # a delete is final at once

    async def remove(self, keys: tuple[str, ...]) -> Removal:
        # One portal crossing for the batch; the deletes run max_concurrency at a time.
        return await self.portal.run(_remove_all, self.store, keys, self.definition.settings.max_concurrency)

    async def check_objects(self, expected: tuple[ExpectedObject, ...]) -> list[ObjectCheck]:
        """From the size and SHA-256 the store keeps with each object (written by the tier
        and checked then); a full parse needs a staged copy and is not done here."""
        checks = []
        for item in expected:
            try:
                found = await self.head(item.key)
            except ObjectMissing:
                checks.append(ObjectCheck(key=item.key, outcome=MISSING))
                continue
            problem = mismatch(found.size, found.sha256, item) if item.checksum else ""
            checks.append(ObjectCheck(key=item.key, outcome=CORRUPT if problem else OK, detail=problem))
        return checks


async def _remove_all(store: Any, keys: tuple[str, ...], concurrency: int) -> Removal:
    """On the portal's loop: delete every key, gone already counting as done."""
    slots = asyncio.Semaphore(concurrency)
    failed: dict[str, str] = {}

    async def remove(key: str) -> None:
        async with slots:
            try:
                await store.delete(key)
            except ObjectMissing:
                pass
            except ObjectStoreError as error:
                failed[key] = str(error)

    await asyncio.gather(*(remove(key) for key in keys))
    return Removal(done=tuple(key for key in keys if key not in failed), failed=tuple(failed.items()))


def backend_for(definition: TierDefinition, portal: AsyncioPortal | None) -> Backend:
    if definition.kind == "local":
        return LocalBackend(definition)
    if portal is None:
        raise RuntimeError(f"tier {definition.name}: an {definition.kind} tier needs the node's asyncio portal")
    return ObjectBackend(definition, portal)


async def check_tier(definition: TierDefinition, portal: AsyncioPortal | None) -> None:
    """Open the tier and run its start-up check (reachable, credentials, writable);
    raises ObjectStoreError saying what is wrong."""
    backend = backend_for(definition, portal)
    try:
        await backend.open()
        await backend.check()
    finally:
        await backend.close()
