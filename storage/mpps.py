"""The rules of a Modality Performed Procedure Step (PS3.4 F.7): pure, no I/O.

    N-CREATE ──► IN PROGRESS ──N-SET──► IN PROGRESS (attributes updated)
                      │
                      ├──N-SET status COMPLETED────► COMPLETED     (final)
                      └──N-SET status DISCONTINUED─► DISCONTINUED  (final)

- N-CREATE must carry Performed Procedure Step Status "IN PROGRESS" and the attributes
  Table F.7.2-1 makes Type 1 at creation (below, `REQUIRED_AT_CREATION`); a missing one
  is 0120 Missing attribute, one without a value 0121 Missing attribute value, another
  status 0106 Invalid attribute value. Type 2 attributes may be absent: modalities often
  leave them out, and nothing here depends on them.
- N-SET on a final step is refused with 0110 Processing failure and Error ID A710 ("may
  no longer be updated", F.7.2.2).
- N-SET may not touch what Table F.7.2-1 marks "Not allowed" for N-SET (the patient, the
  scheduled step references, the performed step's identity, station, start and
  modality): 0106 Invalid attribute value naming them.
- A status other than the three is 0106; reaching COMPLETED or DISCONTINUED needs the
  Performed Procedure Step End Date and End Time to have values by then (given now or
  before), else 0121 Missing attribute value naming them.
- An N-SET attribute without a value empties it; with values it replaces the stored one
  (sequences whole, as PS3.4 F.7.2.2 has an N-SET replace a sequence).

Attributes are DICOM JSON (tag hex -> {"vr", "Value"}), as the index keeps them.
"""

from __future__ import annotations

import enum

import attrs

from ..protocol.status import MPPS_MAY_NO_LONGER_BE_UPDATED, Status
from .attributes import first_text
from .dicom_json import JsonDataset


class StepStatus(str, enum.Enum):
    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"

    @property
    def is_final(self) -> bool:
        return self is not StepStatus.IN_PROGRESS


PPS_STATUS = "00400252"
PPS_END_DATE = "00400250"
PPS_END_TIME = "00400251"
SCHEDULED_STEP_ATTRIBUTES_SEQUENCE = "00400270"
STUDY_INSTANCE_UID = "0020000D"
SCHEDULED_PROCEDURE_STEP_ID = "00400009"

# Type 1 at N-CREATE (PS3.4 Table F.7.2-1).
REQUIRED_AT_CREATION = {
    SCHEDULED_STEP_ATTRIBUTES_SEQUENCE: "Scheduled Step Attributes Sequence",
    "00400253": "Performed Procedure Step ID",
    "00400241": "Performed Station AE Title",
    "00400244": "Performed Procedure Step Start Date",
    "00400245": "Performed Procedure Step Start Time",
    PPS_STATUS: "Performed Procedure Step Status",
    "00080060": "Modality",
}

# "Not allowed" as N-SET attributes (PS3.4 Table F.7.2-1): fixed once the step is created.
SET_ONLY_AT_CREATION = {
    SCHEDULED_STEP_ATTRIBUTES_SEQUENCE: "Scheduled Step Attributes Sequence",
    "00100010": "Patient's Name",
    "00100020": "Patient ID",
    "00100021": "Issuer of Patient ID",
    "00100030": "Patient's Birth Date",
    "00100040": "Patient's Sex",
    "00081120": "Referenced Patient Sequence",
    "00400253": "Performed Procedure Step ID",
    "00400241": "Performed Station AE Title",
    "00400242": "Performed Station Name",
    "00400243": "Performed Location",
    "00400244": "Performed Procedure Step Start Date",
    "00400245": "Performed Procedure Step Start Time",
    "00080060": "Modality",
    "00200010": "Study ID",
}


@attrs.frozen
class Refusal:
    """Why a request is refused: the DIMSE status, an Error Comment, the attributes at
    fault (Attribute Identifier List) and an Error ID where PS3.4 names one."""

    status: int
    comment: str
    tags: tuple[int, ...] = ()
    error_id: int | None = None


@attrs.frozen
class Update:
    """An accepted N-SET: the step's attributes and status after it."""

    attributes: JsonDataset
    status: StepStatus
    previous: StepStatus

    @property
    def transition(self) -> StepStatus | None:
        """The final status this N-SET reached, None when the step stays in progress."""
        return self.status if self.status is not self.previous else None


def _has_value(attr: dict | None) -> bool:
    return bool(attr) and any(v not in (None, "") for v in attr.get("Value") or ())


def _tags(keys: list[str]) -> tuple[int, ...]:
    return tuple(int(key, 16) for key in keys)


def status_of(value: str) -> StepStatus | None:
    try:
        return StepStatus(value.strip())
    except ValueError:
        return None


def check_creation(attributes: JsonDataset) -> Refusal | None:
    """None if an N-CREATE's attribute list may start a step, else why not."""
    missing = [tag for tag in REQUIRED_AT_CREATION if tag not in attributes]
    if missing:
        names = ", ".join(REQUIRED_AT_CREATION[tag] for tag in missing)
        return Refusal(Status.MISSING_ATTRIBUTE, f"missing {names}", _tags(missing))
    empty = [tag for tag in REQUIRED_AT_CREATION if not _has_value(attributes[tag])]
    if empty:
        names = ", ".join(REQUIRED_AT_CREATION[tag] for tag in empty)
        return Refusal(Status.MISSING_ATTRIBUTE_VALUE, f"no value: {names}", _tags(empty))
    status = status_of(first_text(attributes[PPS_STATUS]))
    if status is not StepStatus.IN_PROGRESS:
        return Refusal(
            Status.INVALID_ATTRIBUTE_VALUE, "a step is created IN PROGRESS", _tags([PPS_STATUS])
        )
    steps = attributes[SCHEDULED_STEP_ATTRIBUTES_SEQUENCE].get("Value") or []
    if not all(isinstance(step, dict) and _has_value(step.get(STUDY_INSTANCE_UID)) for step in steps):
        return Refusal(
            Status.MISSING_ATTRIBUTE_VALUE,
            "each Scheduled Step Attributes item needs a Study Instance UID",
            _tags([SCHEDULED_STEP_ATTRIBUTES_SEQUENCE]),
        )
    return None


def apply_set(current: JsonDataset, status: StepStatus, changes: JsonDataset) -> Update | Refusal:
    """The step after an N-SET of `changes`, or why the N-SET is refused."""
    if status.is_final:
        return Refusal(
            Status.PROCESSING_FAILURE,
            f"the step is {status.value}: it may no longer be updated",
            error_id=MPPS_MAY_NO_LONGER_BE_UPDATED,
        )
    fixed = [tag for tag in changes if tag in SET_ONLY_AT_CREATION]
    if fixed:
        names = ", ".join(SET_ONLY_AT_CREATION[tag] for tag in fixed)
        return Refusal(Status.INVALID_ATTRIBUTE_VALUE, f"only N-CREATE may set {names}", _tags(fixed))
    new_status = status
    if PPS_STATUS in changes:
        new_status = status_of(first_text(changes[PPS_STATUS]))  # type: ignore[assignment]
        if new_status is None:
            return Refusal(
                Status.INVALID_ATTRIBUTE_VALUE,
                "Performed Procedure Step Status must be IN PROGRESS, COMPLETED or DISCONTINUED",
                _tags([PPS_STATUS]),
            )
    merged = {**current, **changes}
    if new_status.is_final:
        unset = [tag for tag in (PPS_END_DATE, PPS_END_TIME) if not _has_value(merged.get(tag))]
        if unset:
            return Refusal(
                Status.MISSING_ATTRIBUTE_VALUE,
                f"{new_status.value} needs Performed Procedure Step End Date and Time",
                _tags(unset),
            )
    return Update(attributes=merged, status=new_status, previous=status)


def scheduled_step_ids(attributes: JsonDataset) -> list[str]:
    """The Scheduled Procedure Step IDs a step performs (its worklist items)."""
    steps = (attributes.get(SCHEDULED_STEP_ATTRIBUTES_SEQUENCE) or {}).get("Value") or []
    ids = [first_text(step.get(SCHEDULED_PROCEDURE_STEP_ID)).strip() for step in steps if isinstance(step, dict)]
    return [step_id for step_id in ids if step_id]
