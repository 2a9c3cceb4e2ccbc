"""DICOM Part 10 files (PS3.10 section 7): written around a streamed dataset, read back.

A received C-STORE dataset is stored exactly as it arrived, in the transfer syntax
negotiated: the file is a 128-byte preamble, ``DICM``, the File Meta Information
(group 0002, always explicit VR little endian) that we build here, then the dataset
bytes untouched. Sending it back out (C-MOVE/C-GET) is the reverse: skip to the
dataset's first byte and stream from there.

Nothing here knows about threads or Trio: the writer does blocking file I/O and the
caller chooses where it runs.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import attrs

from triopacs.protocol.uid import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

from .errors import InvalidPart10File

PREAMBLE = bytes(128)
MAGIC = b"DICM"
FILE_META_VERSION = b"\x00\x01"
META_GROUP = 0x0002
# VRs whose explicit-VR header has 2 reserved bytes and a 32-bit length.
LONG_LENGTH_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
MAX_META_BYTES = 64 * 1024  # a sane bound on group 0002; real ones are ~200 bytes
DEFAULT_CHUNK = 256 * 1024

_TAG_VR = struct.Struct("<HH2s")
_SHORT_LENGTH = struct.Struct("<H")
_LONG_LENGTH = struct.Struct("<2xI")


# -- writing ---------------------------------------------------------------------------


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        # UI pads with NUL, every other string VR here with a space (PS3.5 6.2).
        value += b"\x00" if vr == b"UI" else b" "
    header = _TAG_VR.pack(META_GROUP, element, vr)
    if vr in LONG_LENGTH_VRS:
        return header + _LONG_LENGTH.pack(len(value)) + value
    return header + _SHORT_LENGTH.pack(len(value)) + value


def file_meta_bytes(
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    source_ae_title: str | None = None,
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID,
    implementation_version_name: str | None = IMPLEMENTATION_VERSION_NAME,
) -> bytes:
    """Preamble, ``DICM`` and group 0002 with its group length: everything before the dataset."""
    body = [
        _element(0x0001, b"OB", FILE_META_VERSION),
        _element(0x0002, b"UI", sop_class_uid.encode("ascii")),
        _element(0x0003, b"UI", sop_instance_uid.encode("ascii")),
        _element(0x0010, b"UI", transfer_syntax_uid.encode("ascii")),
        _element(0x0012, b"UI", implementation_class_uid.encode("ascii")),
    ]
    if implementation_version_name:
        body.append(_element(0x0013, b"SH", implementation_version_name.encode("ascii")))
    if source_ae_title:
        body.append(_element(0x0016, b"AE", source_ae_title.strip().encode("ascii")))
    payload = b"".join(body)
    group_length = _element(0x0000, b"UL", struct.pack("<I", len(payload)))
    return PREAMBLE + MAGIC + group_length + payload


@attrs.frozen(kw_only=True)
class WrittenFile:
    size: int
    sha256: str


class Part10Writer:
    """Writes header then dataset chunks to an open binary file, hashing and counting as it
    goes; ``finish`` flushes and fsyncs so the bytes are durable before anyone is told.

    The header goes out with the first chunk (or at ``finish`` for an empty dataset), so
    constructing a writer does no I/O.
    """

    def __init__(self, file: BinaryIO, header: bytes) -> None:
        self._file = file
        self._header: bytes | None = header
        self._hash = hashlib.sha256()
        self._size = 0
        self._finished = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._finished:
            raise ValueError("write after finish")
        if self._header is not None:
            self._put(self._header)
            self._header = None
        self._put(chunk)

    def _put(self, data: bytes | bytearray | memoryview) -> None:
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)

    def write_then_hash(self, chunks: Sequence[bytes | bytearray | memoryview], meanwhile: Callable[[int], None]) -> None:
        """Write chunks, hand the flushed file's descriptor to ``meanwhile`` (which starts
        the disk writing them), and only then hash them: the hashing overlaps the disk."""
        if self._finished:
            raise ValueError("write after finish")
        pieces = list(chunks)
        if self._header is not None:
            pieces.insert(0, self._header)
            self._header = None
        for piece in pieces:
            self._file.write(piece)
            self._size += len(piece)
        self._file.flush()
        meanwhile(self._file.fileno())
        for piece in pieces:
            self._hash.update(piece)

    def finish(self, *, sync: bool = True) -> WrittenFile:
        """Flush (and fsync unless the caller makes the file durable itself later)."""
        if not self._finished:
            if self._header is not None:
                self._put(self._header)
                self._header = None
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())
            self._finished = True
        return WrittenFile(size=self._size, sha256=self._hash.hexdigest())


# -- reading back ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FileMeta:
    transfer_syntax_uid: str
    media_storage_sop_class_uid: str
    media_storage_sop_instance_uid: str
    implementation_class_uid: str = ""
    implementation_version_name: str = ""
    source_ae_title: str = ""


@attrs.frozen(kw_only=True)
class StoredDataset:
    """Where a stored file's dataset starts and how it is encoded."""

    path: Path
    offset: int  # first byte after the file meta information
    length: int  # bytes of dataset from offset to the end of the file
    meta: FileMeta

    @property
    def transfer_syntax_uid(self) -> str:
        return self.meta.transfer_syntax_uid


def read_file_meta(file: BinaryIO) -> tuple[FileMeta, int]:
    """Parse preamble + group 0002 from the start of ``file``; returns the meta and the
    offset of the dataset. Tolerates a missing group length (walks until group 0002 ends)."""
    file.seek(0)
    head = file.read(132)
    if len(head) < 132 or head[128:132] != MAGIC:
        raise InvalidPart10File("no DICM prefix: not a Part 10 file")
    values: dict[int, bytes] = {}
    offset = 132
    while True:
        header = file.read(8)
        if len(header) < 8:
            break  # a file that is all meta: the dataset is empty
        group, element, vr = _TAG_VR.unpack(header[:6])
        if group != META_GROUP:
            break
        if vr in LONG_LENGTH_VRS:
            rest = file.read(4)
            if len(rest) < 4:
                raise InvalidPart10File("truncated file meta element")
            length = struct.unpack("<I", rest)[0]
            header_size = 12
        else:
            length = _SHORT_LENGTH.unpack(header[6:8])[0]
            header_size = 8
        if offset + header_size + length - 132 > MAX_META_BYTES:
            raise InvalidPart10File("file meta information too long")
        value = file.read(length)
        if len(value) < length:
            raise InvalidPart10File("truncated file meta element")
        values[element] = value
        offset += header_size + length
    file.seek(offset)

    def text(element: int) -> str:
        return values.get(element, b"").decode("ascii", "replace").strip(" \x00")

    meta = FileMeta(
        transfer_syntax_uid=text(0x0010),
        media_storage_sop_class_uid=text(0x0002),
        media_storage_sop_instance_uid=text(0x0003),
        implementation_class_uid=text(0x0012),
        implementation_version_name=text(0x0013),
        source_ae_title=text(0x0016),
    )
    if not meta.transfer_syntax_uid:
        raise InvalidPart10File("file meta has no Transfer Syntax UID")
    return meta, offset


def locate_dataset(path: str | os.PathLike[str]) -> StoredDataset:
    """The offset and transfer syntax of a stored file's dataset (reads only the header)."""
    path = Path(path)
    with open(path, "rb") as file:
        meta, offset = read_file_meta(file)
        size = os.fstat(file.fileno()).st_size
    return StoredDataset(path=path, offset=offset, length=size - offset, meta=meta)


def iter_dataset_bytes(stored: StoredDataset, chunk_size: int = DEFAULT_CHUNK) -> Iterator[bytes]:
    """The dataset's bytes as stored, in chunks: what a C-STORE sub-operation sends when the
    negotiated transfer syntax is the stored one."""
    with open(stored.path, "rb") as file:
        file.seek(stored.offset)
        while chunk := file.read(chunk_size):
            yield chunk
