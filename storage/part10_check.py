"""Is a Part 10 file's dataset whole? A walk over its element structure before it is sent.

pydicom reads a truncated file without a word (it shortens the last value), and a peer
that receives one may abort the association. So before a file goes out, every element
is checked to fit: each header complete, each defined length within what is left, each
undefined-length sequence, item and encapsulated pixel data closed by its delimiter, and
the last element ending where the file does. Values are skipped, not read: a 1 GiB
image costs a few thousand small reads. Deflated datasets are inflated first (they are
small, and only then have a structure).

Blocking file I/O: call it in a worker thread.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import BinaryIO

from ..protocol.catalog import DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN
from .dicom_walk import LONG_LENGTH_VRS, UNDEFINED_LENGTH
from .errors import InvalidPart10File
from .part10 import StoredDataset

ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
MAX_INFLATED = 256 * 1024 * 1024  # a deflated dataset larger than this is refused, not inflated
_VRS = frozenset(
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)


class Truncated(InvalidPart10File):
    """The file ends inside an element."""


def check_dataset_structure(stored: StoredDataset) -> None:
    """Raise InvalidPart10File (Truncated when the file ends early) unless the dataset's
    elements fit together exactly."""
    syntax = stored.transfer_syntax_uid
    with open(stored.path, "rb") as file:
        file.seek(stored.offset)
        if syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
            source: BinaryIO = io.BytesIO(_inflate(file.read(stored.length)))
            end = len(source.getvalue())
        else:
            source, end = file, stored.offset + stored.length
        walker = _Walker(source, end, implicit=syntax == IMPLICIT_VR_LITTLE_ENDIAN, little=syntax != EXPLICIT_VR_BIG_ENDIAN)
        walker.elements(until=end)


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(data, MAX_INFLATED)
    except zlib.error as error:
        raise InvalidPart10File(f"the deflated dataset does not inflate: {error}") from None
    if inflater.unconsumed_tail:
        raise InvalidPart10File(f"the deflated dataset inflates to more than {MAX_INFLATED} bytes")
    if not inflater.eof:
        raise Truncated("the deflated dataset ends before its deflate stream does")
    return inflated


class _Walker:
    def __init__(self, source: BinaryIO, end: int, *, implicit: bool, little: bool) -> None:
        self.source = source
        self.end = end
        self.implicit = implicit
        self.order = "<" if little else ">"

    def position(self) -> int:
        return self.source.tell()

    def read(self, count: int, what: str) -> bytes:
        data = self.source.read(count)
        if len(data) < count:
            raise Truncated(f"the file ends inside {what}")
        return data

    def skip(self, length: int, what: str) -> None:
        if self.position() + length > self.end:
            raise Truncated(f"{what} is {length} bytes long, {self.end - self.position()} are left")
        self.source.seek(length, os.SEEK_CUR)

    def tag(self, what: str) -> int:
        group, element = struct.unpack(self.order + "HH", self.read(4, what))
        return group << 16 | element

    def elements(self, *, until: int | None) -> None:
        """Elements up to `until`, or up to an item delimiter when until is None."""
        while until is None or self.position() < until:
            if self.position() >= self.end:
                raise Truncated("the file ends inside an item of undefined length")
            tag = self.tag("an element header")
            if tag == ITEM_END and until is None:
                self.read(4, "an item delimiter")
                return
            if tag >> 16 == 0xFFFE:
                raise InvalidPart10File(f"unexpected delimiter ({tag >> 16:04X},{tag & 0xFFFF:04X}) at byte {self.position() - 4}")
            self.element(tag)
        if self.position() != until:
            raise InvalidPart10File(f"an element runs {self.position() - until} bytes past its item")

    def element(self, tag: int) -> None:
        name = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        vr = None
        if self.implicit:
            (length,) = struct.unpack(self.order + "I", self.read(4, f"the header of {name}"))
        else:
            vr = self.read(2, f"the header of {name}").decode("latin-1")
            if vr not in _VRS:
                raise InvalidPart10File(
                    f"{name} at byte {self.position() - 6} has no valid VR ({vr!r}): "
                    "the dataset is not encoded as its transfer syntax says"
                )
            if vr in LONG_LENGTH_VRS:
                (length,) = struct.unpack(self.order + "2xI", self.read(6, f"the header of {name}"))
            else:
                (length,) = struct.unpack(self.order + "H", self.read(2, f"the header of {name}"))
        if length != UNDEFINED_LENGTH:
            if vr == "SQ":
                self.items(until=self.position() + length, name=name)
            else:
                self.skip(length, name)
        elif tag == PIXEL_DATA and vr != "SQ":
            self.fragments(name)
        elif vr in (None, "SQ", "UN"):
            implicit, self.implicit = self.implicit, self.implicit or vr == "UN"  # PS3.5 6.2.2
            self.items(until=None, name=name)
            self.implicit = implicit
        else:
            raise InvalidPart10File(f"{name} ({vr}) has an undefined length")

    def items(self, *, until: int | None, name: str) -> None:
        while until is None or self.position() < until:
            tag = self.tag(f"an item of {name}")
            (length,) = struct.unpack(self.order + "I", self.read(4, f"an item of {name}"))
            if tag == SEQUENCE_END and until is None:
                return
            if tag != ITEM:
                raise InvalidPart10File(f"{name}: expected an item, found ({tag >> 16:04X},{tag & 0xFFFF:04X})")
            if length == UNDEFINED_LENGTH:
                self.elements(until=None)
            else:
                item_end = self.position() + length
                if item_end > self.end:
                    raise Truncated(f"an item of {name} is {length} bytes long, {self.end - self.position()} are left")
                self.elements(until=item_end)
        if self.position() != until:
            raise InvalidPart10File(f"the items of {name} run past its length")

    def fragments(self, name: str) -> None:
        while True:
            tag = self.tag(f"a fragment of {name}")
            (length,) = struct.unpack(self.order + "I", self.read(4, f"a fragment of {name}"))
            if tag == SEQUENCE_END:
                return
            if tag != ITEM or length == UNDEFINED_LENGTH:
                raise InvalidPart10File(f"{name}: malformed encapsulated pixel data")
            self.skip(length, f"a fragment of {name}")
