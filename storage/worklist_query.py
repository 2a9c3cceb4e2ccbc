"""Modality Worklist C-FIND (PS3.4 K.6) over worklist items: plan, match, answer.

The identifier's keys become the same conditions as a Query/Retrieve C-FIND
(matching.py: single value, wild card, ranges, lists, empty value, universal, the PN
and character-set rules), with one addition the worklist needs: when the Scheduled
Procedure Step Start Date and Start Time are both given and one of them is a range,
they are one date-time range (PS3.4 C.2.2.2.5.1): "20240102-20240103" with "0800-1200"
runs from 2 January 08:00 to 3 January 12:00, not 08:00-12:00 on each day.

A plan has two parts that must agree: SQL over the item's index columns, which only
narrows the rows read (an item has one Scheduled Procedure Step, so the step's keys
have columns too), and the conditions themselves, tested on each row's stored item -
every one of them, so the columns can never decide a match on their own.

There is no Query/Retrieve Level: one is ignored if sent. Every key is returned as
requested (a sequence cut to the sub-keys of the request's item, or whole when the
request's sequence is empty), with the item's Specific Character Set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from pydicom import Dataset

from .dicom_json import SPECIFIC_CHARACTER_SET, JsonDataset, character_set_of, make_element, python_encodings
from .errors import QueryError
from .levels import QUERY_CONTROL_TAGS
from .matching import AnyOf, Between, Condition, Domain, EmptyValue, Equals, IdentifierKey, SequenceMatch, Universal, Wildcard, identifier_keys, json_values
from .normalize import normalize_date, normalize_time
from .query import QueryOptions, key_condition, stored_element
from .worklist import MIDNIGHT, SCHEDULED_PROCEDURE_STEP_SEQUENCE, SPS_START_DATE, SPS_START_TIME

END_OF_DAY = "235959.999999"

# Item columns (storage/schema.py, worklist_item) that narrow the rows read.
TOP_COLUMNS = {
    "00100020": "patient_id",
    "00100010": "patient_name_folded",
    "00080050": "accession_number",
    "00401001": "requested_procedure_id",
    "0020000D": "study_instance_uid",
}
STEP_COLUMNS = {
    "00080060": "modality",
    "00400001": "station_ae_title",
    "00400006": "performing_physician_folded",
    SPS_START_DATE: "start_date",
    SPS_START_TIME: "start_time",
}
# Conditions whose SQL form means the same as their test on the stored values.
_SQL_KINDS = (Equals, Wildcard, Between, AnyOf, EmptyValue)


@attrs.frozen
class StartRange:
    """Scheduled Procedure Step Start Date and Time as one date-time range, inclusive; a
    bound is None where the date range is open."""

    low: str | None
    high: str | None

    def sql(self, column: str) -> tuple[str, list[Any]] | None:
        return Between(self.low, self.high).sql(column)

    def test_step(self, step: JsonDataset) -> bool:
        dates = [normalize_date(_text(v)) for v in json_values(step.get(SPS_START_DATE))]
        times = [normalize_time(_text(v)) for v in json_values(step.get(SPS_START_TIME))] or [None]
        if not dates or dates[0] is None:
            return False
        start = dates[0] + (times[0] or MIDNIGHT)
        return (self.low is None or start >= self.low) and (self.high is None or start <= self.high)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@attrs.frozen
class StepMatch:
    """The Scheduled Procedure Step Sequence key: a stored step meets the other keys of
    the request's item and, when asked, the combined start range."""

    keys: SequenceMatch | None
    start: StartRange | None

    def test(self, values: Sequence[Any]) -> bool:
        for step in values:
            if not isinstance(step, dict):
                continue
            if self.keys is not None and not self.keys.test([step]):
                continue
            if self.start is not None and not self.start.test_step(step):
                continue
            return True
        return False


@attrs.frozen(kw_only=True)
class WorklistPlan:
    where: str  # over worklist_item's columns; "1" when nothing narrows
    params: tuple[Any, ...]
    filters: tuple[tuple[str, Condition | StepMatch], ...]  # (tag hex, condition) on the stored item
    return_keys: tuple[IdentifierKey, ...]

    def matches(self, attributes: JsonDataset) -> bool:
        return all(condition.test(json_values(attributes.get(tag_hex))) for tag_hex, condition in self.filters)


def plan_worklist(identifier: Dataset, options: QueryOptions = QueryOptions()) -> WorklistPlan:
    """Check and translate a worklist identifier; ``QueryError`` (A900) says why it is refused."""
    keys = identifier_keys(identifier, python_encodings(character_set_of(identifier)))
    where: list[str] = []
    params: list[Any] = []
    filters: list[tuple[str, Condition | StepMatch]] = []
    return_keys: list[IdentifierKey] = []
    for key in keys:
        if key.tag in QUERY_CONTROL_TAGS:
            continue
        return_keys.append(key)
        if key.tag_hex == SCHEDULED_PROCEDURE_STEP_SEQUENCE:
            step = _step_match(key, options, where, params)
            if step is not None:
                filters.append((key.tag_hex, step))
            continue
        condition = key_condition(key, options)
        if isinstance(condition, Universal):
            continue
        filters.append((key.tag_hex, condition))
        _narrow(TOP_COLUMNS.get(key.tag_hex), condition, where, params)
    return WorklistPlan(
        where=" AND ".join(where) or "1", params=tuple(params), filters=tuple(filters), return_keys=tuple(return_keys)
    )


def _step_match(key: IdentifierKey, options: QueryOptions, where: list[str], params: list[Any]) -> StepMatch | None:
    item = key.items[0] if key.items else ()
    conditions = {sub.tag_hex: key_condition(sub, options) for sub in item if sub.tag >> 16 not in (0x0000, 0x0002)}
    conditions = {tag_hex: c for tag_hex, c in conditions.items() if not isinstance(c, Universal)}
    start = _combined_start(conditions.get(SPS_START_DATE), conditions.get(SPS_START_TIME))
    if start is not None:
        del conditions[SPS_START_DATE], conditions[SPS_START_TIME]
        _narrow("start_at", start, where, params)
    for tag_hex, condition in conditions.items():
        _narrow(STEP_COLUMNS.get(tag_hex), condition, where, params)
    keys = SequenceMatch(tuple(conditions.items())) if conditions else None
    if keys is None and start is None:
        return None
    return StepMatch(keys=keys, start=start)


def _combined_start(date: Condition | None, time: Condition | None) -> StartRange | None:
    """Date and time together, one of them a range: the date-time range they make."""
    if date is None or time is None or not (isinstance(date, Between) or isinstance(time, Between)):
        return None
    date_low, date_high = _bounds(date, "date")
    time_low, time_high = _bounds(time, "time")
    return StartRange(
        low=None if date_low is None else date_low + (time_low or MIDNIGHT),
        high=None if date_high is None else date_high + (time_high or END_OF_DAY),
    )


def _bounds(condition: Condition, what: str) -> tuple[str | None, str | None]:
    if isinstance(condition, Between):
        return condition.low, condition.high
    if isinstance(condition, Equals) and condition.domain in (Domain.DATE, Domain.TIME):
        return condition.value, condition.value
    raise QueryError(f"the Scheduled Procedure Step Start {what} must be a single value or a range with the other's range")


def _narrow(column: str | None, condition: Condition | StartRange, where: list[str], params: list[Any]) -> None:
    if column is None or not isinstance(condition, (*_SQL_KINDS, StartRange)):
        return
    if column.endswith("_folded") and getattr(condition, "domain", Domain.FOLDED_NAME) is not Domain.FOLDED_NAME:
        return  # a case-sensitive PN condition says nothing about the folded column
    fragment = condition.sql(column)
    if fragment is not None:
        where.append(fragment[0])
        params.extend(fragment[1])


def worklist_response(plan: WorklistPlan, attributes: JsonDataset, specific_character_set: str) -> Dataset:
    """The response to a matched item: the keys asked for, in the item's character set."""
    ds = Dataset()
    if specific_character_set:
        terms = specific_character_set.split("\\")
        ds.add(make_element(SPECIFIC_CHARACTER_SET, "CS", terms if len(terms) > 1 else terms[0]))
    for key in plan.return_keys:
        if key.tag_hex in attributes:
            ds.add(stored_element(key, attributes[key.tag_hex]))
        else:
            ds.add(make_element(key.tag, key.vr, [] if key.vr == "SQ" else None))
    return ds
