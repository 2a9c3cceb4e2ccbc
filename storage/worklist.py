"""Modality worklist items: what one is, read from a DICOM file or DICOM JSON.

An item is one Scheduled Procedure Step: the patient and the requested procedure at the
top level, and exactly one item in the Scheduled Procedure Step Sequence (0040,0100) -
modality, station, start date and time, performing physician (PS3.4 K.6, Table K.6-1
allows one). The RIS makes its Scheduled Procedure Step ID unique; that ID names the
item here, so adding an item whose SPS ID is known replaces it (an update from the RIS).

The whole item is kept as DICOM JSON (Unicode, whatever Specific Character Set it came
in, which is kept beside it for the responses); its matching keys are pulled out into
the comparable forms of normalize.py, for the index columns.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs
from pydicom import Dataset

from .attributes import first_text
from .dicom_json import JsonDataset, character_set_of, dataset_json, python_encodings
from .errors import StorageError
from .normalize import fold_name, normalize_date, normalize_time

SCHEDULED_PROCEDURE_STEP_SEQUENCE = "00400100"
SPS_ID = "00400009"
SPS_MODALITY = "00080060"
SPS_STATION_AE_TITLE = "00400001"
SPS_START_DATE = "00400002"
SPS_START_TIME = "00400003"
SPS_PERFORMING_PHYSICIAN = "00400006"
PATIENT_ID = "00100020"
PATIENT_NAME = "00100010"
ACCESSION_NUMBER = "00080050"
REQUESTED_PROCEDURE_ID = "00401001"
STUDY_INSTANCE_UID = "0020000D"
UTF8 = "ISO_IR 192"

MIDNIGHT = "000000.000000"


class InvalidWorklistItem(StorageError):
    """A dataset that cannot be a worklist item (the reason names what is missing)."""


@attrs.frozen(kw_only=True)
class WorklistItem:
    item_id: str  # the Scheduled Procedure Step ID
    attributes: JsonDataset
    specific_character_set: str = ""
    patient_id: str = ""
    patient_name: str = ""
    accession_number: str = ""
    requested_procedure_id: str = ""
    study_instance_uid: str = ""
    modality: str = ""
    station_ae_title: str = ""
    performing_physician: str = ""
    start_date: str = ""  # YYYYMMDD
    start_time: str | None = None  # HHMMSS.ffffff, None when the item gives none

    @property
    def start_at(self) -> str:
        """The combined start as normalize.py writes a DT (midnight when no time)."""
        return self.start_date + (self.start_time or MIDNIGHT)

    def scheduled_at(self) -> float:
        """The start in epoch seconds, read as the node's local time (what expiry counts from)."""
        moment = dt.datetime.strptime(self.start_at, "%Y%m%d%H%M%S.%f")
        return moment.timestamp()

    def columns(self) -> dict[str, Any]:
        """The index columns, by name (storage/schema.py, worklist_item)."""
        return {
            "item_id": self.item_id,
            "patient_id": self.patient_id or None,
            "patient_name_folded": fold_name(self.patient_name),
            "accession_number": self.accession_number or None,
            "requested_procedure_id": self.requested_procedure_id or None,
            "study_instance_uid": self.study_instance_uid or None,
            "modality": self.modality or None,
            "station_ae_title": self.station_ae_title or None,
            "performing_physician_folded": fold_name(self.performing_physician),
            "start_date": self.start_date,
            "start_time": self.start_time,
            "start_at": self.start_at,
            "scheduled_at": self.scheduled_at(),
            "specific_character_set": self.specific_character_set,
            "attributes": json.dumps(self.attributes, separators=(",", ":"), ensure_ascii=False),
        }


def item_from_dataset(ds: Dataset) -> WorklistItem:
    """The item a dataset describes (its file meta, private and binary attributes left out)."""
    charset = character_set_of(ds)
    try:
        encodings = python_encodings(charset)
    except (LookupError, ValueError) as error:
        raise InvalidWorklistItem(f"unknown Specific Character Set {charset!r}: {error}") from None
    return item_from_attributes(dataset_json(ds, encodings), charset)


def item_from_json(model: dict[str, Any]) -> WorklistItem:
    """The item a DICOM JSON object (PS3.18 F.2) describes. Its text is Unicode: without a
    Specific Character Set of its own, an item with non-ASCII text is answered in UTF-8."""
    if not isinstance(model, dict):
        raise InvalidWorklistItem("a DICOM JSON item must be an object of attributes")
    try:
        ds = Dataset.from_json(model)
    except Exception as error:  # pydicom raises many kinds on a malformed model
        raise InvalidWorklistItem(f"not a DICOM JSON dataset: {error}") from None
    item = item_from_dataset(ds)
    if not item.specific_character_set and not json.dumps(item.attributes).isascii():
        item = attrs.evolve(item, specific_character_set=UTF8)
    return item


def item_from_attributes(attributes: JsonDataset, specific_character_set: str = "") -> WorklistItem:
    steps = (attributes.get(SCHEDULED_PROCEDURE_STEP_SEQUENCE) or {}).get("Value") or []
    if len(steps) != 1 or not isinstance(steps[0], dict):
        raise InvalidWorklistItem(
            f"a worklist item needs exactly one Scheduled Procedure Step Sequence item, not {len(steps)}"
        )
    step = steps[0]
    item_id = first_text(step.get(SPS_ID)).strip()
    if not item_id:
        raise InvalidWorklistItem("the Scheduled Procedure Step has no Scheduled Procedure Step ID")
    modality = first_text(step.get(SPS_MODALITY)).strip()
    if not modality:
        raise InvalidWorklistItem(f"Scheduled Procedure Step {item_id} has no Modality")
    start_text = first_text(step.get(SPS_START_DATE))
    start_date = normalize_date(start_text)
    if start_date is None:
        raise InvalidWorklistItem(f"Scheduled Procedure Step {item_id} has no valid Start Date ({start_text!r})")
    time_text = first_text(step.get(SPS_START_TIME))
    start_time = normalize_time(time_text)
    if time_text and start_time is None:
        raise InvalidWorklistItem(f"Scheduled Procedure Step {item_id} has an invalid Start Time ({time_text!r})")
    return WorklistItem(
        item_id=item_id,
        attributes=attributes,
        specific_character_set=specific_character_set,
        patient_id=first_text(attributes.get(PATIENT_ID)).strip(),
        patient_name=first_text(attributes.get(PATIENT_NAME)),
        accession_number=first_text(attributes.get(ACCESSION_NUMBER)).strip(),
        requested_procedure_id=first_text(attributes.get(REQUESTED_PROCEDURE_ID)).strip(),
        study_instance_uid=first_text(attributes.get(STUDY_INSTANCE_UID)).strip(),
        modality=modality,
        station_ae_title=first_text(step.get(SPS_STATION_AE_TITLE)).strip(),
        performing_physician=first_text(step.get(SPS_PERFORMING_PHYSICIAN)),
        start_date=start_date,
        start_time=start_time,
    )
