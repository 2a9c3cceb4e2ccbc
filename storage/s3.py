"""An S3 bucket as a storage tier's backing store, with aiobotocore (asyncio code: it runs
on the node's asyncio portal; see objects.py).

- One PUT below `multipart_threshold`; above it a multipart upload of `part_size` parts,
  `max_concurrency` in flight, completed and then checked by size; any failure aborts
  the upload, so no incomplete multipart upload is left behind.
- The SHA-256 the node computed travels as user metadata and is checked on every read.
- Throttling, 5xx answers and connection errors are retried by botocore's standard
  retry mode (`max_attempts`), with bounded connect and read timeouts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
from aiobotocore.session import get_session
from botocore.config import Config as BotocoreConfig
from botocore.exceptions import BotoCoreError, ClientError

from .objects import (
    CHUNK,
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
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError", "ServiceUnavailable", "503", "500"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


@attrs.frozen(kw_only=True)
class S3Settings:
    bucket: str
    region: str = "us-east-1"
    endpoint_url: str | None = None  # MinIO, moto, ...; None: AWS
    access_key_id: str | None = None  # None: the environment's (AWS_ACCESS_KEY_ID, profiles, roles)
    secret_access_key: str | None = attrs.field(default=None, repr=False)
    storage_class: str | None = None  # STANDARD, STANDARD_IA, GLACIER_IR, ...
    server_side_encryption: str | None = None  # AES256 or aws:kms
    multipart_threshold: int = 16 * MIB
    part_size: int = 8 * MIB  # at least 5 MiB, S3's floor for all but the last part
    max_concurrency: int = 4
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


def _error(key: str, action: str, error: Exception) -> ObjectStoreError:
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _MISSING_CODES:
            return ObjectMissing(f"{key}: no such object")
        return ObjectStoreError(f"{action} {key}: {code or 'error'}: {error}", transient=code in _TRANSIENT_CODES)
    return ObjectStoreError(f"{action} {key}: {error}", transient=True)  # connection-level


def _base64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


class S3Store:
    """One bucket (and key prefix handled by the caller) through one long-lived client."""

    def __init__(self, settings: S3Settings, client: Any) -> None:
        self.settings = settings
        self._client = client

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: S3Settings) -> AsyncIterator[S3Store]:
        config = BotocoreConfig(
            retries={"max_attempts": settings.max_attempts, "mode": "standard"},
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_pool_connections=max(10, settings.max_concurrency * 2),
            # A single PUT carries the SHA-256 as its checksum (a signed header the store
            # checks the body against), so the body need not be hashed again for the
            # signature: botocore's own choice over https, made here for http too.
            s3={"payload_signing_enabled": False},
            # get_file hashes what it downloads against the index's SHA-256 itself.
            response_checksum_validation="when_required",
        )
        credentials = {}
        if settings.access_key_id is not None:
            credentials = {"aws_access_key_id": settings.access_key_id, "aws_secret_access_key": settings.secret_access_key}
        async with get_session().create_client(
            "s3", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config, **credentials
        ) as client:
            yield cls(settings, client)

    async def check(self) -> None:
        """The bucket exists, the credentials are good, and we may write: a probe object
        is written and removed. Raises ObjectStoreError saying which failed."""
        bucket = self.settings.bucket
        try:
            await self._client.head_bucket(Bucket=bucket)
        except (ClientError, BotoCoreError) as error:
            code = str(error.response.get("Error", {}).get("Code", "")) if isinstance(error, ClientError) else ""
            if code in ("404", "NoSuchBucket"):
                raise ObjectStoreError(f"bucket {bucket!r} does not exist") from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise ObjectStoreError(f"access to bucket {bucket!r} denied (credentials?): {code}") from None
            raise ObjectStoreError(f"bucket {bucket!r} unreachable: {error}", transient=True) from None
        probe = ".triopacs-write-check"
        try:
            await self._client.put_object(Bucket=bucket, Key=probe, Body=b"ok")
            await self._client.delete_object(Bucket=bucket, Key=probe)
        except (ClientError, BotoCoreError) as error:
            raise ObjectStoreError(f"bucket {bucket!r} is not writable: {error}") from None

    def _put_arguments(self, sha256: str) -> dict[str, Any]:
        arguments: dict[str, Any] = {"Metadata": {SHA256_METADATA: sha256}}
        if self.settings.storage_class:
            arguments["StorageClass"] = self.settings.storage_class
        if self.settings.server_side_encryption:
            arguments["ServerSideEncryption"] = self.settings.server_side_encryption
        return arguments

    def whole(self, size: int) -> bool:
        """Whether an object of `size` bytes goes up in one request (put_body)."""
        return size < self.settings.multipart_threshold

    async def put_file(self, key: str, path: Path, *, size: int, sha256: str) -> StoredObject:
        """Upload a local file as `key`; it must be `size` bytes with `sha256` (the index's)."""
        if self.whole(size):
            body, sent_md5 = await asyncio.to_thread(read_checked, path, key, size=size, sha256=sha256, md5=True)
            return await self.put_body(key, body, sha256=sha256, md5=sent_md5)
        try:
            await self._multipart(key, path, size, sha256)
        except (ClientError, BotoCoreError) as error:
            raise _error(key, "upload", error) from None
        return await self._held(key, size)

    async def put_body(self, key: str, body: bytes, *, sha256: str, md5: str) -> StoredObject:
        """One PUT of a body read_checked read (its size and SHA-256 are the index's). The
        store checks it again on arrival against ChecksumSHA256 (S3, MinIO; moto does
        not), and its answer's ETag is the MD5 of what it received, which we compare
        with `md5` (any store; not under SSE-KMS)."""
        try:
            answer = await self._client.put_object(
                Bucket=self.settings.bucket, Key=key, Body=body, ChecksumSHA256=_base64(sha256), **self._put_arguments(sha256)
            )
        except (ClientError, BotoCoreError) as error:
            raise _error(key, "upload", error) from None
        if self.settings.server_side_encryption != "aws:kms" and answer.get("ETag", "").strip('"') == md5:
            return StoredObject(key=key, size=len(body), sha256=sha256, checked=True)
        return await self._held(key, len(body))

    async def _held(self, key: str, size: int) -> StoredObject:
        """What the bucket holds at `key` after an upload of `size` bytes."""
        stored = await self.head(key)
        if stored.size != size:
            raise ObjectStoreError(f"upload {key}: {stored.size} bytes stored, {size} sent", transient=True)
        return stored

    async def _multipart(self, key: str, path: Path, size: int, sha256: str) -> None:
        bucket, part_size = self.settings.bucket, self.settings.part_size
        started = await self._client.create_multipart_upload(Bucket=bucket, Key=key, **self._put_arguments(sha256))
        upload_id = started["UploadId"]
        slots = asyncio.Semaphore(self.settings.max_concurrency)
        parts: dict[int, str] = {}

        async def send(number: int, offset: int) -> None:
            async with slots:  # at most max_concurrency parts in flight
                with FileRange(path, offset, min(part_size, size - offset)) as body:  # read as sent
                    answer = await self._client.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
                    )
                parts[number] = answer["ETag"]

        try:
            async with asyncio.TaskGroup() as group:
                for number, offset in enumerate(range(0, size, part_size), 1):
                    await slots.acquire()  # do not even create more tasks than slots
                    slots.release()
                    group.create_task(send(number, offset))
            await self._client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": parts[n]} for n in sorted(parts)]},
            )
        except BaseException as error:
            with contextlib.suppress(ClientError, BotoCoreError):
                await asyncio.shield(self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id))
            if isinstance(error, BaseExceptionGroup):
                raise error.exceptions[0] from None
            raise

    async def get_file(self, key: str, path: Path, *, expected_sha256: str | None = None) -> StoredObject:
        """Download `key` into a new file at `path`, checking its SHA-256 against what
        was stored with it (or `expected_sha256`); a mismatch leaves no file."""
        writer = HashingWriter(path)
        try:
            try:
                answer = await self._client.get_object(Bucket=self.settings.bucket, Key=key)
                stored_sha = answer.get("Metadata", {}).get(SHA256_METADATA)
                async with answer["Body"] as body:
                    while chunk := await body.read(CHUNK):
                        await writer.write(chunk)
            except (ClientError, BotoCoreError) as error:
                raise _error(key, "download", error) from None
            actual = writer.close()
            verify(key, expected_sha256 or stored_sha, actual)
            return StoredObject(key=key, size=writer.size, sha256=actual)
        except BaseException:
            writer.discard()
            raise

    async def head(self, key: str) -> StoredObject:
        try:
            answer = await self._client.head_object(Bucket=self.settings.bucket, Key=key)
        except (ClientError, BotoCoreError) as error:
            raise _error(key, "look up", error) from None
        return StoredObject(key=key, size=answer["ContentLength"], sha256=answer.get("Metadata", {}).get(SHA256_METADATA))

    async def delete(self, key: str) -> None:
        try:
            await self._client.delete_object(Bucket=self.settings.bucket, Key=key)
        except (ClientError, BotoCoreError) as error:
            raise _error(key, "delete", error) from None

    async def list(self, prefix: str, *, cursor: str | None = None, limit: int = 1000) -> tuple[list[StoredObject], str | None]:
        """One page of objects under `prefix` in key order, and the cursor of the next
        page (None after the last)."""
        arguments: dict[str, Any] = {"Bucket": self.settings.bucket, "Prefix": prefix, "MaxKeys": limit}
        if cursor:
            arguments["ContinuationToken"] = cursor
        try:
            answer = await self._client.list_objects_v2(**arguments)
        except (ClientError, BotoCoreError) as error:
            raise _error(prefix, "list", error) from None
        found = [StoredObject(key=item["Key"], size=item["Size"], sha256=None) for item in answer.get("Contents", [])]
        return found, answer.get("NextContinuationToken") if answer.get("IsTruncated") else None

    async def incomplete_uploads(self, prefix: str = "") -> list[str]:
        """Keys with a multipart upload begun and neither completed nor aborted."""
        answer = await self._client.list_multipart_uploads(Bucket=self.settings.bucket, Prefix=prefix)
        return [upload["Key"] for upload in answer.get("Uploads", [])]
