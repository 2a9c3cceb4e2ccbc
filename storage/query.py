"""C-FIND and C-MOVE/C-GET over the index: plans from identifiers, pages of responses.

``plan_find`` turns an identifier into a ``FindPlan`` (pure, raises ``QueryError`` with
the status to answer); ``find_page`` runs it one page at a time, a plain function of a
``sqlite3.Connection``, so the index actor crosses to its reader thread once per page
and pending responses stream as they are found.
Paging is keyset-based (``pk > cursor ORDER BY pk LIMIT n``): no statement stays open
between pages, so stores committed on the same connection meanwhile cannot disturb an
iteration, and a page is a short read.

Hierarchy (PS3.4 C.4.1.3.1.1, the baseline hierarchical search): below the top level
of the model, the identifier must carry the unique key of every level above the query
level, with single value matching (UIDs also as a list). Relational queries are not
supported and are refused. Keys of levels below the query level may be present only
empty (they are returned empty); keys of levels above are matched and returned (a
harmless extension: the data is in the same row set).

Keys with an index column are matched in SQL; every other key of an allowed level is
matched in Python against the stored level JSON, so any attribute can be matched and
returned.
"""

from __future__ import annotations

import contextlib
import enum
import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from .dicom_json import (
    SPECIFIC_CHARACTER_SET,
    JsonAttr,
    JsonDataset,
    dataset_from_json,
    character_set_of,
    element_from_json,
    python_encodings,
)
from .errors import QueryError
from .levels import COMPUTED_KEYS, QUERY_CONTROL_TAGS, Level, key_level
from .matching import (
    AnyOf,
    Condition,
    Equals,
    IdentifierKey,
    SequenceMatch,
    Universal,
    condition_for,
    identifier_keys,
    json_values,
)

UTF8 = "ISO_IR 192"

# Rows one C-FIND page may examine before it returns (with fewer matches, maybe none).
MAX_SCANNED_PER_PAGE = 1000


class InformationModel(enum.Enum):
    PATIENT_ROOT = "patient-root"
    STUDY_ROOT = "study-root"

    @property
    def levels(self) -> tuple[Level, ...]:
        if self is InformationModel.PATIENT_ROOT:
            return (Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE)
        return (Level.STUDY, Level.SERIES, Level.IMAGE)

    @classmethod
    def for_sop_class(cls, sop_class_uid: str) -> InformationModel:
        """The model of a Query/Retrieve SOP class (FIND, MOVE or GET)."""
        if sop_class_uid.startswith("1.2.840.10008.5.1.4.1.2.1."):
            return cls.PATIENT_ROOT
        if sop_class_uid.startswith("1.2.840.10008.5.1.4.1.2.2."):
            return cls.STUDY_ROOT
        raise QueryError(f"unsupported query/retrieve SOP class {sop_class_uid}")


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return tag


QUERY_RETRIEVE_LEVEL = _tag("QueryRetrieveLevel")
RETRIEVE_AE_TITLE = _tag("RetrieveAETitle")
INSTANCE_AVAILABILITY = _tag("InstanceAvailability")
PATIENT_ID = _tag("PatientID")
ISSUER_OF_PATIENT_ID = _tag("IssuerOfPatientID")
UNIQUE_KEYS = {
    Level.PATIENT: PATIENT_ID,
    Level.STUDY: _tag("StudyInstanceUID"),
    Level.SERIES: _tag("SeriesInstanceUID"),
    Level.IMAGE: _tag("SOPInstanceUID"),
}

ALIAS = {Level.PATIENT: "p", Level.STUDY: "st", Level.SERIES: "se", Level.IMAGE: "i"}
FROM = {
    Level.PATIENT: "patient p",
    Level.STUDY: "study st JOIN patient p ON p.pk = st.patient_pk",
    Level.SERIES: "series se JOIN study st ON st.pk = se.study_pk JOIN patient p ON p.pk = st.patient_pk",
    Level.IMAGE: "instance i JOIN series se ON se.pk = i.series_pk JOIN study st ON st.pk = se.study_pk "
    "JOIN patient p ON p.pk = st.patient_pk",
}


@attrs.frozen
class Column:
    """Where a key is matched in SQL: a column (its case-folded twin for PN), or for list
    keys computed from children an EXISTS template around a condition on the child."""

    expr: str
    folded: str | None = None
    template: str | None = None


COLUMNS: dict[int, Column] = {
    _tag("PatientID"): Column("p.patient_id"),
    _tag("IssuerOfPatientID"): Column("p.issuer_of_patient_id"),
    _tag("PatientName"): Column("p.patient_name", folded="p.patient_name_folded"),
    _tag("PatientBirthDate"): Column("p.patient_birth_date"),
    _tag("PatientSex"): Column("p.patient_sex"),
    _tag("StudyInstanceUID"): Column("st.study_instance_uid"),
    _tag("StudyDate"): Column("st.study_date"),
    _tag("StudyTime"): Column("st.study_time"),
    _tag("AccessionNumber"): Column("st.accession_number"),
    _tag("StudyID"): Column("st.study_id"),
    _tag("StudyDescription"): Column("st.study_description"),
    _tag("ReferringPhysicianName"): Column("st.referring_physician_name", folded="st.referring_physician_name_folded"),
    _tag("SeriesInstanceUID"): Column("se.series_instance_uid"),
    _tag("Modality"): Column("se.modality"),
    _tag("SeriesNumber"): Column("se.series_number"),
    _tag("SeriesDescription"): Column("se.series_description"),
    _tag("SeriesDate"): Column("se.series_date"),
    _tag("SeriesTime"): Column("se.series_time"),
    _tag("BodyPartExamined"): Column("se.body_part_examined"),
    _tag("SOPInstanceUID"): Column("i.sop_instance_uid"),
    _tag("SOPClassUID"): Column("i.sop_class_uid"),
    _tag("InstanceNumber"): Column("i.instance_number"),
    _tag("ModalitiesInStudy"): Column(
        "x.modality", template="EXISTS (SELECT 1 FROM series x WHERE x.study_pk = st.pk AND {})"
    ),
    _tag("SOPClassesInStudy"): Column(
        "z.sop_class_uid",
        template="EXISTS (SELECT 1 FROM instance z JOIN series x ON x.pk = z.series_pk "
        "WHERE x.study_pk = st.pk AND {})",
    ),
}

_INSTANCES_OF_PATIENT = (
    "instance z JOIN series x ON x.pk = z.series_pk JOIN study y ON y.pk = x.study_pk WHERE y.patient_pk = p.pk"
)
_INSTANCES_OF_STUDY = "instance z JOIN series x ON x.pk = z.series_pk WHERE x.study_pk = st.pk"
COMPUTED_SQL: dict[int, tuple[str, str]] = {  # tag -> (VR, scalar subquery)
    _tag("NumberOfPatientRelatedStudies"): ("IS", "(SELECT count(*) FROM study y WHERE y.patient_pk = p.pk)"),
    _tag("NumberOfPatientRelatedSeries"): (
        "IS", "(SELECT count(*) FROM series x JOIN study y ON y.pk = x.study_pk WHERE y.patient_pk = p.pk)"
    ),
    _tag("NumberOfPatientRelatedInstances"): ("IS", f"(SELECT count(*) FROM {_INSTANCES_OF_PATIENT})"),
    _tag("NumberOfStudyRelatedSeries"): ("IS", "(SELECT count(*) FROM series x WHERE x.study_pk = st.pk)"),
    _tag("NumberOfStudyRelatedInstances"): ("IS", f"(SELECT count(*) FROM {_INSTANCES_OF_STUDY})"),
    _tag("ModalitiesInStudy"): (
        "CS", "(SELECT group_concat(DISTINCT x.modality) FROM series x WHERE x.study_pk = st.pk)"
    ),
    _tag("SOPClassesInStudy"): ("UI", f"(SELECT group_concat(DISTINCT z.sop_class_uid) FROM {_INSTANCES_OF_STUDY})"),
    _tag("NumberOfSeriesRelatedInstances"): ("IS", "(SELECT count(*) FROM instance z WHERE z.series_pk = se.pk)"),
}
# Anything not on local disk answers NEARLINE: it can be retrieved, with a delay.
AVAILABILITY_SQL = {
    Level.PATIENT: f"(SELECT count(*) FROM {_INSTANCES_OF_PATIENT} AND z.tier <> 'local')",
    Level.STUDY: f"(SELECT count(*) FROM {_INSTANCES_OF_STUDY} AND z.tier <> 'local')",
    Level.SERIES: "(SELECT count(*) FROM instance z WHERE z.series_pk = se.pk AND z.tier <> 'local')",
    Level.IMAGE: "(i.tier <> 'local')",
}


@attrs.frozen(kw_only=True)
class QueryOptions:
    fold_person_names: bool = True  # PN matching case-insensitive (implementation-defined, PS3.4 C.2.2.2.4)
    # QIDO-RS searches all series or instances without naming their study: the unique
    # keys of the levels above may then be absent or matched like any other key.
    relational: bool = False
    # QIDO-RS includefield=all: every stored attribute of the matched levels comes back.
    return_stored: bool = False


@attrs.frozen(kw_only=True)
class FindPlan:
    """A parsed C-FIND identifier: SQL for the indexed keys, Python filters for the rest,
    and the keys to return in each response."""

    model: InformationModel
    level: Level
    where: str
    params: tuple[Any, ...]
    json_filters: tuple[tuple[str, Condition], ...]  # (tag hex, condition) tested on the stored JSON
    return_keys: tuple[IdentifierKey, ...]
    wants_availability: bool = False
    return_stored: bool = False


def _keyword(tag: int) -> str:
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _query_level(keys: Sequence[IdentifierKey], model: InformationModel) -> Level:
    for key in keys:
        if key.tag == QUERY_RETRIEVE_LEVEL:
            try:
                level = Level.from_dicom(key.text)
            except KeyError:
                raise QueryError(f"unknown Query/Retrieve Level {key.text[:16]!r}") from None
            if level not in model.levels:
                raise QueryError(f"level {level.name} is not in the {model.value} model")
            return level
    raise QueryError("missing Query/Retrieve Level")


def key_condition(key: IdentifierKey, options: QueryOptions) -> Condition:
    """The matching a key asks for; a sequence key's first item becomes sequence matching."""
    name = _keyword(key.tag)
    if key.vr == "SQ":
        item = key.items[0] if key.items else ()
        inner = tuple(
            (sub.tag_hex, key_condition(sub, options)) for sub in item if sub.tag >> 16 not in (0x0000, 0x0002)
        )
        inner = tuple((tag_hex, c) for tag_hex, c in inner if not isinstance(c, Universal))
        return SequenceMatch(inner) if inner else Universal()
    return condition_for(key.vr, key.text, name=name, fold_person_names=options.fold_person_names)


def _is_unique_match(condition: Condition) -> bool:
    if isinstance(condition, Equals):
        return True
    return isinstance(condition, AnyOf) and all(isinstance(c, Equals) for c in condition.conditions)


def _sql_for(tag: int, key: IdentifierKey, condition: Condition, options: QueryOptions) -> tuple[str, list[Any]] | None:
    column = COLUMNS[tag]
    expr = column.folded if (column.folded and key.vr == "PN" and options.fold_person_names) else column.expr
    fragment = condition.sql(expr)
    if fragment is None or column.template is None:
        return fragment
    return column.template.format(fragment[0]), fragment[1]


def plan_find(identifier: Dataset, model: InformationModel, options: QueryOptions = QueryOptions()) -> FindPlan:
    """Check and translate a C-FIND identifier; ``QueryError`` says why it is refused."""
    encodings = python_encodings(character_set_of(identifier))
    keys = identifier_keys(identifier, encodings)
    level = _query_level(keys, model)
    study_root = model is InformationModel.STUDY_ROOT
    where: list[str] = []
    params: list[Any] = []
    json_filters: list[tuple[str, Condition]] = []
    conditions: dict[int, Condition] = {}
    return_keys: list[IdentifierKey] = []
    wants_availability = False

    for key in keys:
        if key.tag == INSTANCE_AVAILABILITY:
            wants_availability = True
            continue
        if key.tag in QUERY_CONTROL_TAGS:
            continue
        condition = key_condition(key, options)
        conditions[key.tag] = condition
        universal = isinstance(condition, Universal)
        if key_level(key.tag, study_root=study_root) > level:
            if not universal:
                raise QueryError(f"{_keyword(key.tag)} is below the {level.name} level")
            return_keys.append(key)
            continue
        return_keys.append(key)
        if universal:
            continue
        if key.tag in COLUMNS:
            fragment = _sql_for(key.tag, key, condition, options)
            if fragment is not None:
                where.append(fragment[0])
                params.extend(fragment[1])
        elif key.tag in COMPUTED_KEYS:
            continue  # counts are return keys only
        else:
            json_filters.append((key.tag_hex, condition))  # no column: sequences, any other attribute

    if not options.relational:
        _check_hierarchy(model, level, conditions)
    return FindPlan(
        model=model,
        level=level,
        where=" AND ".join(where) or "1",
        params=tuple(params),
        json_filters=tuple(json_filters),
        return_keys=tuple(return_keys),
        wants_availability=wants_availability,
        return_stored=options.return_stored,
    )


def _check_hierarchy(model: InformationModel, level: Level, conditions: dict[int, Condition]) -> None:
    for upper in model.levels:
        if upper >= level:
            break
        unique = UNIQUE_KEYS[upper]
        condition = conditions.get(unique)
        if condition is None or not _is_unique_match(condition):
            raise QueryError(
                f"relational queries are not supported: {level.name} level needs a single {_keyword(unique)}"
            )


# -- running a plan in pages -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FindPage:
    responses: list[Dataset] | list[JsonDataset]  # DICOM JSON when find_page was asked as_json
    cursor: int | None  # give it back to get the next page; None when there is no more


def _select_sql(plan: FindPlan) -> tuple[str, list[int]]:
    alias = ALIAS[plan.level]
    columns = [f"{alias}.pk"]
    for level in Level:
        if level <= plan.level:
            columns += [f"{ALIAS[level]}.attributes", f"{ALIAS[level]}.specific_character_set"]
    # Counts of levels below the query level are not computed (the key comes back empty).
    computed = [
        key.tag
        for key in plan.return_keys
        if key.tag in COMPUTED_SQL and key_level(key.tag, study_root=False) <= plan.level
    ]
    columns += [COMPUTED_SQL[tag][1] for tag in computed]
    if plan.wants_availability:
        columns.append(AVAILABILITY_SQL[plan.level])
    sql = (
        f"SELECT {', '.join(columns)} FROM {FROM[plan.level]} "
        f"WHERE ({plan.where}) AND {alias}.pk > ? ORDER BY {alias}.pk LIMIT ?"
    )
    return sql, computed


def find_page(
    connection: sqlite3.Connection,
    plan: FindPlan,
    *,
    cursor: int | None = 0,
    size: int = 100,
    retrieve_ae_title: str | None = None,
    max_scanned: int = MAX_SCANNED_PER_PAGE,
    as_json: bool = False,
) -> FindPage:
    """Up to ``size`` responses after ``cursor`` (0 to start).

    Rows that the SQL cannot rule out are tested in Python (attributes without a column,
    sequences); a page stops after ``max_scanned`` rows even with fewer responses (maybe
    none), so one request never holds the index's thread for a whole table scan: the
    caller asks again from the cursor, and other requests get their turn in between.
    Every fetch of the page happens in this one call.
    """
    if cursor is None:
        return FindPage(responses=[], cursor=None)
    sql, computed = _select_sql(plan)
    responses: list[Dataset] = []
    position = cursor
    scanned = 0
    while len(responses) < size:
        if scanned >= max_scanned:
            return FindPage(responses=responses, cursor=position)
        want = size - len(responses)
        with _sqlite_refusals():
            rows = connection.execute(sql, (*plan.params, position, want)).fetchall()
        scanned += len(rows)
        for row in rows:
            position = row[0]
            response = _response(plan, row, computed, retrieve_ae_title, as_json)
            if response is not None:
                responses.append(response)
        if len(rows) < want:
            return FindPage(responses=responses, cursor=None)
    return FindPage(responses=responses, cursor=position)


@contextlib.contextmanager
def _sqlite_refusals() -> Iterator[None]:
    """A query SQLite refuses to run because of what the peer asked is the peer's error."""
    try:
        yield
    except sqlite3.OperationalError as error:
        if "pattern too complex" in str(error):
            raise QueryError("a wild card value is too long for the index to match") from None
        raise


def _response(
    plan: FindPlan, row: Sequence[Any], computed: list[int], retrieve_ae_title: str | None, as_json: bool = False
) -> Dataset | JsonDataset | None:
    """The response for a row, None when a Python-side filter rules it out: a dataset for
    C-FIND, or its DICOM JSON for QIDO-RS (the same attributes, without pydicom)."""
    merged: dict[str, Any] = {}
    charsets: set[str] = set()
    index = 1
    for level in Level:
        if level > plan.level:
            break
        merged.update(json.loads(row[index]))
        if row[index + 1]:
            charsets.add(row[index + 1])
        index += 2
    for tag_hex, condition in plan.json_filters:
        if not condition.test(json_values(merged.get(tag_hex))):
            return None
    computed_values = dict(zip(computed, row[index : index + len(computed)]))
    index += len(computed)

    out: JsonDataset = {}
    # One stored character set is returned as stored; levels stored under different ones
    # are all Unicode in the index, so UTF-8 can carry every value.
    if len(charsets) == 1:
        out[f"{SPECIFIC_CHARACTER_SET:08X}"] = {"vr": "CS", "Value": next(iter(charsets)).split("\\")}
    elif charsets:
        out[f"{SPECIFIC_CHARACTER_SET:08X}"] = {"vr": "CS", "Value": [UTF8]}
    out[f"{QUERY_RETRIEVE_LEVEL:08X}"] = {"vr": "CS", "Value": [plan.level.name]}
    if retrieve_ae_title:
        out[f"{RETRIEVE_AE_TITLE:08X}"] = {"vr": "AE", "Value": [retrieve_ae_title]}
    if plan.wants_availability:
        out[f"{INSTANCE_AVAILABILITY:08X}"] = {"vr": "CS", "Value": ["NEARLINE" if row[index] else "ONLINE"]}
    for key in plan.return_keys:
        if key.tag in computed_values:
            out[key.tag_hex] = _computed_attr(key.tag, computed_values[key.tag])
        elif key.tag_hex in merged:
            out[key.tag_hex] = stored_attr(key, merged[key.tag_hex])
        else:
            out[key.tag_hex] = {"vr": key.vr}
    if plan.return_stored:
        for tag_hex, attr in merged.items():
            out.setdefault(tag_hex, attr)
    return out if as_json else dataset_from_json(out)


def _computed_attr(tag: int, value: Any) -> JsonAttr:
    vr = COMPUTED_SQL[tag][0]
    if vr == "IS":
        return {"vr": vr, "Value": [int(value or 0)]}
    values = sorted(v for v in (value or "").split(",") if v)
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def stored_attr(key: IdentifierKey, attr: JsonAttr) -> JsonAttr:
    """A stored attribute as the key asks it returned (a sequence cut to the item's sub-keys)."""
    vr = attr.get("vr", key.vr)
    values = attr.get("Value")
    if vr == "SQ" and values and key.items and key.items[0]:
        values = [_prune_item(item, key.items[0]) for item in values]
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def stored_element(key: IdentifierKey, attr: JsonAttr) -> DataElement:
    return element_from_json(key.tag, stored_attr(key, attr))


def _prune_item(item: dict[str, Any], template: tuple[IdentifierKey, ...]) -> dict[str, Any]:
    """A stored sequence item cut down to the sub-keys the request's item asked for."""
    pruned: dict[str, Any] = {}
    for sub in template:
        attr = item.get(sub.tag_hex)
        if attr is None:
            pruned[sub.tag_hex] = {"vr": sub.vr}
        elif sub.vr == "SQ" and sub.items and sub.items[0] and attr.get("Value"):
            pruned[sub.tag_hex] = {"vr": "SQ", "Value": [_prune_item(i, sub.items[0]) for i in attr["Value"]]}
        else:
            pruned[sub.tag_hex] = attr
    return pruned


# -- C-MOVE / C-GET ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RetrievePlan:
    model: InformationModel
    level: Level
    where: str
    params: tuple[Any, ...]


@attrs.frozen(kw_only=True)
class RetrieveItem:
    sop_class_uid: str
    sop_instance_uid: str
    file_path: str
    transfer_syntax_uid: str
    file_size: int
    tier: str
    sha256: str = ""  # what a copy fetched from another tier is checked against
    study_instance_uid: str = ""
    series_instance_uid: str = ""


def plan_retrieve(identifier: Dataset, model: InformationModel) -> RetrievePlan:
    """A C-MOVE/C-GET identifier: the unique key of the level (single value or UID list) is
    required; unique keys of levels above, when present, must also hold; other keys are
    ignored (PS3.4 C.4.2.2.1 allows only unique keys)."""
    encodings = python_encodings(character_set_of(identifier))
    keys = {key.tag: key for key in identifier_keys(identifier, encodings)}
    level = _query_level(list(keys.values()), model)
    where: list[str] = []
    params: list[Any] = []
    for upper in model.levels:
        if upper > level:
            break
        tag = UNIQUE_KEYS[upper]
        key = keys.get(tag)
        condition = key_condition(key, QueryOptions()) if key is not None else Universal()
        if isinstance(condition, Universal):
            if upper == level:
                raise QueryError(f"a {level.name} retrieve needs {_keyword(tag)}")
            continue
        if not _is_unique_match(condition):
            raise QueryError(f"{_keyword(tag)} must be a single value or a list of UIDs")
        fragment = condition.sql(COLUMNS[tag].expr)
        assert fragment is not None
        where.append(fragment[0])
        params.extend(fragment[1])
    issuer = keys.get(ISSUER_OF_PATIENT_ID)
    if level is Level.PATIENT and issuer is not None and issuer.text.strip():
        where.append("p.issuer_of_patient_id = ?")
        params.append(issuer.text.strip())
    return RetrievePlan(model=model, level=level, where=" AND ".join(where), params=tuple(params))


def retrieve_items(connection: sqlite3.Connection, plan: RetrievePlan) -> list[RetrieveItem]:
    """Every instance under the entities the plan names, in study/series/instance order."""
    with _sqlite_refusals():
        rows = connection.execute(
            "SELECT i.sop_class_uid, i.sop_instance_uid, i.file_path, i.transfer_syntax_uid, i.file_size, i.tier, i.sha256, "
            "st.study_instance_uid, se.series_instance_uid "
            f"FROM {FROM[Level.IMAGE]} WHERE {plan.where} "
            "ORDER BY st.pk, se.series_number, se.pk, i.instance_number, i.pk",
            plan.params,
        ).fetchall()
    return [
        RetrieveItem(
            sop_class_uid=r[0], sop_instance_uid=r[1], file_path=r[2], transfer_syntax_uid=r[3],
            file_size=r[4], tier=r[5], sha256=r[6], study_instance_uid=r[7], series_instance_uid=r[8],
        )
        for r in rows
    ]


def stored_syntaxes(connection: sqlite3.Connection) -> dict[str, set[str]]:
    """Per SOP class, the transfer syntaxes its instances are stored in (one scan)."""
    held: dict[str, set[str]] = {}
    for sop_class, syntax in connection.execute("SELECT DISTINCT sop_class_uid, transfer_syntax_uid FROM instance"):
        held.setdefault(sop_class, set()).add(syntax)
    return held
