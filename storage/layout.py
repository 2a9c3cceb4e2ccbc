"""Where an instance's file lives under a storage root.

Two layouts, chosen by `[storage] layout` in the configuration (config.py):

- UID  (default): ``{root}/{StudyUID}/{SeriesUID}/{SOPUID}.dcm``
- DATE:           ``{root}/{YYYY}/{MM}/{DD}/{SOPUID}.dcm``, the date being the
  StudyDate when it is a real calendar date, else the day passed in as ``today``.

Every UID is checked against the UID grammar before it becomes a path component:
digits and dots only, so no separator, no ``..``, no NUL can reach the filesystem.
The result is then proved, lexically, to stay under the root (defence in depth; no
filesystem access, so it is cheap on the hot path).
"""

from __future__ import annotations

import datetime as dt
import enum
import os
from pathlib import Path

from triopacs.protocol.uid import is_valid_uid

from .errors import InvalidUID, UnsafePath

SUFFIX = ".dcm"


class Layout(enum.Enum):
    UID = "uid"
    DATE = "date"


def checked_uid(attribute: str, value: object) -> str:
    """``value`` if it is a well-formed UID, else ``InvalidUID`` naming ``attribute``."""
    if not isinstance(value, str) or not value or not is_valid_uid(value):
        raise InvalidUID(attribute, value)
    return value


def uid_layout_path(root: Path, *, study_uid: str, series_uid: str, sop_instance_uid: str) -> Path:
    relative = Path(
        checked_uid("StudyInstanceUID", study_uid),
        checked_uid("SeriesInstanceUID", series_uid),
        checked_uid("SOPInstanceUID", sop_instance_uid) + SUFFIX,
    )
    return confined(root, relative)


def date_layout_path(root: Path, *, sop_instance_uid: str, study_date: str | None, today: dt.date) -> Path:
    day = parse_study_date(study_date) or today
    relative = Path(
        f"{day.year:04d}",
        f"{day.month:02d}",
        f"{day.day:02d}",
        checked_uid("SOPInstanceUID", sop_instance_uid) + SUFFIX,
    )
    return confined(root, relative)


def instance_path(
    root: Path,
    layout: Layout,
    *,
    study_uid: str,
    series_uid: str,
    sop_instance_uid: str,
    study_date: str | None,
    today: dt.date,
) -> Path:
    """The destination of one instance. All three UIDs are validated in either layout, so
    a dataset with a bad Study/Series UID is refused the same way whatever the layout."""
    checked_uid("StudyInstanceUID", study_uid)
    checked_uid("SeriesInstanceUID", series_uid)
    if layout is Layout.UID:
        return uid_layout_path(root, study_uid=study_uid, series_uid=series_uid, sop_instance_uid=sop_instance_uid)
    return date_layout_path(root, sop_instance_uid=sop_instance_uid, study_date=study_date, today=today)


def parse_study_date(value: str | None) -> dt.date | None:
    """A DA value (``YYYYMMDD``, or the old ``YYYY.MM.DD``) as a date, None if not a real date."""
    if not value:
        return None
    text = value.strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def confined(root: Path, relative: Path) -> Path:
    """``root / relative``, refusing anything that would not stay strictly under root."""
    if relative.is_absolute():
        raise UnsafePath(f"absolute component in {relative}")
    base = os.path.normpath(os.fspath(root))
    candidate = os.path.normpath(os.path.join(base, os.fspath(relative)))
    if os.path.commonpath([base, candidate]) != base or candidate == base:
        raise UnsafePath(f"{relative} escapes {root}")
    return Path(candidate)
