"""Comparable forms of DICOM values, shared by the index columns and the C-FIND matcher.

Both sides must normalize the same way or a stored value and a query value that mean
the same thing would not compare equal, hence one module for both.

- DA  -> ``YYYYMMDD`` (the old ``YYYY.MM.DD`` accepted)
- TM  -> ``HHMMSS.ffffff``: the moment the value writes, what it leaves out being zero
  (``1030`` is 10:30:00.000000, as PS3.4 C.2.2.2.1.3 reads "2230" as "223000")
- DT  -> ``YYYYMMDDHHMMSS.ffffff``, likewise (a missing month or day is the first);
  shifted to UTC when the value carries an offset, left as written when it does not
- PN  -> case folded when case-insensitive matching is asked for

Every string compares lexicographically in the same order as the moments it denotes.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

_TIME = re.compile(r"(\d\d)(?:(\d\d)(?:(\d\d)(?:\.(\d{1,6}))?)?)?")
_LEGACY_TIME = re.compile(r"(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,6}))?)?")
_DATETIME = re.compile(r"(\d{4})(\d\d)?(\d\d)?(\d\d)?(\d\d)?(\d\d)?(?:\.(\d{1,6}))?([+-]\d{4})?")


def normalize_date(text: str | None) -> str | None:
    if not text:
        return None
    value = text.strip().replace(".", "")
    if len(value) != 8 or not value.isdigit():
        return None
    month, day = int(value[4:6]), int(value[6:])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return value


def normalize_time(text: str | None) -> str | None:
    """The moment a (possibly partial) TM value writes, or None if it is not a time."""
    if not text:
        return None
    value = text.strip()
    match = _TIME.fullmatch(value) or _LEGACY_TIME.fullmatch(value)
    if match is None:
        return None
    hour, minute, second, fraction = match.groups()
    if int(hour) > 23 or (minute and int(minute) > 59) or (second and int(second) > 60):
        return None
    return f"{hour}{minute or '00'}{second or '00'}.{(fraction or '').ljust(6, '0')}"


def normalize_datetime(text: str | None) -> str | None:
    """The moment a (possibly partial) DT value writes, in UTC if it has an offset from
    UTC; None if it is not a datetime."""
    if not text:
        return None
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        return None
    year_s, month_s, day_s, hour_s, minute_s, second_s, fraction_s, offset_s = match.groups()
    try:
        moment = dt.datetime(
            int(year_s), int(month_s) if month_s else 1, int(day_s) if day_s else 1,
            int(hour_s) if hour_s else 0, int(minute_s) if minute_s else 0,
            min(int(second_s), 59) if second_s else 0,
            int((fraction_s or "").ljust(6, "0")),
        )
    except ValueError:
        return None
    if offset_s:
        sign = -1 if offset_s[0] == "-" else 1
        offset = dt.timedelta(hours=int(offset_s[1:3]), minutes=int(offset_s[3:5])) * sign
        try:
            moment -= offset
        except OverflowError:
            return None
    return _format_datetime(moment)


def _format_datetime(value: dt.datetime) -> str:
    return f"{value.year:04d}{value:%m%d%H%M%S}.{value.microsecond:06d}"


def fold_name(text: str | None) -> str | None:
    """Case-insensitive form of a person name (Unicode case folding, not just ASCII)."""
    return text.casefold() if text else None


def person_name_text(value: Any) -> str:
    """A DICOM JSON PN value ({"Alphabetic": ..., ...}) back in its ``A=I=P`` form."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    groups = [value.get("Alphabetic", ""), value.get("Ideographic", ""), value.get("Phonetic", "")]
    return "=".join(groups).rstrip("=")


def integer_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None
