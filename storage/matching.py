"""C-FIND attribute matching (PS3.4 C.2.2.2) as conditions usable two ways.

Each key of an identifier becomes a condition that can

- render itself as SQL over an index column holding the normalized value (``sql``), and
- test stored DICOM JSON values in Python (``test``), for attributes that have no
  column and for sequence matching.

Both paths normalize through normalize.py, so they agree (the tests check it).

Matching kinds, chosen from the key's VR and value:

- universal: zero length, or only ``*`` -> no constraint
- empty value: ``""`` (two quotation marks) -> attribute absent or zero length
- single value: exact, case-sensitive except PN when case-insensitive matching is on
- wild card: ``*`` and ``?`` in AE, CS, LO, LT, PN, SH, ST, UC, UR, UT -> SQL GLOB, with
  ``[`` escaped (GLOB's only other special character; ``%`` and ``_`` are literal to GLOB)
- range: ``A-B``, ``-B``, ``A-`` for DA, TM, DT, inclusive; times and datetimes, in a
  range or as a single value, are the moments they write (a left-out part is zero:
  ``10-11`` ends at 11:00:00.000000, ``120000`` is not ``120000.123``), as DCMTK compares
  them; UTC offsets of DT are taken into account. docs/conformance.md says why.
- list: backslash-separated values of any VR but LT/ST/UT/UR match if any value does
  (List of UID Matching for UI; also ModalitiesInStudy's ``CT\\MR``)
- sequence: an item of keys matches a stored item matching all of them; an empty
  sequence or item is universal
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
from pydicom.charset import decode_bytes
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from .dicom_json import BINARY_NUMBER_FORMATS, CHARSET_VRS, MULTI_VALUE_DELIMITERS, PN_DELIMITERS, _binary_numbers
from triopacs.protocol.uid import is_valid_uid

from .errors import QueryError
from .normalize import fold_name, normalize_date, normalize_datetime, normalize_time, person_name_text

WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
SINGLE_VALUE_VRS = frozenset({"LT", "ST", "UT", "UR"})
NUMERIC_VRS = frozenset({"IS", "DS", *BINARY_NUMBER_FORMATS})
UNMATCHABLE_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "AT"})
EMPTY_VALUE_KEY = '""'

SqlFragment = tuple[str, list[Any]]


class Condition(Protocol):
    def sql(self, column: str) -> SqlFragment | None:
        """A WHERE fragment over ``column`` (which holds normalized values), None if no constraint."""

    def test(self, values: Sequence[Any]) -> bool:
        """Whether stored values (raw DICOM JSON values of one attribute) match."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return person_name_text(value)
    return value if isinstance(value, str) else str(value)


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Domain(enum.Enum):
    """How a stored value is brought to the comparable form a condition holds. An enum, not
    a function, so conditions stay plain data (printable, comparable, serializable)."""

    TEXT = "text"
    FOLDED_NAME = "folded-name"
    DATE = "date"
    TIME = "time"
    DATETIME = "datetime"
    NUMBER = "number"

    def normalize(self, value: Any) -> Any:
        return _NORMALIZERS[self](value)


_NORMALIZERS: dict[Domain, Callable[[Any], Any]] = {
    Domain.TEXT: _text,
    Domain.FOLDED_NAME: lambda v: fold_name(_text(v)),
    Domain.DATE: lambda v: normalize_date(_text(v)),
    Domain.TIME: lambda v: normalize_time(_text(v)),
    Domain.DATETIME: lambda v: normalize_datetime(_text(v)),
    Domain.NUMBER: _number,
}


@attrs.frozen
class Universal:
    def sql(self, column: str) -> SqlFragment | None:
        return None

    def test(self, values: Sequence[Any]) -> bool:
        return True


@attrs.frozen
class EmptyValue:
    def sql(self, column: str) -> SqlFragment | None:
        return f"({column} IS NULL OR {column} = '')", []

    def test(self, values: Sequence[Any]) -> bool:
        return all(_text(v) in (None, "") for v in values)


@attrs.frozen
class Equals:
    value: Any
    domain: Domain = Domain.TEXT

    def sql(self, column: str) -> SqlFragment | None:
        return f"{column} = ?", [self.value]

    def test(self, values: Sequence[Any]) -> bool:
        return any(v is not None and self.domain.normalize(v) == self.value for v in values)


def glob_pattern(pattern: str) -> str:
    """A DICOM wild card pattern as an SQLite GLOB pattern: ``*`` and ``?`` carry over,
    ``[`` (GLOB's character class) is made literal, runs of ``*`` collapse (GLOB backtracks)."""
    return re.sub(r"\*+", "*", pattern).replace("[", "[[]")


class WildcardMatcher:
    """Matches one DICOM wild card pattern in time linear in the value's length.

    A regular expression like ``.*A.*A.*B`` backtracks: against 64 'A's it tries
    every way to place each ``.*`` (seconds, and more with every ``*A``), while holding the
    GIL. Here the pattern is cut at its ``*``s into pieces that contain only literal
    characters and ``?``. The first piece must match at the start, the last at the end,
    and each one between is taken at its leftmost place after the previous one - placing
    a piece as early as possible never loses a match, so nothing is ever retried. Each
    piece is a fixed-length expression without repetition, so searching for it is at
    worst (value length x piece length).
    """

    def __init__(self, pattern: str) -> None:
        pieces = re.sub(r"\*+", "*", pattern).split("*")
        compiled = [re.compile("".join("." if c == "?" else re.escape(c) for c in piece), re.DOTALL) for piece in pieces]
        self._anchored = len(pieces) == 1  # no star: the whole value, exactly
        self._head, *self._middle, self._tail = compiled if len(compiled) > 1 else (compiled[0], compiled[0])
        self._head_length = len(pieces[0])
        self._tail_length = len(pieces[-1])
        self._minimum = sum(len(piece) for piece in pieces)

    def __call__(self, text: str) -> bool:
        if self._anchored:
            return self._head.fullmatch(text) is not None
        if len(text) < self._minimum or self._head.match(text) is None:
            return False
        position = self._head_length
        for piece in self._middle:
            found = piece.search(text, position)
            if found is None:
                return False
            position = found.end()
        tail_start = len(text) - self._tail_length
        return tail_start >= position and self._tail.fullmatch(text, tail_start) is not None


@functools.lru_cache(maxsize=256)
def wildcard_matcher(pattern: str) -> WildcardMatcher:
    return WildcardMatcher(pattern)


@attrs.frozen
class Wildcard:
    pattern: str
    domain: Domain = Domain.TEXT

    def sql(self, column: str) -> SqlFragment | None:
        return f"{column} GLOB ?", [glob_pattern(self.pattern)]

    def test(self, values: Sequence[Any]) -> bool:
        matches = wildcard_matcher(self.pattern)
        for v in values:
            text = self.domain.normalize(v)
            if text is not None and matches(text):
                return True
        return False


@attrs.frozen
class Between:
    """Inclusive range over comparable strings (normalize.py forms); None = open end."""

    low: str | None
    high: str | None
    domain: Domain = Domain.TEXT

    def sql(self, column: str) -> SqlFragment | None:
        parts, params = [], []
        if self.low is not None:
            parts.append(f"{column} >= ?")
            params.append(self.low)
        if self.high is not None:
            parts.append(f"{column} <= ?")
            params.append(self.high)
        if not parts:
            return None
        return "(" + " AND ".join(parts) + ")", params

    def test(self, values: Sequence[Any]) -> bool:
        for v in values:
            value = self.domain.normalize(v)
            if value is None:
                continue
            if (self.low is None or value >= self.low) and (self.high is None or value <= self.high):
                return True
        return False


@attrs.frozen
class AnyOf:
    """A backslash list: matches if any of its conditions does."""

    conditions: tuple[Condition, ...]

    def sql(self, column: str) -> SqlFragment | None:
        if all(isinstance(c, Equals) for c in self.conditions):
            values = [c.value for c in self.conditions]  # type: ignore[attr-defined]
            return f"{column} IN ({','.join('?' * len(values))})", values
        parts, params = [], []
        for condition in self.conditions:
            fragment = condition.sql(column)
            if fragment is None:
                return None  # one universal alternative makes the whole list universal
            parts.append(fragment[0])
            params.extend(fragment[1])
        return "(" + " OR ".join(parts) + ")", params

    def test(self, values: Sequence[Any]) -> bool:
        return any(c.test(values) for c in self.conditions)


@attrs.frozen
class SequenceMatch:
    """Sequence matching: some stored item satisfies every key of the request's item."""

    keys: tuple[tuple[str, Condition], ...]  # (tag as 8 hex digits, condition)

    def sql(self, column: str) -> SqlFragment | None:
        raise QueryError("sequence matching has no SQL form")  # pragma: no cover - planner never asks

    def test(self, values: Sequence[Any]) -> bool:
        for item in values:
            if isinstance(item, dict) and all(
                condition.test(json_values(item.get(tag_hex))) for tag_hex, condition in self.keys
            ):
                return True
        return False


def json_values(attr: dict[str, Any] | None) -> list[Any]:
    """The values of a DICOM JSON attribute, as conditions' ``test`` takes them."""
    if not attr:
        return []
    return list(attr.get("Value") or [])


# -- from key text to condition ---------------------------------------------------------------


def condition_for(vr: str, text: str, *, name: str, fold_person_names: bool = True) -> Condition:
    """The condition a key of VR ``vr`` with value ``text`` asks for (``name`` for errors)."""
    value = text.strip() if vr not in SINGLE_VALUE_VRS else text.rstrip(" ")
    if not value.strip("*"):  # "", "*", "**": every entity, those without a value too
        return Universal()
    if value == EMPTY_VALUE_KEY:
        return EmptyValue()
    if vr in UNMATCHABLE_VRS:
        raise QueryError(f"matching on {name} ({vr}) is not supported")
    if vr in SINGLE_VALUE_VRS or "\\" not in value:
        return _single(vr, value, name=name, fold=fold_person_names)
    alternatives = tuple(
        _single(vr, part.strip(), name=name, fold=fold_person_names) for part in value.split("\\") if part.strip()
    )
    if not alternatives:
        return Universal()
    return alternatives[0] if len(alternatives) == 1 else AnyOf(alternatives)


def _single(vr: str, value: str, *, name: str, fold: bool) -> Condition:
    if vr == "DA":
        return _date_condition(value, name)
    if vr == "TM":
        return _moment_condition(value, name, normalize_time, Domain.TIME)
    if vr == "DT":
        return _moment_condition(value, name, normalize_datetime, Domain.DATETIME, datetime=True)
    if vr == "UI" and not is_valid_uid(value):
        raise QueryError(f"{name}: {value[:24]!r} is not a valid UID")
    if vr in NUMERIC_VRS:
        number = _number(value)
        if number is None:
            raise QueryError(f"{name}: {value[:24]!r} is not a number")
        return Equals(number, Domain.NUMBER)
    domain, target = Domain.TEXT, value
    if vr == "PN" and fold:
        domain, target = Domain.FOLDED_NAME, fold_name(value) or ""
    if vr in WILDCARD_VRS and ("*" in value or "?" in value):
        return Wildcard(target, domain)
    return Equals(target, domain)


def _date_condition(value: str, name: str) -> Condition:
    if "-" not in value:
        date = normalize_date(value)
        if date is None:
            raise QueryError(f"{name}: {value[:24]!r} is not a date")
        return Equals(date, Domain.DATE)
    low_text, _, high_text = value.partition("-")
    low = normalize_date(low_text) if low_text.strip() else None
    high = normalize_date(high_text) if high_text.strip() else None
    if (low_text.strip() and low is None) or (high_text.strip() and high is None):
        raise QueryError(f"{name}: {value[:24]!r} is not a date range")
    return Between(low, high, Domain.DATE)


def _moment_condition(
    value: str,
    name: str,
    moment: Callable[[str], str | None],
    domain: Domain,
    *,
    datetime: bool = False,
) -> Condition:
    """TM/DT: a single value matches the moment it writes; a range runs from the moment of
    its low end to the moment of its high end, both included (PS3.4 C.2.2.2.5)."""
    low_text, high_text, is_range = _split_range(value, datetime=datetime)
    if not is_range:
        single = moment(value)
        if single is None:
            raise QueryError(f"{name}: {value[:24]!r} is not a valid value")
        return Equals(single, domain)
    low = moment(low_text) if low_text else None
    high = moment(high_text) if high_text else None
    if (low_text and low is None) or (high_text and high is None):
        raise QueryError(f"{name}: {value[:24]!r} is not a valid range")
    return Between(low, high, domain)


# A DT value; its UTC offset is at most -1200..+1400, which keeps "A-B" apart from "A-hhmm".
_DT_VALUE = r"\d{4,14}(?:\.\d{1,6})?(?:[+-](?:0\d|1[0-4])[0-5]\d)?"
_DT_SINGLE = re.compile(_DT_VALUE)
_DT_RANGE = re.compile(f"({_DT_VALUE})?-({_DT_VALUE})?")


def _split_range(value: str, *, datetime: bool) -> tuple[str, str, bool]:
    """(low, high, is_range) of a TM/DT key; DT values may themselves contain a '-'."""
    if datetime:
        if _DT_SINGLE.fullmatch(value):
            return value, "", False
        match = _DT_RANGE.fullmatch(value)
        if match is None:
            return value, "", False  # not a valid value either: the caller reports it
        return match.group(1) or "", match.group(2) or "", True
    if "-" not in value:
        return value, "", False
    low, _, high = value.partition("-")
    return low.strip(), high.strip(), True


# -- reading an identifier's keys --------------------------------------------------------------


@attrs.frozen(kw_only=True)
class IdentifierKey:
    """One key of a C-FIND/MOVE/GET identifier: tag, VR, its value as text, or its items."""

    tag: int
    vr: str
    text: str = ""
    items: tuple[tuple[IdentifierKey, ...], ...] | None = None  # for SQ keys

    @property
    def tag_hex(self) -> str:
        return f"{self.tag:08X}"


def identifier_keys(ds: Dataset, encodings: list[str]) -> list[IdentifierKey]:
    """The keys of an identifier, decoded to text without pydicom's value validation (a key
    like ``*`` in an IS, or ``20200101-`` in a DA, is not a valid value, but is a valid key)."""
    keys = []
    for tag, elem in ds.items():
        key = int(tag)
        group = key >> 16
        # Command and meta groups, group lengths, and private attributes (the index keeps
        # none, and a private creator always has a value) take no part in a query.
        if group in (0x0000, 0x0002) or group & 1 or not key & 0xFFFF:
            continue
        keys.append(_identifier_key(ds, key, elem, encodings))
    return keys


def _identifier_key(ds: Dataset, tag: int, elem: RawDataElement | DataElement, encodings: list[str]) -> IdentifierKey:
    vr = elem.VR
    if vr is None or vr == "UN":
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
    if " or " in vr:
        vr = vr.split(" or ")[0]
    if vr == "SQ":
        sequence = ds[tag].value or []
        return IdentifierKey(
            tag=tag, vr=vr, items=tuple(tuple(identifier_keys(item, encodings)) for item in sequence)
        )
    value = elem.value
    if isinstance(elem, RawDataElement):
        return IdentifierKey(tag=tag, vr=vr, text=_raw_text(vr, value or b"", encodings, elem.is_little_endian))
    return IdentifierKey(tag=tag, vr=vr, text=_value_text(value, encodings))


def _raw_text(vr: str, raw: bytes, encodings: list[str], little_endian: bool) -> str:
    if not raw:
        return ""
    if vr in BINARY_NUMBER_FORMATS:
        return "\\".join(str(n) for n in _binary_numbers(vr, raw, little_endian))
    if vr in UNMATCHABLE_VRS:
        return "<binary>"
    if vr in CHARSET_VRS:
        delimiters = PN_DELIMITERS if vr == "PN" else MULTI_VALUE_DELIMITERS
        return decode_bytes(raw, encodings, delimiters).rstrip(" \x00")
    return raw.decode("ascii", "replace").rstrip(" \x00")


def _value_text(value: Any, encodings: list[str]) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return decode_bytes(bytes(value), encodings, MULTI_VALUE_DELIMITERS).rstrip(" \x00")
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(_value_text(v, encodings) for v in value)
    return str(value)
