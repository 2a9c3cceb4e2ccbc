"""The multipart/related reader: any chunking gives the same parts; bad bodies raise
MalformedMultipart and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triopacs.web.dicomweb.multipart import (
    MalformedMultipart, MessageEnded, MultipartReader, PartData, PartEnded, PartStarted, closing, part_head,
)

BOUNDARY = "b0und4ry"


def body(parts: list[bytes], boundary: str = BOUNDARY) -> bytes:
    return b"".join(part_head(boundary, "application/dicom") + p + b"\r\n" for p in parts) + closing(boundary)


def read(data: bytes, sizes: list[int] | None = None, boundary: str = BOUNDARY) -> list[tuple[dict, bytes]]:
    reader = MultipartReader(boundary)
    found: list[tuple[dict, bytearray]] = []
    chunks, at = [], 0
    for size in sizes or [len(data) or 1]:
        chunks.append(data[at : at + size])
        at += size
    chunks.append(data[at:])
    ended = False
    for chunk in chunks:
        for event in reader.feed(chunk):
            match event:
                case PartStarted(headers=headers):
                    found.append((headers, bytearray()))
                case PartData(data=piece):
                    found[-1][1].extend(piece)
                case PartEnded():
                    pass
                case MessageEnded():
                    ended = True
    reader.end()
    assert ended
    return [(h, bytes(b)) for h, b in found]


def test_parts_come_out_whole():
    parts = [b"first", b"", b"--b0und4r", b"\r\n--b0und4r\r\n" * 3, bytes(range(256)) * 10]  # never the whole delimiter (RFC 2046)
    found = read(body(parts))
    assert [b for _, b in found] == parts
    assert all(h["content-type"] == "application/dicom" for h, _ in found)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4), st.lists(st.integers(1, 40), max_size=30))
def test_any_chunking_gives_the_same_parts(parts, sizes):
    assert [b for _, b in read(body(parts), sizes)] == parts


def test_one_byte_at_a_time():
    data = body([b"abc\r\n--b0und", b"xyz"])
    assert [b for _, b in read(data, [1] * len(data))] == [b"abc\r\n--b0und", b"xyz"]


def test_a_preamble_is_skipped():
    assert [b for _, b in read(b"ignore me\r\n" + body([b"x"]))] == [b"x"]


@pytest.mark.parametrize("data, why", [
    (b"no boundary anywhere" * 4000, "no boundary"),
    (body([b"x"])[:-20], "truncated"),
    (b"--b0und4ry\r\nContent-Type application/dicom\r\n\r\nx\r\n--b0und4ry--", "not a header line"),
    (b"--b0und4ry garbage\r\n\r\nx\r\n--b0und4ry--", "text after a boundary"),
    (b"--b0und4ry\r\n" + b"X-Long: " + b"a" * 20000, "too long"),
])
def test_bad_bodies_are_refused(data, why):
    with pytest.raises(MalformedMultipart, match=why):
        read(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_input_either_parses_or_raises_malformed(data):
    reader = MultipartReader(BOUNDARY)
    try:
        reader.feed(data)
        reader.end()
    except MalformedMultipart:
        pass
