"""Checking a dataset's element structure while it streams in (PS3.5 section 7).

A peer can send bytes that are framed correctly as P-DATA but are no dataset: cut off
inside an element, an element claiming more bytes than follow, items without their
delimiters, sequences nested without end. Kept, such a file could never be read or sent
back. `StructureChecker` walks the element *headers* of a dataset as its bytes arrive in
chunks of any size and steps over every value by its length, so the cost is per element,
not per byte, and nothing is buffered but one element header. It decodes no value.

What it enforces:
- every tag is followed by a known VR (explicit VR syntaxes) and a length that fits
  inside the item or sequence around it;
- an undefined length only where PS3.5 allows one (SQ, UN, and encapsulated OB/OW
  fragments) - in implicit VR every undefined length opens a sequence;
- sequences hold items (FFFE,E000) and end with their length or a sequence delimiter;
  undefined-length items end with an item delimiter; encapsulated data holds fragments of
  defined length and ends with a sequence delimiter;
- sequences nest at most `max_depth` deep (nothing here recurses; the limit protects
  whoever parses the dataset later);
- the dataset ends where an element ends, at the top level, and its length is even.

A dataset whose first element has no valid VR in an explicit VR syntax is walked as
implicit VR, as DICOM readers do (`found_implicit` says so). A UN element of undefined length holds implicit VR little endian (PS3.5 6.2.2); a
defined-length SQ in implicit VR is found by the data dictionary, as any reader must.
Deflated syntaxes are inflated on the way through, up to `max_inflated` bytes.
"""

from __future__ import annotations

import functools
import struct
import zlib

from pydicom.datadict import dictionary_VR

from .catalog import DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_INFLATED = 1 << 30
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
_INFLATE_STEP = 256 * 1024
_IMPLICIT = struct.Struct("<HHL")

VRS = frozenset(
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
_VR_BYTES = {vr.encode("ascii"): vr for vr in VRS}
LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"})
_ENCAPSULATED_VRS = frozenset({"OB", "OW"})

# Frame kinds: what the next header inside the frame must be.
_DATASET, _SEQUENCE, _FRAGMENTS = 0, 1, 2
_KIND_NAMES = {_DATASET: "an item", _SEQUENCE: "a sequence", _FRAGMENTS: "encapsulated pixel data"}


class MalformedDataset(ValueError):
    """The bytes are not a well-formed dataset; the message says where and why."""


class DatasetTruncated(MalformedDataset):
    """The dataset ends before its structure does (inside an element, item or sequence)."""


@functools.lru_cache(maxsize=4096)
def _is_sequence_tag(tag: int) -> bool:
    """Whether the data dictionary says `tag` is a sequence (for implicit VR)."""
    if tag >> 16 & 1:
        return False  # private: unknown without its creator's dictionary
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


class _Frame:
    """A dataset, item, sequence or encapsulated value being walked."""

    __slots__ = ("kind", "end", "limit", "implicit", "delimited")

    def __init__(self, kind: int, end: int | None, limit: int | None, implicit: bool, delimited: bool) -> None:
        self.kind = kind
        self.end = end  # absolute offset where it ends, None while undefined
        self.limit = limit  # the nearest defined end around it (its own or an outer one)
        self.implicit = implicit
        self.delimited = delimited  # an undefined-length item: ends with (FFFE,E00D)


def _label(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class StructureChecker:
    """Feed a dataset's bytes with `feed` in any chunking, then call `finish`.

    Raises MalformedDataset at the first defect, with the byte offset in the message.
    """

    def __init__(self, *, implicit: bool = False, little_endian: bool = True, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.max_depth = max_depth
        order = "<" if little_endian else ">"
        self._explicit = struct.Struct(order + "HH2sH")  # tag, VR, 16-bit length
        self._tag_length = struct.Struct(order + "HHL")  # tag, 32-bit length
        self._long_length = struct.Struct(order + "L")
        self._stack = [_Frame(_DATASET, None, None, implicit, False)]
        self._depth = 0  # sequences open
        self._offset = 0  # absolute offset of the next byte not yet walked
        self._skip = 0  # value bytes still to step over
        self._value = (0, 0)  # tag and length of the value being stepped over
        self._head = bytearray()  # an element header split across chunks
        self.found_implicit = False  # explicit VR was agreed, the dataset turned out implicit

    @property
    def offset(self) -> int:
        """Bytes walked so far (the dataset's length once `finish` passed)."""
        return self._offset + len(self._head)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = data if isinstance(data, memoryview) else memoryview(data)
        pos, size = 0, len(view)
        while pos < size:
            if self._skip:
                step = min(self._skip, size - pos)
                self._skip -= step
                self._offset += step
                pos += step
                if self._skip:
                    return
                self._close_ended()
                continue
            if self._head:
                pos = self._continue_header(view, pos)
            else:
                frame = self._stack[-1]
                if frame.kind == _DATASET and not frame.implicit:
                    pos = self._plain_elements(view, pos, size, frame)
                    if self._skip or pos >= size:
                        continue
                consumed = self._header(view, pos, size - pos)
                if consumed == 0:
                    self._head += view[pos:]
                    return
                pos += consumed

    def _plain_elements(self, view: memoryview, pos: int, size: int, frame: _Frame) -> int:
        """The hot path: consecutive explicit VR elements that open nothing (most of a
        header), walked in one loop. Returns where it stopped: anything else - a sequence,
        a delimiter, a bad VR, an element whose value goes on past this chunk, the end of
        the item - is left to _header."""
        unpack = self._explicit.unpack_from
        long_length = self._long_length.unpack_from
        vrs, long_vrs = _VR_BYTES, LONG_LENGTH_VRS
        limit, end_of_frame = frame.limit, frame.end
        offset = self._offset
        while pos + 12 <= size:
            group, element, vr_bytes, length = unpack(view, pos)
            vr = vrs.get(vr_bytes)
            if vr is None or vr == "SQ" or group == 0xFFFE or (offset == 0 and frame is self._stack[0]):
                break
            if vr in long_vrs:
                length = long_length(view, pos + 8)[0]
                header = 12
            else:
                header = 8
            if length == UNDEFINED or (limit is not None and offset + header + length > limit):
                break
            if pos + header + length > size:  # the value goes on in the next chunk
                self._skip = length - (size - pos - header)
                self._value = (group << 16 | element, length)
                self._offset = offset + size - pos
                return size
            pos += header + length
            offset += header + length
            if offset == end_of_frame:
                break
        self._offset = offset
        if offset == end_of_frame:
            self._close_ended()
        return pos

    @property
    def value_bytes_left(self) -> int:
        """Bytes of the current value still to come: a reader of a file may `skip` them."""
        return self._skip

    def skip(self, count: int) -> None:
        """Step over `count` bytes of the current value without reading them."""
        if not 0 <= count <= self._skip:
            raise ValueError(f"cannot skip {count} bytes, {self._skip} are left of the value")
        self._skip -= count
        self._offset += count
        if not self._skip:
            self._close_ended()

    def finish(self) -> None:
        """The dataset is complete: check it ended where it may."""
        if self._skip:
            tag, length = self._value
            raise DatasetTruncated(
                f"the dataset ends inside {_label(tag)} (at byte {self._offset}):"
                f" {self._skip} of its {length} bytes are missing"
            )
        if self._head:
            raise DatasetTruncated(f"the dataset ends inside an element header (at byte {self.offset})")
        if len(self._stack) > 1:
            raise DatasetTruncated(
                f"the dataset ends inside {_KIND_NAMES[self._stack[-1].kind]} (at byte {self._offset})"
            )
        if self._offset % 2:
            raise MalformedDataset(f"the dataset has an odd length ({self._offset} bytes)")

    # -- headers -----------------------------------------------------------------------

    def _continue_header(self, view: memoryview, pos: int) -> int:
        """Complete a header begun in an earlier chunk; the position after what it took."""
        have = len(self._head)
        extra = bytes(view[pos : pos + 12 - have])
        buffer = bytes(self._head) + extra
        consumed = self._header(buffer, 0, len(buffer))
        if consumed == 0:
            self._head += extra
            return pos + len(extra)
        self._head.clear()
        return pos + consumed - have

    def _header(self, buffer, at: int, available: int) -> int:
        """Walk the header at buffer[at:]; the bytes it took, 0 if it is not all there."""
        if available < 8:
            return 0
        frame = self._stack[-1]
        if frame.kind != _DATASET or frame.implicit:
            # Item headers, and implicit VR elements (always little endian, PS3.5 A.1).
            unpack = _IMPLICIT.unpack_from if frame.implicit else self._tag_length.unpack_from
            group, element, length = unpack(buffer, at)
            self._offset += 8
            if frame.kind == _DATASET:
                self._element(frame, group << 16 | element, None, length)
            else:
                self._item(frame, group << 16 | element, length)
            return 8
        group, element, vr_bytes, length = self._explicit.unpack_from(buffer, at)
        tag = group << 16 | element
        if group == 0xFFFE:  # delimiters have no VR
            length = self._tag_length.unpack_from(buffer, at)[2]
            self._offset += 8
            self._element(frame, tag, None, length)
            return 8
        vr = _VR_BYTES.get(vr_bytes)
        if vr is None and self._offset == 0 and frame is self._stack[0]:
            # Implicit VR where explicit was agreed: readers (DCMTK's, pydicom's) detect
            # this by the first element and read on as implicit VR; so do we.
            frame.implicit = self.found_implicit = True
            return self._header(buffer, at, available)
        if vr is None:
            raise MalformedDataset(f"{_label(tag)} has no valid VR ({vr_bytes!r}) at byte {self._offset + 4}")
        if vr in LONG_LENGTH_VRS:
            if available < 12:
                return 0
            length = self._long_length.unpack_from(buffer, at + 8)[0]
            self._offset += 12
            self._element(frame, tag, vr, length)
            return 12
        self._offset += 8
        self._element(frame, tag, vr, length)
        return 8

    def _element(self, frame: _Frame, tag: int, vr: str | None, length: int) -> None:
        """An element header inside a dataset or item (vr None: implicit VR)."""
        if tag >> 16 == 0xFFFE:
            if tag == ITEM_END and frame.delimited:
                self._stack.pop()
                self._close_ended()
                return
            raise MalformedDataset(f"unexpected {_label(tag)} inside {_KIND_NAMES[frame.kind]} at byte {self._offset - 8}")
        if length == UNDEFINED:
            if vr == "SQ" or (vr is None and tag != PIXEL_DATA):
                self._open_sequence(frame, None, frame.implicit)
            elif vr == "UN":
                self._open_sequence(frame, None, True)
            elif vr in _ENCAPSULATED_VRS or (vr is None and tag == PIXEL_DATA):
                self._stack.append(_Frame(_FRAGMENTS, None, frame.limit, frame.implicit, False))
            else:
                raise MalformedDataset(f"{_label(tag)} ({vr}) has an undefined length, which only SQ, UN, OB and OW may have")
            return
        end = self._offset + length
        if frame.limit is not None and end > frame.limit:
            raise MalformedDataset(
                f"{_label(tag)} claims {length} bytes at byte {self._offset}, past the end of its {self._container(frame)}"
            )
        if vr == "SQ" or (vr is None and _is_sequence_tag(tag)):
            self._open_sequence(frame, end, frame.implicit)
            self._close_ended()
        else:
            self._skip = length
            self._value = (tag, length)
            if not length:
                self._close_ended()

    def _item(self, frame: _Frame, tag: int, length: int) -> None:
        """An item header inside a sequence or encapsulated value."""
        if tag == SEQUENCE_END:
            if frame.end is not None:
                raise MalformedDataset(f"sequence delimiter inside a sequence of defined length at byte {self._offset - 8}")
            self._stack.pop()
            if frame.kind == _SEQUENCE:
                self._depth -= 1
            self._close_ended()
            return
        if tag != ITEM:
            raise MalformedDataset(f"expected an item in {_KIND_NAMES[frame.kind]}, found {_label(tag)} at byte {self._offset - 8}")
        if length == UNDEFINED:
            if frame.kind == _FRAGMENTS:
                raise MalformedDataset(f"a fragment of encapsulated pixel data has an undefined length at byte {self._offset - 8}")
            self._stack.append(_Frame(_DATASET, None, frame.limit, frame.implicit, True))
            return
        end = self._offset + length
        if frame.limit is not None and end > frame.limit:
            raise MalformedDataset(f"an item claims {length} bytes at byte {self._offset}, past the end of its {self._container(frame)}")
        if frame.kind == _FRAGMENTS:
            self._skip = length
            self._value = (tag, length)
            if not length:
                self._close_ended()
            return
        self._stack.append(_Frame(_DATASET, end, end, frame.implicit, False))
        self._close_ended()

    def _open_sequence(self, frame: _Frame, end: int | None, implicit: bool) -> None:
        if self._depth >= self.max_depth:
            raise MalformedDataset(f"sequences nested deeper than {self.max_depth} levels at byte {self._offset}")
        self._depth += 1
        self._stack.append(_Frame(_SEQUENCE, end, frame.limit if end is None else end, implicit, False))

    def _close_ended(self) -> None:
        """Leave every item and sequence whose defined length ends here."""
        stack = self._stack
        while len(stack) > 1 and stack[-1].end == self._offset:
            if stack.pop().kind == _SEQUENCE:
                self._depth -= 1

    @staticmethod
    def _container(frame: _Frame) -> str:
        return "item" if frame.kind == _DATASET else "sequence"


class DeflatedStructureChecker:
    """The same check for deflated explicit VR little endian: inflated on the way through,
    in bounded steps, and refused once it inflates past `max_inflated` bytes."""

    def __init__(self, *, max_depth: int = DEFAULT_MAX_DEPTH, max_inflated: int = DEFAULT_MAX_INFLATED) -> None:
        self._inner = StructureChecker(max_depth=max_depth)
        self._inflater = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
        self._max_inflated = max_inflated
        self._inflated = 0

    @property
    def offset(self) -> int:
        return self._inner.offset

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._inflate(data)

    def finish(self) -> None:
        if not self._inflater.eof:
            self._inflate(b"", final=True)
        self._inner.finish()

    def _inflate(self, data: bytes | bytearray | memoryview, *, final: bool = False) -> None:
        try:
            inflater = self._inflater
            if inflater.eof:
                return  # bytes after the deflate stream's end (padding) are no part of it
            self._count(inflater.decompress(data, _INFLATE_STEP))
            while inflater.unconsumed_tail and not inflater.eof:
                self._count(inflater.decompress(inflater.unconsumed_tail, _INFLATE_STEP))
            if final:
                self._count(self._inflater.flush())
                if not self._inflater.eof:
                    raise DatasetTruncated("the deflated dataset ends before its deflate stream does")
        except zlib.error as error:
            raise MalformedDataset(f"the deflated dataset does not inflate: {error}") from None

    def _count(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._inflated += len(chunk)
        if self._inflated > self._max_inflated:
            raise MalformedDataset(f"the deflated dataset inflates past {self._max_inflated} bytes")
        self._inner.feed(chunk)


def checker_for(
    transfer_syntax: str, *, max_depth: int = DEFAULT_MAX_DEPTH, max_inflated: int = DEFAULT_MAX_INFLATED
) -> StructureChecker | DeflatedStructureChecker:
    """A checker for a dataset in `transfer_syntax` (compressed syntaxes are explicit VR
    little endian with encapsulated pixel data)."""
    if transfer_syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        return DeflatedStructureChecker(max_depth=max_depth, max_inflated=max_inflated)
    return StructureChecker(
        implicit=transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN,
        little_endian=transfer_syntax != EXPLICIT_VR_BIG_ENDIAN,
        max_depth=max_depth,
    )


def check_dataset(data: bytes | bytearray | memoryview, transfer_syntax: str, **limits: int) -> None:
    """Check a whole dataset at once; raises MalformedDataset."""
    checker = checker_for(transfer_syntax, **limits)
    checker.feed(data)
    checker.finish()
