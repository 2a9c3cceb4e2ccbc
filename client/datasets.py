"""Dataset bytes for the SCU client: files read off the event loop, pydicom encoding and
decoding in the negotiated transfer syntax, and the choice of context for a C-STORE.

A file is sent as its stored bytes from the dataset's first byte, never decoded, when
a context in its own syntax was accepted. Otherwise the client converts only between the
two uncompressed little endian syntaxes (explicit and implicit VR), which pydicom does
losslessly; the node, sending what it holds on a C-GET, may also convert big endian,
deflated and compressed data into a syntax it writes (storage/transcoding.py).
"""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import trio
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_partial

from ..protocol.catalog import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
)
from ..protocol import datasets as protocol_datasets
from ..protocol.negotiation import AcceptedContext, Negotiated
from ..storage.errors import InvalidPart10File
from ..storage.part10 import StoredDataset, locate_dataset
from ..storage.transcoding import TranscodeError, can_transcode, transcode
from .errors import InvalidInput, NoPresentationContext

# Big enough that a thread hop per chunk costs nothing next to the I/O, small enough that
# a 1 GiB file never sits in memory.
READ_CHUNK = 1024 * 1024
LITTLE_ENDIAN = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)  # what we convert between
SOP_INSTANCE_UID = 0x00080018


# --- files ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FileToSend:
    """A Part 10 file as a C-STORE sends it: the stored dataset bytes (plus a NUL pad when
    a deflated dataset is odd, PS3.5 A.5) and the SOP UIDs the dataset itself carries."""

    stored: StoredDataset
    sop_class_uid: str
    sop_instance_uid: str
    padded: bool = False

    @property
    def transfer_syntax_uid(self) -> str:
        return self.stored.transfer_syntax_uid

    @property
    def length(self) -> int:
        return self.stored.length + self.padded


SOP_CLASS_UID = 0x00080016
HEAD_BYTES = 4096  # group 0008's first elements sit well within this
_LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}


def _sop_uids_from_head(head: bytes, *, implicit: bool) -> tuple[str, str] | None:
    """(SOP Class UID, SOP Instance UID) from the first bytes of a little endian dataset,
    or None when they are not simply there (pydicom then reads the file).

    A walk over the few elements before (0008,0018): ~50 times cheaper than pydicom, and
    this runs once for every file sent.
    """
    found: dict[int, str] = {}
    position = 0
    while position + 8 <= len(head):
        group, element = struct.unpack_from("<HH", head, position)
        tag = group << 16 | element
        if tag > SOP_INSTANCE_UID:
            break
        if implicit:
            (length,) = struct.unpack_from("<I", head, position + 4)
            position += 8
        elif head[position + 4 : position + 6] in _LONG_LENGTH_VRS:
            if position + 12 > len(head):
                return None
            (length,) = struct.unpack_from("<I", head, position + 8)
            position += 12
        else:
            (length,) = struct.unpack_from("<H", head, position + 6)
            position += 8
        if length == 0xFFFFFFFF or position + length > len(head):
            return None  # a sequence of undefined length, or past what we read
        if tag in (SOP_CLASS_UID, SOP_INSTANCE_UID):
            found[tag] = head[position : position + length].decode("ascii", "replace").strip(" \0")
        position += length
    if SOP_CLASS_UID in found and SOP_INSTANCE_UID in found:
        return found[SOP_CLASS_UID], found[SOP_INSTANCE_UID]
    return None


def _sop_uids(path, stored: StoredDataset) -> tuple[str, str]:
    """The dataset's own SOP UIDs ("" where it has none)."""
    syntax = stored.transfer_syntax_uid
    if syntax in LITTLE_ENDIAN:
        with open(path, "rb") as file:
            file.seek(stored.offset)
            lean = _sop_uids_from_head(file.read(HEAD_BYTES), implicit=syntax == IMPLICIT_VR_LITTLE_ENDIAN)
        if lean is not None:
            return lean
    with open(path, "rb") as file:  # big endian, deflated, or anything unusual: pydicom
        head = read_partial(file, stop_when=lambda tag, vr, length: tag > SOP_INSTANCE_UID)
    return str(head.get("SOPClassUID", "") or ""), str(head.get("SOPInstanceUID", "") or "")


def locate(path: str | os.PathLike[str]) -> FileToSend:
    """Where a Part 10 file's dataset starts, its transfer syntax and its SOP UIDs.

    The UIDs come from the dataset, not the file meta: the peer checks the command
    against the dataset, and some files disagree with their own meta information.
    """
    try:
        stored = locate_dataset(path)
        sop_class, sop_instance = _sop_uids(path, stored)
    except InvalidPart10File as error:
        raise InvalidInput(f"{path}: {error.reason}") from None
    except OSError as error:
        raise InvalidInput(f"{path}: {error.strerror or error}") from None
    except Exception as error:  # pydicom could not read the start of the dataset
        raise InvalidInput(f"{path}: unreadable dataset ({error})") from None
    meta = stored.meta
    sop_class = sop_class or meta.media_storage_sop_class_uid
    sop_instance = sop_instance or meta.media_storage_sop_instance_uid
    if not sop_class or not sop_instance:
        raise InvalidInput(f"{path}: no SOP Class UID or SOP Instance UID")
    padded = stored.length % 2 == 1 and stored.transfer_syntax_uid == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
    if stored.length <= 0 or (stored.length % 2 and not padded):
        raise InvalidInput(f"{path}: the dataset is {stored.length} bytes long; DICOM datasets have an even, non-zero length")
    return FileToSend(stored=stored, sop_class_uid=sop_class, sop_instance_uid=sop_instance, padded=padded)


def read_whole(file: FileToSend) -> bytes:
    """The dataset bytes of a small file, in one read."""
    stored = file.stored
    with open(stored.path, "rb") as handle:
        handle.seek(stored.offset)
        data = handle.read(stored.length)
    if len(data) != stored.length:
        raise InvalidInput(f"{stored.path}: the file changed while being read")
    return data + b"\0" if file.padded else data


async def file_chunks(file: FileToSend, chunk_size: int = READ_CHUNK) -> AsyncIterator[bytes]:
    """The dataset's bytes as stored, each chunk read in a worker thread.

    Close it (`aclose`) when done early: the file stays open until then.
    """
    stored = file.stored
    handle = await trio.open_file(stored.path, "rb")
    try:
        await handle.seek(stored.offset)
        remaining = stored.length
        while remaining:
            chunk = await handle.read(min(chunk_size, remaining))
            if not chunk:
                raise InvalidInput(f"{stored.path}: the file shrank while being sent")
            remaining -= len(chunk)
            yield chunk
        if file.padded:
            yield b"\0"
    finally:
        with trio.CancelScope(shield=True):
            await handle.aclose()


def read_part10(path: str | os.PathLike[str]) -> Dataset:
    return dcmread(path)


# --- pydicom encoding -----------------------------------------------------------------------


def encode_dataset(dataset: Dataset, transfer_syntax: str) -> bytes:
    try:
        return protocol_datasets.encode_dataset(dataset, transfer_syntax)
    except protocol_datasets.UnencodableDataset as error:
        raise InvalidInput(str(error)) from None


decode_dataset = protocol_datasets.decode_dataset


def convert_file(path: Path, transfer_syntax: str) -> bytes:
    """The file's dataset re-encoded in `transfer_syntax` (see storage/transcoding.py)."""
    try:
        return transcode(path, transfer_syntax)
    except TranscodeError as error:
        raise InvalidInput(f"{path}: {error}") from None


# --- which context a C-STORE goes on ---------------------------------------------------------


def context_for_file(
    negotiated: Negotiated, sop_class: str, syntax: str, *, any_conversion: bool = False
) -> tuple[AcceptedContext, bool]:
    """(context, must convert): the file's own syntax if accepted; else the other little
    endian one when the file is little endian; with `any_conversion`, the first accepted
    context (the requestor's order) in any syntax the file can be transcoded into."""
    exact = negotiated.find(sop_class, as_scu=True, transfer_syntax=syntax)
    if exact is not None:
        return exact, False
    if any_conversion:
        for context in negotiated.contexts:
            if context.abstract_syntax == sop_class and context.local_scu and can_transcode(syntax, context.transfer_syntax):
                return context, True
    elif syntax in LITTLE_ENDIAN:
        for other in LITTLE_ENDIAN:
            context = negotiated.find(sop_class, as_scu=True, transfer_syntax=other)
            if context is not None:
                return context, True
    raise NoPresentationContext(sop_class, syntax)


def context_for_dataset(negotiated: Negotiated, sop_class: str, bound_syntax: str | None) -> AcceptedContext:
    """For a pydicom dataset: its encapsulated syntax if bound to one, else any syntax we encode."""
    if bound_syntax is not None:
        context = negotiated.find(sop_class, as_scu=True, transfer_syntax=bound_syntax)
        if context is None:
            raise NoPresentationContext(sop_class, bound_syntax)
        return context
    for syntax in (*LITTLE_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN):
        context = negotiated.find(sop_class, as_scu=True, transfer_syntax=syntax)
        if context is not None:
            return context
    raise NoPresentationContext(sop_class, None)

