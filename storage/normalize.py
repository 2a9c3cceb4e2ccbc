"""Comparable forms of DICOM values, shared by the index columns and the C-FIND matcher.

Both sides must normalize the same way or a stored value and a query value that mean
the same thing would not compare equal, hence one module for both.

- DA  -> ``YYYYMMDD`` (the old ``YYYY.MM.DD`` accepted)
- TM  -> ``HHMMSS.ffffff``; a partial time is the span it denotes (``1030`` is
  10:30:00.000000 to 10:30:59.999999), so it has a low and a high bound
- DT  -> ``YYYYMMDDHHMMSS.ffffff``, likewise a span; shifted to UTC when the value
  carries an offset, left as written when it does not
- PN  -> case folded when case-insensitive matching is asked for

Every string compares lexicographically in the same order as the moments it denotes.
"""

from __future__ import annotations

import calendar
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


def time_bounds(text: str | None) -> tuple[str, str] | None:
    """The first and last instant a (possibly partial) TM value denotes."""
    if not text:
        return None
    value = text.strip()
    match = _TIME.fullmatch(value) or _LEGACY_TIME.fullmatch(value)
    if match is None:
        return None
    hour, minute, second, fraction = match.groups()
    if int(hour) > 23 or (minute and int(minute) > 59) or (second and int(second) > 60):
        return None
    low = f"{hour}{minute or '00'}{second or '00'}.{(fraction or '').ljust(6, '0')}"
    high = f"{hour}{minute or '59'}{second or '59'}.{(fraction or '').ljust(6, '9')}"
    return low, high


def normalize_time(text: str | None) -> str | None:
    bounds = time_bounds(text)
    return bounds[0] if bounds else None


def datetime_bounds(text: str | None) -> tuple[str, str] | None:
    """The first and last instant a (possibly partial) DT value denotes, in UTC if it has
    an offset from UTC."""
    if not text:
        return None
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        return None
    year_s, month_s, day_s, hour_s, minute_s, second_s, fraction_s, offset_s = match.groups()
    year = int(year_s)
    try:
        month_low = int(month_s) if month_s else 1
        month_high = int(month_s) if month_s else 12
        day_low = int(day_s) if day_s else 1
        day_high = int(day_s) if day_s else calendar.monthrange(year, month_high)[1]
        low = dt.datetime(
            year, month_low, day_low,
            int(hour_s) if hour_s else 0, int(minute_s) if minute_s else 0,
            min(int(second_s), 59) if second_s else 0,
            int((fraction_s or "").ljust(6, "0")),
        )
        high = dt.datetime(
            year, month_high, day_high,
            int(hour_s) if hour_s else 23, int(minute_s) if minute_s else 59,
            min(int(second_s), 59) if second_s else 59,
            int((fraction_s or "").ljust(6, "9")),
        )
    except ValueError:
        return None
    if offset_s:
        sign = -1 if offset_s[0] == "-" else 1
        offset = dt.timedelta(hours=int(offset_s[1:3]), minutes=int(offset_s[3:5])) * sign
        try:
            low, high = low - offset, high - offset
        except OverflowError:
            return None
    return _format_datetime(low), _format_datetime(high)


def _format_datetime(value: dt.datetime) -> str:
    return f"{value.year:04d}{value:%m%d%H%M%S}.{value.microsecond:06d}"


def normalize_datetime(text: str | None) -> str | None:
    bounds = datetime_bounds(text)
    return bounds[0] if bounds else None


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
