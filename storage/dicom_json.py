"""DICOM JSON (PS3.18 Annex F) from raw element bytes, without bulk data.

Two sources, one result: ``elements_json`` takes dicom_walk's elements (the hot path),
``dataset_json`` takes a pydicom Dataset's still-raw elements (big endian, deflated and
odd files pydicom alone can read). Why not ``Dataset.to_json_dict``: it converts every
element through pydicom's value classes and validators first, about 70 us per element
(~7 ms for the public attributes of a CT header), once per received instance.

What is kept: public attributes of text, number and sequence VRs. What is dropped:
binary VRs (OB/OW/OD/OF/OL/OV and unresolvable UN), private attributes, group 0002,
sequences of more than MAX_SEQUENCE_ITEMS items or MAX_SEQUENCE_JSON characters (per-
frame functional groups are bulk in all but name), and any element that cannot be
decoded (an index must not refuse an image because an optional attribute is malformed;
the file itself is kept as received).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Iterable
from typing import Any

from pydicom import config
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.valuerep import TEXT_VR_DELIMS

from .dicom_walk import Element, WalkError, dictionary_vr, walk_items
from .normalize import person_name_text

JsonAttr = dict[str, Any]
JsonDataset = dict[str, JsonAttr]

SPECIFIC_CHARACTER_SET = 0x00080005
PIXEL_REPRESENTATION = 0x00280103

BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
# Text VRs whose bytes are decoded with the Specific Character Set; the rest are ASCII.
CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
# Text VRs that never have more than one value: a backslash in them is just a character.
SINGLE_VALUE_TEXT = frozenset({"LT", "ST", "UT", "UR"})
TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
BINARY_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
# PS3.5 6.1.2.5.3: these characters reset ISO 2022 code extensions to the initial state.
PN_DELIMITERS = TEXT_VR_DELIMS | {0x5C, 0x3D, 0x5E}
MULTI_VALUE_DELIMITERS = TEXT_VR_DELIMS | {0x5C}
PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
MAX_SEQUENCE_ITEMS = 64
MAX_SEQUENCE_JSON = 16384


class UndecodableElement(ValueError):
    """An element whose bytes do not fit its VR (the caller drops it)."""


def python_encodings(specific_character_set: str | Iterable[str] | None) -> list[str]:
    """Python codec names for a Specific Character Set value (default repertoire if empty)."""
    if not specific_character_set:
        return convert_encodings(None)
    if isinstance(specific_character_set, str):
        terms = specific_character_set.split("\\")
    else:
        terms = list(specific_character_set)
    return convert_encodings([term.strip() for term in terms] or None)


def character_set_of(ds: Dataset) -> str:
    """The dataset's Specific Character Set as stored, values joined with backslash."""
    raw = ds.get_item(SPECIFIC_CHARACTER_SET)
    if raw is None:
        return ""
    value = raw.value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("ascii", "replace").strip(" \x00")
    if isinstance(value, str):
        return value.strip()
    return "\\".join(str(part).strip() for part in value)


def dataset_json(ds: Dataset, encodings: list[str], *, keep: Callable[[int], bool] | None = None) -> JsonDataset:
    """The JSON model of ``ds``'s public non-bulk attributes (``keep(tag)`` filters top level)."""
    out: JsonDataset = {}
    # items() hands out the raw elements without pydicom converting them (get_item would
    # too, but at twice the cost per element).
    for tag, elem in ds.items():
        key = int(tag)  # plain int: BaseTag's Python-level __eq__ is slow in a hot loop
        group = key >> 16
        if group == 0x0002 or group & 1 or key == SPECIFIC_CHARACTER_SET or not key & 0xFFFF:
            continue  # meta, private, charset (a column of its own), group lengths
        if keep is not None and not keep(key):
            continue
        try:
            attr = element_json(ds, key, elem, encodings)
        except (UndecodableElement, UnicodeError, LookupError, struct.error, ValueError):
            continue
        if attr is not None:
            out[f"{key:08X}"] = attr
    return out


def element_json(ds: Dataset, tag: int, elem: RawDataElement | DataElement, encodings: list[str]) -> JsonAttr | None:
    """One element of ``ds`` as a JSON attribute object, or None when it is bulk or unknown."""
    if isinstance(elem, RawDataElement):
        vr = _resolve_vr(ds, tag, elem.VR, elem.value)
        if vr is None or vr in BULK_VRS:
            return None
        if vr == "SQ":
            return _sequence_json(ds[tag].value, encodings)
        # UN values are always implicit little endian, whatever the transfer syntax.
        little = elem.is_little_endian or elem.VR == "UN"
        return _value_json(vr, elem.value or b"", encodings, little)
    return _converted_json(elem, encodings)


def elements_json(elements: list[Element], encodings: list[str]) -> JsonDataset:
    """The JSON model of elements from dicom_walk (public, little endian), the same as
    ``dataset_json`` gives for a pydicom dataset of the same bytes."""
    signed_pixels = any(
        tag == PIXEL_REPRESENTATION and isinstance(value, bytes) and value[:1] == b"\x01"
        for tag, _, value in elements
    )
    out: JsonDataset = {}
    charset_key = tuple(encodings)
    for tag, vr, value in elements:
        if tag >> 16 == 0x0002 or tag == SPECIFIC_CHARACTER_SET or not tag & 0xFFFF:
            continue
        memo_key = (tag, vr, value, charset_key, signed_pixels) if type(value) is bytes and len(value) <= MEMO_VALUE_SIZE else None
        if memo_key is not None and (attr := _memo.get(memo_key)) is not None:
            out[f"{tag:08X}"] = attr
            continue
        if vr is None or vr == "UN":
            vr = dictionary_vr(tag)
        if vr is None:
            continue
        if " or " in vr:
            if vr != "US or SS":
                continue
            vr = "SS" if signed_pixels else "US"
        try:
            if vr == "SQ":
                if isinstance(value, bytes):  # a sequence that arrived as UN: implicit VR items
                    value = walk_items(value, implicit=True)
                attr = _items_json(value or [], encodings)
                if attr is not None:
                    out[f"{tag:08X}"] = attr
            elif value is not None and vr not in BULK_VRS:
                attr = out[f"{tag:08X}"] = _value_json(vr, value, encodings, True)
                if memo_key is not None:
                    _remember(memo_key, attr)
        except (UndecodableElement, WalkError, UnicodeError, LookupError, struct.error, ValueError):
            continue
    return out


# Most of a header is the same from one image of a series to the next (patient, study,
# series, and per-image attributes like Rows or Pixel Spacing), so converted values are
# remembered by their bytes. The attribute objects are shared: callers never change them.
# Bounded: at most MEMO_ENTRIES values of at most MEMO_VALUE_SIZE bytes. An entry (key,
# raw bytes, converted attribute) takes ~620 bytes for a typical CT header's values and
# 1 KB for a 256-byte one: ~2.5 MB when full, 4.1 MB at worst (measured, Python 3.11).
# Values unique to one image (its SOP Instance UID, times) fill it, so it empties every
# 1,500-2,000 new images.
MEMO_VALUE_SIZE = 256
MEMO_ENTRIES = 4096
_memo: dict[tuple[Any, ...], JsonAttr] = {}


def _remember(key: tuple[Any, ...], attr: JsonAttr) -> None:
    if len(_memo) >= MEMO_ENTRIES:
        _memo.clear()  # cheaper than LRU bookkeeping on every hit; refills in one series
    _memo[key] = attr


def forget_remembered_values() -> None:
    """Empty the memo of converted values (a memory measurement's fixed starting point)."""
    _memo.clear()


def _items_json(items: list[list[Element]], encodings: list[str]) -> JsonAttr | None:
    if len(items) > MAX_SEQUENCE_ITEMS:
        return None
    values = []
    for item in items:
        item_encodings = encodings
        for tag, _, value in item:
            if tag == SPECIFIC_CHARACTER_SET and isinstance(value, bytes):
                item_encodings = python_encodings(value.decode("ascii", "replace").strip(" \x00"))
        values.append(elements_json(item, item_encodings))
    return _bounded_sequence(values)


def _bounded_sequence(values: list[JsonDataset]) -> JsonAttr | None:
    attr: JsonAttr = {"vr": "SQ"}
    if values:
        attr["Value"] = values
        if len(json.dumps(values, ensure_ascii=False)) > MAX_SEQUENCE_JSON:
            return None
    return attr


def character_set_of_elements(elements: list[Element]) -> str:
    for tag, _, value in elements:
        if tag == SPECIFIC_CHARACTER_SET and isinstance(value, bytes):
            return value.decode("ascii", "replace").strip(" \x00")
    return ""


def _resolve_vr(ds: Dataset, tag: int, vr: str | None, value: bytes | None) -> str | None:
    if vr is None or vr == "UN":
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return None
    if vr == "US or SS":
        pixel_representation = ds.get_item(PIXEL_REPRESENTATION)
        signed = False
        if isinstance(pixel_representation, RawDataElement) and pixel_representation.value:
            signed = pixel_representation.value[:2] in (b"\x01\x00", b"\x00\x01")
        elif isinstance(pixel_representation, DataElement):
            signed = pixel_representation.value == 1
        return "SS" if signed else "US"
    if " or " in vr:  # OB or OW, US or SS or OW, ...: binary either way
        return None
    return vr


def _sequence_json(items: Iterable[Dataset], encodings: list[str]) -> JsonAttr | None:
    items = list(items)
    if len(items) > MAX_SEQUENCE_ITEMS:
        return None
    values = []
    for item in items:
        item_encodings = encodings
        if SPECIFIC_CHARACTER_SET in item:
            item_encodings = python_encodings(character_set_of(item))
        values.append(dataset_json(item, item_encodings))
    return _bounded_sequence(values)


def _value_json(vr: str, raw: bytes, encodings: list[str], little_endian: bool) -> JsonAttr:
    attr: JsonAttr = {"vr": vr}
    if not raw:
        return attr
    if vr in TEXT_VRS:
        values = _text_values(vr, raw, encodings)
    elif vr in BINARY_NUMBER_FORMATS:
        values = _binary_numbers(vr, raw, little_endian)
    elif vr == "AT":
        values = _tags(raw, little_endian)
    else:
        raise UndecodableElement(f"unsupported VR {vr}")
    if values and any(v is not None for v in values):
        attr["Value"] = values
    return attr


def _text_values(vr: str, raw: bytes, encodings: list[str]) -> list[Any]:
    if vr in CHARSET_VRS:
        delimiters = PN_DELIMITERS if vr == "PN" else (
            TEXT_VR_DELIMS if vr in SINGLE_VALUE_TEXT else MULTI_VALUE_DELIMITERS
        )
        text = decode_bytes(raw, encodings, delimiters)
    else:
        text = raw.decode("ascii")
    if vr in SINGLE_VALUE_TEXT:
        text = text.rstrip(" \x00")
        return [text] if text else []
    # Decode before splitting: in some multi-byte character sets 0x5C is a trail byte.
    parts = [part.strip(" \x00") for part in text.split("\\")]
    if vr == "PN":
        return [_person_name(part) for part in parts]
    if vr == "IS":
        return [_integer_string(part) for part in parts]
    if vr == "DS":
        return [_decimal_string(part) for part in parts]
    return [part or None for part in parts]


def _person_name(value: str) -> dict[str, str] | None:
    if not value:
        return None
    groups = value.split("=")
    return {name: group.rstrip(" ") for name, group in zip(PN_GROUPS, groups) if group}


def _integer_string(value: str) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        number = float(value)  # some writers put "1.0" in an IS; accept exact integers only
        if not number.is_integer():
            raise UndecodableElement(f"IS value {value!r}") from None
        return int(number)


def _decimal_string(value: str) -> int | float | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        number = float(value)
        if not math.isfinite(number):
            raise UndecodableElement(f"DS value {value!r}") from None
        return number


def _binary_numbers(vr: str, raw: bytes, little_endian: bool) -> list[int | float]:
    code = BINARY_NUMBER_FORMATS[vr]
    size = struct.calcsize(code)
    count = len(raw) // size
    numbers = list(struct.unpack(("<" if little_endian else ">") + code * count, raw[: count * size]))
    if vr in ("FL", "FD") and not all(math.isfinite(n) for n in numbers):
        raise UndecodableElement("non-finite float has no JSON form")
    return numbers


def _tags(raw: bytes, little_endian: bool) -> list[str]:
    count = len(raw) // 4
    halves = struct.unpack(("<" if little_endian else ">") + "H" * (2 * count), raw[: 4 * count])
    return [f"{halves[i]:04X}{halves[i + 1]:04X}" for i in range(0, len(halves), 2)]


def _converted_json(elem: DataElement, encodings: list[str]) -> JsonAttr | None:
    """An element pydicom already converted (someone read its value): use its own JSON."""
    if elem.VR in BULK_VRS or " or " in elem.VR:
        return None
    if elem.VR == "SQ":
        return _sequence_json(elem.value, encodings)
    attr = elem.to_json_dict(None, 0)
    numbers = [v for v in attr.get("Value", ()) if isinstance(v, float)]
    if not all(math.isfinite(v) for v in numbers):
        raise UndecodableElement("non-finite float has no JSON form")
    return attr


# -- back from JSON to pydicom (C-FIND responses) -------------------------------------------------


def make_element(tag: int, vr: str, value: Any) -> DataElement:
    """A DataElement from values the index wrote itself: pydicom's validation (about half
    the cost of building a C-FIND response) has nothing to find there."""
    return DataElement(tag, vr, value, validation_mode=config.IGNORE)


def element_from_json(tag: int, attr: JsonAttr) -> DataElement:
    vr = attr.get("vr", "UN")
    values = attr.get("Value")
    if vr == "SQ":
        return DataElement(tag, vr, Sequence([dataset_from_json(item) for item in values or ()]))
    if not values:
        return make_element(tag, vr, None)
    if vr == "PN":
        values = [person_name_text(v) for v in values]
    elif vr in ("IS", "DS"):
        values = ["" if v is None else str(v) for v in values]
    else:
        values = ["" if v is None else v for v in values]
    return make_element(tag, vr, values[0] if len(values) == 1 else values)


def dataset_from_json(attributes: JsonDataset) -> Dataset:
    ds = Dataset()
    for tag_hex, attr in attributes.items():
        ds.add(element_from_json(int(tag_hex, 16), attr))
    return ds
