"""Command-set elements: group 0000 in implicit VR little endian (PS3.5 7.1.3, PS3.7 Annex E).

A command set is a handful of small elements, encoded and decoded once per message, so
this is hand-rolled with struct; a pydicom Dataset costs far more than the message
itself. Only the value representations the command dictionary uses are here.

Each VR has a checker (used by the message classes' validators, so our own messages and
the peer's are held to the same rules), an encoder and a decoder. Decoders raise
`ValueError` with a short reason; the message layer adds the tag and turns it into a
`RemoteProtocolError`.
"""

import enum
import re
import struct
from collections.abc import Callable

_ELEMENT_HEADER = struct.Struct("<HHL")  # group, element, value length
_US_ELEMENT = struct.Struct("<HHLH")
_UL_ELEMENT = struct.Struct("<HHLL")
_US = struct.Struct("<H")
_UL = struct.Struct("<L")
_AT_PAIR = struct.Struct("<HH")

UNDEFINED_LENGTH = 0xFFFFFFFF


class VR(enum.Enum):
    UI = "UI"
    US = "US"
    UL = "UL"
    AE = "AE"
    LO = "LO"
    ST = "ST"
    CS = "CS"
    AT = "AT"


# The command dictionary (PS3.7 E.1): tag -> (name, VR).
COMMAND_GROUP_LENGTH = 0x00000000
AFFECTED_SOP_CLASS_UID = 0x00000002
REQUESTED_SOP_CLASS_UID = 0x00000003
COMMAND_FIELD = 0x00000100
MESSAGE_ID = 0x00000110
MESSAGE_ID_BEING_RESPONDED_TO = 0x00000120
MOVE_DESTINATION = 0x00000600
PRIORITY = 0x00000700
COMMAND_DATA_SET_TYPE = 0x00000800
STATUS = 0x00000900
OFFENDING_ELEMENT = 0x00000901
ERROR_COMMENT = 0x00000902
ERROR_ID = 0x00000903
AFFECTED_SOP_INSTANCE_UID = 0x00001000
REQUESTED_SOP_INSTANCE_UID = 0x00001001
EVENT_TYPE_ID = 0x00001002
ATTRIBUTE_IDENTIFIER_LIST = 0x00001005
ACTION_TYPE_ID = 0x00001008
NUMBER_OF_REMAINING_SUBOPERATIONS = 0x00001020
NUMBER_OF_COMPLETED_SUBOPERATIONS = 0x00001021
NUMBER_OF_FAILED_SUBOPERATIONS = 0x00001022
NUMBER_OF_WARNING_SUBOPERATIONS = 0x00001023
MOVE_ORIGINATOR_AE_TITLE = 0x00001030
MOVE_ORIGINATOR_MESSAGE_ID = 0x00001031

COMMAND_DICTIONARY: dict[int, tuple[str, VR]] = {
    COMMAND_GROUP_LENGTH: ("Command Group Length", VR.UL),
    AFFECTED_SOP_CLASS_UID: ("Affected SOP Class UID", VR.UI),
    REQUESTED_SOP_CLASS_UID: ("Requested SOP Class UID", VR.UI),
    COMMAND_FIELD: ("Command Field", VR.US),
    MESSAGE_ID: ("Message ID", VR.US),
    MESSAGE_ID_BEING_RESPONDED_TO: ("Message ID Being Responded To", VR.US),
    MOVE_DESTINATION: ("Move Destination", VR.AE),
    PRIORITY: ("Priority", VR.US),
    COMMAND_DATA_SET_TYPE: ("Command Data Set Type", VR.US),
    STATUS: ("Status", VR.US),
    OFFENDING_ELEMENT: ("Offending Element", VR.AT),
    ERROR_COMMENT: ("Error Comment", VR.LO),
    ERROR_ID: ("Error ID", VR.US),
    AFFECTED_SOP_INSTANCE_UID: ("Affected SOP Instance UID", VR.UI),
    REQUESTED_SOP_INSTANCE_UID: ("Requested SOP Instance UID", VR.UI),
    EVENT_TYPE_ID: ("Event Type ID", VR.US),
    ATTRIBUTE_IDENTIFIER_LIST: ("Attribute Identifier List", VR.AT),
    ACTION_TYPE_ID: ("Action Type ID", VR.US),
    NUMBER_OF_REMAINING_SUBOPERATIONS: ("Number of Remaining Sub-operations", VR.US),
    NUMBER_OF_COMPLETED_SUBOPERATIONS: ("Number of Completed Sub-operations", VR.US),
    NUMBER_OF_FAILED_SUBOPERATIONS: ("Number of Failed Sub-operations", VR.US),
    NUMBER_OF_WARNING_SUBOPERATIONS: ("Number of Warning Sub-operations", VR.US),
    MOVE_ORIGINATOR_AE_TITLE: ("Move Originator Application Entity Title", VR.AE),
    MOVE_ORIGINATOR_MESSAGE_ID: ("Move Originator Message ID", VR.US),
}


def tag_label(tag: int) -> str:
    """'(0000,1000) Affected SOP Instance UID', for error messages."""
    name = COMMAND_DICTIONARY.get(tag, ("unknown element",))[0]
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {name}"


# --- checks: return None when the value is valid, else the reason --------------------

# Text VRs: maximum length in characters (PS3.5 6.2). All use the default repertoire here
# (PS3.7 says so for Error Comment; AE and CS allow nothing else), without backslash,
# the value delimiter.
_TEXT_MAX = {VR.AE: 16, VR.LO: 64, VR.ST: 1024, VR.CS: 16}
_TEXT_CHARS = {VR.AE: r" -\[\]-~", VR.LO: r" -\[\]-~", VR.ST: r" -\[\]-~", VR.CS: r"A-Z0-9 _"}
_PATTERNS = {vr: f"[{_TEXT_CHARS[vr]}]{{1,{limit}}}" for vr, limit in _TEXT_MAX.items()}
# Only length and characters of a UID we send. A received UID is not checked here at all:
# the service layer checks the grammar and can answer a bad UID with a status instead of
# an abort.
_PATTERNS[VR.UI] = r"[0-9.]{1,64}"
_STR_PATTERNS = {vr: re.compile(p) for vr, p in _PATTERNS.items()}
_BYTES_PATTERNS = {vr: re.compile(p.encode("ascii")) for vr, p in _PATTERNS.items()}


def _describe_bad_string(vr: VR, value: str) -> str:
    limit = 64 if vr is VR.UI else _TEXT_MAX[vr]
    if not value:
        return "must not be empty"
    if len(value) > limit:
        return f"of {len(value)} characters exceeds {vr.value}'s {limit}"
    if vr is VR.UI:
        return f"{value!r} has characters other than digits and '.'"
    return f"{value!r} has characters {vr.value} does not allow"


def _string_checker(vr: VR) -> Callable[[object], str | None]:
    fullmatch = _STR_PATTERNS[vr].fullmatch

    def check(value: object) -> str | None:
        if value.__class__ is str and fullmatch(value):  # type: ignore[arg-type]
            return None
        if not isinstance(value, str):
            return f"must be a str, not {type(value).__name__}"
        return None if fullmatch(value) else _describe_bad_string(vr, value)

    return check


def _int_checker(vr: VR) -> Callable[[object], str | None]:
    limit = 0xFFFF if vr is VR.US else 0xFFFFFFFF

    def check(value: object) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be an int, not {type(value).__name__}"
        if not 0 <= value <= limit:
            return f"{value} does not fit in {vr.value}"
        return None

    return check


def _check_at(value: object) -> str | None:
    if not isinstance(value, tuple) or not value:
        return "must be a non-empty tuple of tags"
    for tag in value:
        if not isinstance(tag, int) or isinstance(tag, bool) or not 0 <= tag <= 0xFFFFFFFF:
            return f"{tag!r} is not a 32-bit tag"
    return None


CHECKERS: dict[VR, Callable[[object], str | None]] = {
    VR.US: _int_checker(VR.US),
    VR.UL: _int_checker(VR.UL),
    VR.AT: _check_at,
    **{vr: _string_checker(vr) for vr in (VR.UI, VR.AE, VR.LO, VR.ST, VR.CS)},
}


# --- encoders: (element number, value) -> bytes; the group is always 0000 -------------


def _encode_us(element: int, value: int) -> bytes:
    return _US_ELEMENT.pack(0, element, 2, value)


def _encode_ul(element: int, value: int) -> bytes:
    return _UL_ELEMENT.pack(0, element, 4, value)


def _encode_ui(element: int, value: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += b"\x00"
    return _ELEMENT_HEADER.pack(0, element, len(raw)) + raw


def _encode_text(element: int, value: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += b" "
    return _ELEMENT_HEADER.pack(0, element, len(raw)) + raw


def _encode_at(element: int, value: tuple[int, ...]) -> bytes:
    raw = b"".join(_AT_PAIR.pack(tag >> 16, tag & 0xFFFF) for tag in value)
    return _ELEMENT_HEADER.pack(0, element, len(raw)) + raw


ENCODERS: dict[VR, Callable[[int, object], bytes]] = {
    VR.US: _encode_us,
    VR.UL: _encode_ul,
    VR.UI: _encode_ui,
    VR.AE: _encode_text,
    VR.LO: _encode_text,
    VR.ST: _encode_text,
    VR.CS: _encode_text,
    VR.AT: _encode_at,
}


def encode_group_length(length: int) -> bytes:
    return _UL_ELEMENT.pack(0, 0, 4, length)


# --- decoders: raw value bytes -> value, None for "no value", ValueError if malformed --
# They apply the same rules as CHECKERS, so decoded values need no second validation.


def _decode_us(raw: bytes) -> int:
    if len(raw) != 2:
        raise ValueError(f"US value of {len(raw)} bytes, expected 2")
    return _US.unpack(raw)[0]


def _decode_ul(raw: bytes) -> int:
    if len(raw) != 4:
        raise ValueError(f"UL value of {len(raw)} bytes, expected 4")
    return _UL.unpack(raw)[0]


def _string_decoder(vr: VR) -> Callable[[bytes], str | None]:
    fullmatch = _BYTES_PATTERNS[vr].fullmatch
    # UI is padded with NUL, the others with spaces; we take either, as some peers mix
    # them up. AE, LO and CS also drop leading spaces, insignificant there (PS3.5 6.2).
    strip = bytes.rstrip if vr in (VR.UI, VR.ST) else bytes.strip

    def decode(raw: bytes) -> str | None:
        value = strip(raw, b" \x00")
        if not value:
            return None
        if fullmatch(value):
            return value.decode("ascii")
        text = value.decode("ascii", "backslashreplace")
        if vr is VR.UI:
            # Kept, as printable text: the service checks UIDs and answers a bad one
            # with a status, where an error here would abort the association.
            return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
        raise ValueError(_describe_bad_string(vr, text))

    return decode


def _decode_at(raw: bytes) -> tuple[int, ...] | None:
    if len(raw) % 4:
        raise ValueError(f"AT value of {len(raw)} bytes is not a multiple of 4")
    return tuple(g << 16 | e for g, e in _AT_PAIR.iter_unpack(raw)) or None


DECODERS: dict[VR, Callable[[bytes], object]] = {
    VR.US: _decode_us,
    VR.UL: _decode_ul,
    VR.AT: _decode_at,
    **{vr: _string_decoder(vr) for vr in (VR.UI, VR.AE, VR.LO, VR.ST, VR.CS)},
}


def split_elements(data: bytes) -> tuple[dict[int, bytes], int]:
    """Split a command set into {tag: raw value}.

    Also returns the byte count (0000,0000) Command Group Length must equal: every other
    group 0000 element, header included. Raises ValueError naming the element on
    truncation, undefined lengths and duplicate tags.
    """
    elements: dict[int, bytes] = {}
    size = len(data)
    offset = 0
    group_bytes = 0
    while offset < size:
        if size - offset < 8:
            raise ValueError(f"{size - offset} stray bytes at the end of the command set")
        group, element, length = _ELEMENT_HEADER.unpack_from(data, offset)
        tag = group << 16 | element
        offset += 8
        if length == UNDEFINED_LENGTH:
            raise ValueError(f"{tag_label(tag)} has undefined length")
        end = offset + length
        if end > size:
            raise ValueError(f"{tag_label(tag)} of {length} bytes runs past the end")
        if tag in elements:
            raise ValueError(f"{tag_label(tag)} appears twice")
        elements[tag] = data[offset:end]
        if group == 0 and element != 0:
            group_bytes += 8 + length
        offset = end
    return elements, group_bytes
