"""WADO-RS bodies (PS3.18 10.4): instances, metadata, frames and bulk data, streamed.

Each instance's file comes from its tier (archive.local_file) only when its turn comes
and is read on a worker thread - ordinary instances a batch of BATCH_BYTES at a time,
large ones in chunks of READ_CHUNK - so a retrieve of any size holds a few batches
(and one converted instance, when the transfer syntax asked for is not the stored one)
at a time; hypercorn's send waits for the socket, so a slow
client slows the reading down rather than filling memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from functools import partial

import trio

from ...protocol.catalog import EXPLICIT_VR_LITTLE_ENDIAN
from ...storage.part10 import file_meta_bytes
from ...storage.query import RetrieveItem
from ...storage.transcoding import TranscodeError, transcode
from . import instance_file
from .archive import Archive
from .media import AS_STORED, DICOM, OCTET_STREAM, parse_accept
from .multipart import closing, part_head

READ_CHUNK = 1024 * 1024
WHOLE_BELOW = 4 * 1024 * 1024  # files up to this size are read in one thread crossing
BATCH_BYTES = 4 * 1024 * 1024  # ordinary instances are read and sent this much at a time

# The media type a frame of each encapsulated transfer syntax is sent as (PS3.18 Table 8.7.3-2).
FRAME_MEDIA: dict[str, str] = {
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.50": "image/jpeg", "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg", "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls", "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2", "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx", "1.2.840.10008.1.2.4.93": "image/jpx",
}


def _read_range(path, start: int, size: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(start)
        return file.read(size)


def _read_small(path) -> tuple[bytes | None, int]:
    """(the whole file, its size) when it is small enough, else (None, size): one open."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        return (file.read() if size <= WHOLE_BELOW else None), size


async def part_chunks(path, head: bytes) -> AsyncIterator[bytes]:
    """A part: its head, the file, the CRLF that ends it. An ordinary image is one
    thread crossing and one send; a large file goes in READ_CHUNK pieces."""
    whole, size = await trio.to_thread.run_sync(_read_small, path)
    if whole is not None:
        yield b"".join((head, whole, b"\r\n"))
        return
    yield head
    for start in range(0, size, READ_CHUNK):
        yield await trio.to_thread.run_sync(_read_range, path, start, READ_CHUNK)
    yield b"\r\n"


def stored_length(items: list[RetrieveItem], boundary: str) -> int:
    """The body's length when every instance goes as stored (sizes from the index): sent
    as Content-Length, so the body is not chunk-encoded."""
    return sum(len(_stored_head(boundary, item)) + item.file_size + 2 for item in items) + len(closing(boundary))


def _stored_head(boundary: str, item: RetrieveItem) -> bytes:
    return part_head(boundary, f"{DICOM}; transfer-syntax={item.transfer_syntax_uid}")


async def instances_body(archive: Archive, items: list[RetrieveItem], syntax: str, boundary: str, log) -> AsyncIterator[bytes]:
    """Each instance as an application/dicom part: the stored file as it is when `syntax`
    is its own or AS_STORED, else converted (an instance that cannot be is left out, and
    logged: the status line went out before it was reached). Ordinary instances go in
    batches of up to BATCH_BYTES, read in one thread crossing and sent as one piece."""
    batch: list[RetrieveItem] = []
    for item in items:
        if syntax in (AS_STORED, item.transfer_syntax_uid) and item.file_size <= WHOLE_BELOW:
            batch.append(item)
            if sum(i.file_size for i in batch) >= BATCH_BYTES:
                yield await _read_batch(archive, batch, boundary, log)
                batch = []
            continue
        if batch:
            yield await _read_batch(archive, batch, boundary, log)
            batch = []
        try:
            async with archive.local_file(item) as path:
                if syntax in (AS_STORED, item.transfer_syntax_uid):
                    async for chunk in part_chunks(path, _stored_head(boundary, item)):
                        yield chunk
                else:
                    dataset = await trio.to_thread.run_sync(transcode, path, syntax)
                    meta = file_meta_bytes(sop_class_uid=item.sop_class_uid, sop_instance_uid=item.sop_instance_uid,
                                           transfer_syntax_uid=syntax)
                    yield b"".join((part_head(boundary, f"{DICOM}; transfer-syntax={syntax}"), meta, dataset, b"\r\n"))
        except (OSError, TranscodeError) as error:
            log.warning("instance left out of a WADO-RS answer", sop_instance_uid=item.sop_instance_uid, error=str(error))
    if batch:
        yield await _read_batch(archive, batch, boundary, log)
    await archive.touch(items)
    yield closing(boundary)


async def _read_batch(archive: Archive, batch: list[RetrieveItem], boundary: str, log) -> bytearray:
    """The batch's parts, staged by their tiers in one message each and read in one
    thread crossing; an instance its tier cannot provide is left out (and logged)."""
    async with archive.local_files(batch) as files:
        readable = []
        for item, (path, problem) in zip(batch, files):
            if path is None:
                log.warning("instance left out of a WADO-RS answer", sop_instance_uid=item.sop_instance_uid, error=problem)
            else:
                readable.append((item, _stored_head(boundary, item), path))
        data, failed = await trio.to_thread.run_sync(_read_parts, [(head, path) for _, head, path in readable])
    for index, error in failed:
        log.warning("instance left out of a WADO-RS answer", sop_instance_uid=readable[index][0].sop_instance_uid, error=error)
    return data


def _read_parts(parts: list[tuple[bytes, object]]) -> tuple[bytearray, list[tuple[int, str]]]:
    """Heads, files and CRLFs in one buffer, each file read straight into its place (one
    copy); the files that could not be read are left out."""
    opened: list[tuple[int, bytes, object, int]] = []
    failed: list[tuple[int, str]] = []
    try:
        for index, (head, path) in enumerate(parts):
            try:
                file = open(path, "rb")
            except OSError as error:
                failed.append((index, str(error)))
                continue
            opened.append((index, head, file, os.fstat(file.fileno()).st_size))
        buffer = bytearray(sum(len(head) + size + 2 for _, head, _, size in opened))
        view, at = memoryview(buffer), 0
        for index, head, file, size in opened:
            start = at
            view[at : at + len(head)] = head
            at += len(head)
            got = file.readinto(view[at : at + size])
            if got != size:
                failed.append((index, f"read {got} of {size} bytes"))
                at = start  # overwritten by the next part; the buffer is cut below
                continue
            at += size
            view[at : at + 2] = b"\r\n"
            at += 2
        view.release()
        del buffer[at:]
        return buffer, failed
    finally:
        for _, _, file, _ in opened:
            file.close()


async def metadata_body(archive: Archive, items: list[RetrieveItem], url_of: Callable[[RetrieveItem], str], threshold: int, log) -> AsyncIterator[bytes]:
    """A JSON array, one object per instance, written as each is read."""
    yield b"["
    first = True
    for item in items:
        try:
            async with archive.local_file(item) as path:
                text = await trio.to_thread.run_sync(_metadata_text, path, f"{url_of(item)}/bulkdata", threshold)
        except Exception as error:  # an unreadable file: the rest still goes out
            log.warning("instance left out of a WADO-RS metadata answer", sop_instance_uid=item.sop_instance_uid, error=str(error))
            continue
        yield (b"" if first else b",") + text
        first = False
    yield b"]"


def _metadata_text(path, bulk_url: str, threshold: int) -> bytes:
    ds = instance_file.read_header(path, threshold)
    return json.dumps(instance_file.metadata(ds, bulk_url, threshold), separators=(",", ":"), allow_nan=False).encode()


def frame_media_type(syntax: str) -> str:
    return FRAME_MEDIA.get(syntax, OCTET_STREAM)


def frames_acceptable(accept: str | None, stored_syntax: str) -> bool:
    """Frames go out as stored: raw bytes (application/octet-stream, explicit VR
    little endian) for uncompressed pixel data, the stored bitstream for compressed."""
    media = frame_media_type(stored_syntax)
    compressed = stored_syntax in FRAME_MEDIA
    for wanted in parse_accept(accept):
        kind = (wanted.get("type") or "*/*").lower() if wanted.type == "multipart/related" else wanted.type
        syntax = wanted.get("transfer-syntax")
        if kind in ("*/*", media, media.split("/")[0] + "/*") and (
            syntax in (None, AS_STORED, stored_syntax) or (not compressed and syntax == EXPLICIT_VR_LITTLE_ENDIAN)
        ):
            return True
    return False


async def read_frames(path, numbers: list[int]) -> tuple[str, list[bytes]]:
    return await trio.to_thread.run_sync(partial(instance_file.frames, path, numbers))


def frames_body(frames: list[bytes], syntax: str, boundary: str) -> bytes:
    media = frame_media_type(syntax)
    shown = syntax if syntax in FRAME_MEDIA else EXPLICIT_VR_LITTLE_ENDIAN
    head_type = f"{media}; transfer-syntax={shown}"
    return b"".join(part_head(boundary, head_type) + frame + b"\r\n" for frame in frames) + closing(boundary)


async def read_bulk(path, tags: str) -> bytes:
    return await trio.to_thread.run_sync(instance_file.bulk_value, path, tags)
