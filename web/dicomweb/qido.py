"""QIDO-RS (PS3.18 10.6): a search's query parameters as a C-FIND identifier.

A search is answered by the C-FIND machinery itself: the parameters become the
identifier a C-FIND SCU would send (matching keys with their values, return keys
empty, Study Root, UTF-8), the index plans and pages it with the same matching rules
(storage/query.py, storage/matching.py), and each response comes back as DICOM JSON.
What a search adds to C-FIND: searches for all series or instances without their
study (`QueryOptions.relational`), `includefield=all` (`return_stored`), limit and
offset, and the attributes PS3.18 Table 6.7.1-2 says every answer carries.

fuzzymatching: person names always match case-insensitively (as in C-FIND); there is
no other fuzzy matching, so `fuzzymatching=true` gets the Warning PS3.18 10.6.3.3.1
asks for. A parameter that names no attribute is refused (400).
"""

from __future__ import annotations

import attrs
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ...storage.dicom_json import SPECIFIC_CHARACTER_SET, make_element
from ...storage.levels import Level, key_level
from ...storage.query import INSTANCE_AVAILABILITY, QUERY_RETRIEVE_LEVEL, QueryOptions
from ..problems import bad_request

UTF8 = "ISO_IR 192"
CONTROL_PARAMETERS = frozenset({"limit", "offset", "fuzzymatching", "includefield"})


def _tags(keywords: str) -> tuple[int, ...]:
    return tuple(tag_for_keyword(k) for k in keywords.split())  # type: ignore[misc]


# PS3.18 Table 6.7.1-2a: what a search answers at each level whatever it asked for
# (RetrieveURL is added by the caller, InstanceAvailability is computed).
DEFAULT_KEYS: dict[Level, tuple[int, ...]] = {
    Level.STUDY: _tags(
        "StudyDate StudyTime AccessionNumber ModalitiesInStudy ReferringPhysicianName PatientName PatientID "
        "PatientBirthDate PatientSex StudyInstanceUID StudyID StudyDescription NumberOfStudyRelatedSeries "
        "NumberOfStudyRelatedInstances"
    ),
    Level.SERIES: _tags(
        "Modality SeriesDescription SeriesInstanceUID SeriesNumber NumberOfSeriesRelatedInstances "
        "PerformedProcedureStepStartDate PerformedProcedureStepStartTime"
    ),
    Level.IMAGE: _tags("SOPClassUID SOPInstanceUID InstanceNumber Rows Columns BitsAllocated NumberOfFrames"),
}
# An answer for series or instances of any study also says which study (PS3.18 Table 6.7.1-2).
UPPER_KEYS: dict[Level, tuple[int, ...]] = {
    Level.STUDY: (),
    Level.SERIES: DEFAULT_KEYS[Level.STUDY],
    Level.IMAGE: DEFAULT_KEYS[Level.STUDY] + DEFAULT_KEYS[Level.SERIES],
}


@attrs.frozen(kw_only=True)
class Search:
    level: Level
    identifier: Dataset
    options: QueryOptions
    limit: int
    offset: int
    warnings: tuple[str, ...] = ()


def attribute_path(name: str) -> list[int]:
    """`PatientName`, `00100010`, or a dotted path into sequences
    (`RequestAttributesSequence.ScheduledProcedureStepID`) as tags."""
    tags = []
    for part in name.split("."):
        tag = tag_for_keyword(part)
        if tag is None and len(part) == 8:
            try:
                tag = int(part, 16)
            except ValueError:
                tag = None
        if tag is None:
            raise bad_request("unknown attribute", f"{name[:80]!r} is neither a DICOM keyword nor a tag (ggggeeee)")
        tags.append(tag)
    return tags


def _vr(tag: int) -> str:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return vr.split(" or ")[0]


def _put(ds: Dataset, path: list[int], value: str) -> None:
    """Add a key (value "" for a return key) at `path`, creating sequence items on the way."""
    tag, rest = path[0], path[1:]
    if not rest:
        vr = _vr(tag)
        if vr == "SQ":
            if tag not in ds:
                ds.add(DataElement(tag, "SQ", Sequence([])))
            return
        ds.add(make_element(tag, vr, value or None))
        return
    if _vr(tag) != "SQ":
        raise bad_request("not a sequence", f"{keyword_for_tag(tag) or f'{tag:08X}'} has no items to look into")
    if tag not in ds or not ds[tag].value:
        ds.add(DataElement(tag, "SQ", Sequence([Dataset()])))
    _put(ds[tag].value[0], rest, value)


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _integer(params, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer", f"got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}", f"got {value}")
    return value


def build_search(level: Level, params: list[tuple[str, str]], scope: dict[int, str], max_results: int) -> Search:
    """The identifier for a search at `level` with query `params` (as received, repeated
    keys kept), within `scope` (UIDs from the path: study, series)."""
    ds = Dataset()
    ds.add(make_element(SPECIFIC_CHARACTER_SET, "CS", UTF8))
    ds.add(make_element(QUERY_RETRIEVE_LEVEL, "CS", level.name))
    ds.add(make_element(INSTANCE_AVAILABILITY, "CS", None))
    for tag in UPPER_KEYS[level] + DEFAULT_KEYS[level]:
        _put(ds, [tag], "")
    return_all = False
    warnings: list[str] = []
    single = {name: value for name, value in params}
    for name, value in params:
        if name == "includefield":
            for field in value.split(","):
                field = field.strip()
                if field == "all":
                    return_all = True
                elif field:
                    path = attribute_path(field)
                    if key_level(path[0], study_root=True) <= level and path[0] not in ds:
                        _put(ds, path, "")
            continue
        if name in CONTROL_PARAMETERS:
            continue
        path = attribute_path(name)
        if path[0] in (QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET):
            continue
        if len(path) == 1 and path[0] in ds and ds[path[0]].value not in (None, ""):
            # The same key twice: either value may match, as a list does in C-FIND.
            value = f"{_text(ds[path[0]].value)}\\{value}"
        if _vr(path[-1]) == "UI":
            value = value.replace(",", "\\")  # PS3.18 8.3.4.1: a UID list is comma-separated here
        _put(ds, path, value)
    for tag, uid in scope.items():
        _put(ds, [tag], uid)
    if single.get("fuzzymatching", "").lower() == "true":
        warnings.append(
            '299 triopacs: "The fuzzymatching parameter is not supported. Only literal matching has been performed '
            '(person names match case-insensitively)."'
        )
    return Search(
        level=level,
        identifier=ds,
        options=QueryOptions(relational=True, return_stored=return_all),
        limit=_integer(single, "limit", max_results, 1, max_results),
        offset=_integer(single, "offset", 0, 0, 1 << 31),
        warnings=tuple(warnings),
    )
