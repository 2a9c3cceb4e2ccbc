"""An Azure Blob container as a storage tier's backing store, with azure-storage-blob's
asyncio client (it runs on the node's asyncio portal; see objects.py).

- One Put Blob below `block_upload_threshold`; above it the file goes up as blocks of
  `block_size` (`max_concurrency` staged at once), then the block list is committed.
  Blocks never committed are discarded by the service: nothing half-written is visible.
- The SHA-256 the node computed travels as blob metadata and is checked on every read.
- The access tier (Hot, Cool, Cold, Archive) may be set per blob.
- The SDK retries transient failures with exponential backoff (`max_attempts`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
from azure.core.exceptions import AzureError, ClientAuthenticationError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, StandardBlobTier
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from .objects import (
    SHA256_METADATA,
    HashingWriter,
    ObjectMissing,
    ObjectStoreError,
    StoredObject,
    FileRange,
    read_checked,
    verify,
)

MIB = 1024 * 1024
ACCESS_TIERS = ("Hot", "Cool", "Cold", "Archive")


@attrs.frozen(kw_only=True)
class AzureSettings:
    connection_string: str = attrs.field(repr=False)
    container: str
    access_tier: str | None = None  # default for new blobs; None: the account's default
    block_upload_threshold: int = 16 * MIB
    block_size: int = 8 * MIB
    max_concurrency: int = 4
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


def _error(key: str, action: str, error: Exception) -> ObjectStoreError:
    if isinstance(error, ResourceNotFoundError):
        return ObjectMissing(f"{key}: no such blob")
    status = getattr(error, "status_code", None)
    transient = status is None or status in (408, 429) or status >= 500
    return ObjectStoreError(f"{action} {key}: {error}", transient=transient)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


class AzureBlobStore:
    def __init__(self, settings: AzureSettings, container: ContainerClient) -> None:
        self.settings = settings
        self._container = container

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: AzureSettings) -> AsyncIterator[AzureBlobStore]:
        service = BlobServiceClient.from_connection_string(
            settings.connection_string,
            retry_total=settings.max_attempts,
            connection_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        )
        async with service:
            yield cls(settings, service.get_container_client(settings.container))

    async def check(self) -> None:
        """The container exists, the credentials are good, and we may write."""
        name = self.settings.container
        try:
            await self._container.get_container_properties()
        except ResourceNotFoundError:
            raise ObjectStoreError(f"container {name!r} does not exist") from None
        except ClientAuthenticationError as error:
            raise ObjectStoreError(f"access to container {name!r} denied (credentials?): {_first_line(error.message)}") from None
        except AzureError as error:
            if getattr(error, "status_code", None) in (401, 403):  # Azurite answers a bad key with 403 AuthorizationFailure
                code = getattr(error, "error_code", None) or _first_line(str(error))
                raise ObjectStoreError(f"access to container {name!r} denied (credentials?): {code}") from None
            raise ObjectStoreError(f"container {name!r} unreachable: {_first_line(str(error))}", transient=True) from None
        probe = self._container.get_blob_client(".triopacs-write-check")
        try:
            await probe.upload_blob(b"ok", overwrite=True)
            await probe.delete_blob()
        except AzureError as error:
            raise ObjectStoreError(f"container {name!r} is not writable: {error}") from None

    def whole(self, size: int) -> bool:
        """Whether an object of `size` bytes goes up in one request (put_body)."""
        return size < self.settings.block_upload_threshold

    async def put_file(
        self, key: str, path: Path, *, size: int, sha256: str, access_tier: str | None = None
    ) -> StoredObject:
        if self.whole(size):
            body, sent_md5 = await asyncio.to_thread(read_checked, path, key, size=size, sha256=sha256, md5=True)
            return await self.put_body(key, body, sha256=sha256, md5=sent_md5, access_tier=access_tier)
        tier = self._tier(access_tier)
        try:
            await self._blocks(self._container.get_blob_client(key), path, size, sha256, tier)
        except AzureError as error:
            raise _error(key, "upload", error) from None
        return await self._held(key, size)

    async def put_body(self, key: str, body: bytes, *, sha256: str, md5: str, access_tier: str | None = None) -> StoredObject:
        """One Put Blob of a body read_checked read (its size and SHA-256 are the index's).
        The service answers the MD5 of what it stored, which we compare with `md5`."""
        try:
            answer = await self._container.get_blob_client(key).upload_blob(
                body, overwrite=True, metadata={SHA256_METADATA: sha256}, standard_blob_tier=self._tier(access_tier)
            )
        except AzureError as error:
            raise _error(key, "upload", error) from None
        if bytes(answer.get("content_md5") or b"").hex() == md5:
            return StoredObject(key=key, size=len(body), sha256=sha256, checked=True)
        return await self._held(key, len(body))

    def _tier(self, access_tier: str | None) -> StandardBlobTier | None:
        named = access_tier or self.settings.access_tier
        return StandardBlobTier(named) if named else None

    async def _held(self, key: str, size: int) -> StoredObject:
        """What the container holds at `key` after an upload of `size` bytes."""
        stored = await self.head(key)
        if stored.size != size:
            raise ObjectStoreError(f"upload {key}: {stored.size} bytes stored, {size} sent", transient=True)
        return stored

    async def _blocks(self, blob, path: Path, size: int, sha256: str, tier: StandardBlobTier | None) -> None:
        block_size = self.settings.block_size
        slots = asyncio.Semaphore(self.settings.max_concurrency)
        ids: list[str] = []

        async def stage(block_id: str, offset: int) -> None:
            async with slots:  # at most max_concurrency blocks in flight
                length = min(block_size, size - offset)
                with FileRange(path, offset, length) as body:  # read as sent
                    await blob.stage_block(block_id, body, length=length)

        async with asyncio.TaskGroup() as group:
            for offset in range(0, size, block_size):
                block_id = base64.b64encode(uuid.uuid4().bytes).decode("ascii")
                ids.append(block_id)
                await slots.acquire()  # no more tasks than slots at a time
                slots.release()
                group.create_task(stage(block_id, offset))
        await blob.commit_block_list(
            [BlobBlock(block_id=block_id) for block_id in ids], metadata={SHA256_METADATA: sha256}, standard_blob_tier=tier
        )

    async def get_file(self, key: str, path: Path, *, expected_sha256: str | None = None) -> StoredObject:
        writer = HashingWriter(path)
        try:
            try:
                downloader = await self._container.get_blob_client(key).download_blob()
                stored_sha = (downloader.properties.metadata or {}).get(SHA256_METADATA)
                async for chunk in downloader.chunks():
                    await writer.write(chunk)
            except AzureError as error:
                raise _error(key, "download", error) from None
            actual = writer.close()
            verify(key, expected_sha256 or stored_sha, actual)
            return StoredObject(key=key, size=writer.size, sha256=actual)
        except BaseException:
            writer.discard()
            raise

    async def head(self, key: str) -> StoredObject:
        try:
            properties = await self._container.get_blob_client(key).get_blob_properties()
        except AzureError as error:
            raise _error(key, "look up", error) from None
        return StoredObject(key=key, size=properties.size, sha256=(properties.metadata or {}).get(SHA256_METADATA))

    async def access_tier(self, key: str) -> str | None:
        try:
            properties = await self._container.get_blob_client(key).get_blob_properties()
        except AzureError as error:
            raise _error(key, "look up", error) from None
        return properties.blob_tier

    async def set_access_tier(self, key: str, tier: str) -> None:
        try:
            await self._container.get_blob_client(key).set_standard_blob_tier(tier)
        except AzureError as error:
            raise _error(key, "set the tier of", error) from None

    async def delete(self, key: str) -> None:
        try:
            await self._container.get_blob_client(key).delete_blob()
        except AzureError as error:
            raise _error(key, "delete", error) from None

    async def list(self, prefix: str, *, cursor: str | None = None, limit: int = 1000) -> tuple[list[StoredObject], str | None]:
        """One page of blobs under `prefix` in name order, and the cursor of the next
        page (None after the last)."""
        try:
            pages = self._container.list_blobs(name_starts_with=prefix, include=["metadata"], results_per_page=limit)
            page_iterator = pages.by_page(continuation_token=cursor)
            found = [
                StoredObject(key=item.name, size=item.size, sha256=(item.metadata or {}).get(SHA256_METADATA))
                async for item in await anext(page_iterator)
            ]
        except StopAsyncIteration:
            return [], None
        except AzureError as error:
            raise _error(prefix, "list", error) from None
        return found, page_iterator.continuation_token or None
