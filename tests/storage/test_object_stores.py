"""The S3 and Azure Blob clients against real servers on loopback (moto's S3 server,
Azurite), driven from Trio through the asyncio portal as the tier actors drive them:
uploads single and in parts/blocks, checksums checked on read, start-up checks naming
what is wrong, and failures that leave nothing half-written."""

import hashlib
import os
from pathlib import Path

import pytest
import trio

from peers.buckets import azure_settings, create_bucket, create_container, s3_settings

from triopacs.actors import AsyncioPortal
from triopacs.storage.azure_blob import AzureBlobStore
from triopacs.storage.objects import ChecksumMismatch, ObjectMissing, ObjectStoreError, FileRange, instance_key, read_checked
from triopacs.storage.s3 import S3Store

MIB = 1024 * 1024


def sample_file(path: Path, size: int) -> tuple[Path, str]:
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_keys_are_made_of_checked_uids():
    assert instance_key("cold/", "1.2", "1.2.3", "1.2.3.4") == "cold/1.2/1.2.3/1.2.3.4.dcm"
    with pytest.raises(Exception, match="UID"):
        instance_key("cold/", "1.2", "../x", "1.2.3.4")


def test_a_body_is_read_whole_and_checked_against_the_index_before_it_leaves(tmp_path):
    path, sha = sample_file(tmp_path / "a.dcm", 1000)
    body, md5 = read_checked(path, "k", size=1000, sha256=sha, md5=True)
    assert body == path.read_bytes() and md5 == hashlib.md5(body).hexdigest()
    assert read_checked(path, "k", size=1000, sha256=sha, md5=False)[1] is None
    with pytest.raises(ChecksumMismatch, match="more than 999 bytes"):  # grown since the index saw it
        read_checked(path, "k", size=999, sha256=sha, md5=False)
    with pytest.raises(ChecksumMismatch, match="1000 bytes read, 1001"):
        read_checked(path, "k", size=1001, sha256=sha, md5=False)
    with pytest.raises(ChecksumMismatch, match="SHA-256"):
        read_checked(path, "k", size=1000, sha256="0" * 64, md5=False)


def test_a_part_is_a_seekable_range_of_its_file_read_as_sent(tmp_path):
    path, _ = sample_file(tmp_path / "a.dcm", 1000)
    data = path.read_bytes()
    with FileRange(path, 100, 300) as part:
        assert part.read(50) == data[100:150] and part.tell() == 50
        assert part.read() == data[150:400] and part.read(10) == b""
        assert part.seek(0, os.SEEK_END) == 300  # how the SDKs find its length
        part.seek(0)
        assert b"".join(iter(lambda: part.read(64), b"")) == data[100:400]
    with FileRange(path, 900, 500) as tail:  # the last part: what is left of the file
        assert tail.read() == data[900:]


@pytest.mark.parametrize("size", [300 * 1024, 12 * MIB + 7], ids=["one PUT", "multipart"])
async def test_s3_upload_download_head_list_delete(s3_endpoint, tmp_path, size):
    source, sha = sample_file(tmp_path / "in.dcm", size)
    settings = s3_settings(s3_endpoint)
    async with AsyncioPortal() as portal:
        await create_bucket(portal, settings)

        async def session():
            async with S3Store.open(settings) as store:
                await store.check()
                stored = await store.put_file("hot/1.2/1.3/1.4.dcm", source, size=size, sha256=sha)
                fetched = await store.get_file(stored.key, tmp_path / "out.dcm")
                listed, cursor = await store.list("hot/")
                left_open = await store.incomplete_uploads()
                await store.delete(stored.key)
                with pytest.raises(ObjectMissing):
                    await store.head(stored.key)
                return stored, fetched, listed, cursor, left_open

        stored, fetched, listed, cursor, left_open = await portal.run(session)
    assert (stored.size, stored.sha256) == (size, sha)
    assert (fetched.size, fetched.sha256) == (size, sha)
    assert (tmp_path / "out.dcm").read_bytes() == source.read_bytes()
    assert [o.key for o in listed] == ["hot/1.2/1.3/1.4.dcm"] and cursor is None
    assert left_open == []


async def test_s3_checksum_mismatch_leaves_no_file(s3_endpoint, tmp_path):
    source, sha = sample_file(tmp_path / "in.dcm", 1000)
    settings = s3_settings(s3_endpoint)
    async with AsyncioPortal() as portal:
        await create_bucket(portal, settings)

        async def session():
            async with S3Store.open(settings) as store:
                stored = await store.put_file("k.dcm", source, size=1000, sha256=sha)
                assert stored.checked  # the PUT's ETag matched the MD5 of what was sent
                with pytest.raises(ChecksumMismatch):  # a file that is not what the index says never leaves
                    await store.put_file("k2.dcm", source, size=1000, sha256="0" * 64)
                with pytest.raises(ObjectMissing):
                    await store.head("k2.dcm")
                await store.get_file("k.dcm", tmp_path / "out.dcm", expected_sha256="1" * 64)  # the index says otherwise

        with pytest.raises(ChecksumMismatch):
            await portal.run(session)
    assert not (tmp_path / "out.dcm").exists()


async def test_s3_listing_pages_with_a_cursor(s3_endpoint, tmp_path):
    source, sha = sample_file(tmp_path / "in.dcm", 100)
    settings = s3_settings(s3_endpoint)
    async with AsyncioPortal() as portal:
        await create_bucket(portal, settings)

        async def session():
            async with S3Store.open(settings) as store:
                for n in range(5):
                    await store.put_file(f"p/{n}.dcm", source, size=100, sha256=sha)
                keys, cursor = [], None
                while True:
                    page, cursor = await store.list("p/", cursor=cursor, limit=2)
                    keys += [o.key for o in page]
                    if cursor is None:
                        return keys

        assert await portal.run(session) == [f"p/{n}.dcm" for n in range(5)]


async def test_s3_start_checks_name_the_problem(s3_endpoint):
    async with AsyncioPortal() as portal:
        async def check(settings):
            async with S3Store.open(settings) as store:
                await store.check()

        with pytest.raises(ObjectStoreError, match="bucket 'missing' does not exist"):
            await portal.run(check, s3_settings(s3_endpoint, bucket="missing", max_attempts=1))


async def test_s3_failed_multipart_upload_is_aborted(s3_endpoint, tmp_path):
    """The server goes away in the middle of a multipart upload: the upload fails
    cleanly, and once it is back no incomplete upload is left in the bucket."""
    source, sha = sample_file(tmp_path / "in.dcm", 30 * MIB)
    settings = s3_settings(s3_endpoint, max_attempts=1, part_size=5 * MIB, max_concurrency=1)
    async with AsyncioPortal() as portal:
        await create_bucket(portal, settings)

        async def upload_with_a_part_refused():
            async with S3Store.open(settings) as store:
                original = store._client.upload_part
                calls = 0

                async def refuse_the_third(**kwargs):
                    nonlocal calls
                    calls += 1
                    if calls == 3:
                        kwargs["PartNumber"] = 10_001  # S3 refuses part numbers past 10,000
                    return await original(**kwargs)

                store._client.upload_part = refuse_the_third
                try:
                    await store.put_file("big.dcm", source, size=30 * MIB, sha256=sha)
                finally:
                    store._client.upload_part = original
                return await store.incomplete_uploads()

        with pytest.raises(ObjectStoreError):
            await portal.run(upload_with_a_part_refused)

        async def leftovers():
            async with S3Store.open(settings) as store:
                return await store.incomplete_uploads(), (await store.list(""))[0]

        incomplete, objects = await portal.run(leftovers)
    assert incomplete == [] and objects == []


@pytest.mark.parametrize("size", [300 * 1024, 5 * MIB + 3], ids=["one Put Blob", "blocks"])
async def test_azure_upload_download_tier_list_delete(azurite_endpoint, tmp_path, size):
    source, sha = sample_file(tmp_path / "in.dcm", size)
    settings = azure_settings(azurite_endpoint)
    async with AsyncioPortal() as portal:
        await create_container(portal, settings)

        async def session():
            async with AzureBlobStore.open(settings) as store:
                await store.check()
                stored = await store.put_file("cold/1.2/1.3/1.4.dcm", source, size=size, sha256=sha, access_tier="Cool")
                tier = await store.access_tier(stored.key)
                fetched = await store.get_file(stored.key, tmp_path / "out.dcm")
                listed, cursor = await store.list("cold/")
                await store.delete(stored.key)
                with pytest.raises(ObjectMissing):
                    await store.head(stored.key)
                return stored, tier, fetched, listed, cursor

        stored, tier, fetched, listed, cursor = await portal.run(session)
    assert (stored.size, stored.sha256) == (size, sha)
    assert tier == "Cool"
    assert (fetched.size, fetched.sha256) == (size, sha)
    assert (tmp_path / "out.dcm").read_bytes() == source.read_bytes()
    assert [(o.key, o.sha256) for o in listed] == [("cold/1.2/1.3/1.4.dcm", sha)] and cursor is None


async def test_azure_start_checks_name_the_problem(azurite_endpoint):
    async with AsyncioPortal() as portal:
        async def check(settings):
            async with AzureBlobStore.open(settings) as store:
                await store.check()

        with pytest.raises(ObjectStoreError, match="container 'missing' does not exist"):
            await portal.run(check, azure_settings(azurite_endpoint, container="missing", max_attempts=0))
        wrong_key = azurite_endpoint.connection_string.replace("AccountKey=", "AccountKey=AAAA")
        with pytest.raises(ObjectStoreError, match="denied|not authorized|Authorization"):
            await portal.run(check, azure_settings(azurite_endpoint, connection_string=wrong_key, max_attempts=0))
