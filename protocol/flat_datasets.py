"""Writing a flat dataset - text and number elements only - straight to little endian bytes.

A C-FIND answer is hundreds of small datasets of a few strings each; pydicom spends
about 0.4 ms writing each one (a writer lookup, value conversion and charset handling per
element). `encode_flat` writes the common case directly and returns None for anything
else - a sequence, binary data, a value list too long for its length field, a string the
dataset's character set is not simple for - so the caller falls back to pydicom, which
stays the reference: tests compare both byte for byte.
"""

import struct
from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.valuerep import PersonName

_SPACE_PADDED = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"})
# The VRs whose values the Specific Character Set applies to (PS3.5 6.1.2.3).
_CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_NUMBERS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
# Explicit VR: these have two reserved bytes and a 4-byte length (PS3.5 7.1.2).
_LONG_LENGTH = frozenset({"UC", "UR", "UT"})
# Character sets whose encoding of any string is one Python codec, no escapes.
_SIMPLE_CHARSETS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}
_CHARSET_TAG = 0x00080005


def _values(value: object) -> list | None:
    if value is None or value == "":
        return []
    if isinstance(value, (str, int, float, PersonName)):
        return [value]
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)  # type: ignore[call-overload]
    return None


def _text(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        original = getattr(value, "original_string", None)  # an IS or DS as received
        return original if isinstance(original, str) else str(value)
    if isinstance(value, (str, PersonName)):
        return str(value)
    return None


def _value_bytes(element: DataElement, codec: str | None) -> bytes | None:
    vr = element.VR
    values = _values(element.value)
    if values is None:
        return None
    if vr in _NUMBERS:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return None
        try:
            return struct.pack(f"<{len(values)}{_NUMBERS[vr]}", *values)
        except struct.error:
            return None
    if vr != "UI" and vr not in _SPACE_PADDED:
        return None
    texts = [_text(v) for v in values]
    if any(t is None for t in texts):
        return None
    joined = "\\".join(texts)  # type: ignore[arg-type]
    if joined.isascii():
        data = joined.encode("ascii")
    elif vr in _CHARSET_VRS and codec is not None and codec != "ascii":
        try:
            data = joined.encode(codec)
        except UnicodeEncodeError:
            return None
    else:
        return None
    if len(data) % 2:
        data += b"\0" if vr == "UI" else b" "
    return data


def _charset_codec(dataset: Dataset) -> str | None:
    if _CHARSET_TAG not in dataset:
        return "ascii"
    value = dataset[_CHARSET_TAG].value
    names = _values(value)
    if names is None or len(names) > 1:
        return None  # several: code extensions (ISO 2022), left to pydicom
    return _SIMPLE_CHARSETS.get(str(names[0]).strip() if names else "")


def encode_flat(dataset: Dataset, *, implicit: bool) -> bytes | None:
    """The dataset in implicit or explicit VR little endian, or None when it is not flat."""
    codec = _charset_codec(dataset)
    parts: list[bytes] = []
    for element in dataset.elements():
        if not isinstance(element, DataElement):
            return None  # still raw, as read: pydicom writes it as it came
        data = _value_bytes(element, codec)
        if data is None:
            return None
        tag = element.tag
        if implicit:
            parts.append(struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(data)))
        elif element.VR in _LONG_LENGTH:
            parts.append(struct.pack("<HH2s2xI", tag >> 16, tag & 0xFFFF, element.VR.encode(), len(data)))
        elif len(data) <= 0xFFFF:
            parts.append(struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, element.VR.encode(), len(data)))
        else:
            return None
        parts.append(data)
    return b"".join(parts)
