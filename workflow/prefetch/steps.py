"""A worklist item as the prefetcher sees it: whom to prefetch for, and the modality and
body part about to be examined (for the preferences)."""

from __future__ import annotations

from ...storage.attributes import first_text
from ...storage.errors import StorageError
from ...storage.worklist import SCHEDULED_PROCEDURE_STEP_SEQUENCE, item_from_attributes
from .criteria import ScheduledStep

BODY_PART_EXAMINED = "00180015"


def step_from_item(attributes: dict) -> ScheduledStep | None:
    """The step of a worklist item (DICOM JSON); None when it names no patient."""
    try:
        item = item_from_attributes(attributes)
    except StorageError:
        return None
    if not item.patient_id:
        return None
    steps = (attributes.get(SCHEDULED_PROCEDURE_STEP_SEQUENCE) or {}).get("Value") or [{}]
    body_part = first_text(steps[0].get(BODY_PART_EXAMINED)) or first_text(attributes.get(BODY_PART_EXAMINED))
    return ScheduledStep(
        patient_id=item.patient_id, modality=item.modality.upper(), body_part=body_part.strip().upper(),
        study_instance_uid=item.study_instance_uid,
    )


def unique_steps(steps) -> list[ScheduledStep]:
    """One step per patient (the first of each), in order: a patient is queued once."""
    seen: dict[str, ScheduledStep] = {}
    for step in steps:
        if step is not None and step.patient_id not in seen:
            seen[step.patient_id] = step
    return list(seen.values())
