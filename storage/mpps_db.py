"""Modality Performed Procedure Steps in the index database, under the rules of mpps.py.

Plain functions of a ``sqlite3.Connection``, each meant to run inside one transaction
(the index actor's writer): the rule check and the write it allows cannot be split by
another N-SET. A step links to the worklist through the Scheduled Procedure Step IDs of
its Scheduled Step Attributes Sequence: creating it puts those items in progress,
completing it marks them done, discontinuing it schedules them again.
"""

from __future__ import annotations

import json
import sqlite3

import attrs

from ..protocol.status import Status
from .dicom_json import JsonDataset
from .mpps import Refusal, StepStatus, apply_set, check_creation, scheduled_step_ids
from .worklist_db import DONE, IN_PROGRESS, SCHEDULED, set_status


@attrs.frozen(kw_only=True)
class PerformedStep:
    sop_instance_uid: str
    status: StepStatus
    attributes: JsonDataset
    specific_character_set: str = ""
    creator_ae_title: str = ""
    worklist_items: tuple[str, ...] = ()  # the worklist items this change moved


class StepRefused(Exception):
    """An N-CREATE or N-SET the rules refuse; `refusal` has the status to answer."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.comment)
        self.refusal = refusal


def _dump(attributes: JsonDataset) -> str:
    return json.dumps(attributes, separators=(",", ":"), ensure_ascii=False)


def create_step(
    connection: sqlite3.Connection,
    sop_instance_uid: str,
    attributes: JsonDataset,
    *,
    specific_character_set: str,
    creator_ae_title: str,
    now: float,
) -> PerformedStep:
    refusal = check_creation(attributes)
    if refusal is not None:
        raise StepRefused(refusal)
    if connection.execute("SELECT 1 FROM mpps WHERE sop_instance_uid = ?", (sop_instance_uid,)).fetchone():
        raise StepRefused(Refusal(Status.DUPLICATE_SOP_INSTANCE, f"step {sop_instance_uid} exists already"))
    connection.execute(
        "INSERT INTO mpps (sop_instance_uid, status, creator_ae_title, specific_character_set, attributes, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (sop_instance_uid, StepStatus.IN_PROGRESS.value, creator_ae_title, specific_character_set, _dump(attributes), now, now),
    )
    moved = set_status(connection, scheduled_step_ids(attributes), IN_PROGRESS)
    return PerformedStep(
        sop_instance_uid=sop_instance_uid,
        status=StepStatus.IN_PROGRESS,
        attributes=attributes,
        specific_character_set=specific_character_set,
        creator_ae_title=creator_ae_title,
        worklist_items=tuple(moved),
    )


def update_step(
    connection: sqlite3.Connection,
    sop_instance_uid: str,
    changes: JsonDataset,
    *,
    specific_character_set: str,
    now: float,
) -> PerformedStep:
    current = get_step(connection, sop_instance_uid)
    if current is None:
        raise StepRefused(Refusal(Status.NO_SUCH_SOP_INSTANCE, f"no step {sop_instance_uid}"))
    outcome = apply_set(current.attributes, current.status, changes)
    if isinstance(outcome, Refusal):
        raise StepRefused(outcome)
    charset = specific_character_set or current.specific_character_set
    connection.execute(
        "UPDATE mpps SET status = ?, specific_character_set = ?, attributes = ?, updated_at = ? WHERE sop_instance_uid = ?",
        (outcome.status.value, charset, _dump(outcome.attributes), now, sop_instance_uid),
    )
    moved: list[str] = []
    if outcome.transition is StepStatus.COMPLETED:
        moved = set_status(connection, scheduled_step_ids(outcome.attributes), DONE)
    elif outcome.transition is StepStatus.DISCONTINUED:
        moved = set_status(connection, scheduled_step_ids(outcome.attributes), SCHEDULED)
    return attrs.evolve(
        current, status=outcome.status, attributes=outcome.attributes, specific_character_set=charset, worklist_items=tuple(moved)
    )


def get_step(connection: sqlite3.Connection, sop_instance_uid: str) -> PerformedStep | None:
    row = connection.execute(
        "SELECT status, creator_ae_title, specific_character_set, attributes FROM mpps WHERE sop_instance_uid = ?",
        (sop_instance_uid,),
    ).fetchone()
    if row is None:
        return None
    status, creator, charset, attributes = row
    return PerformedStep(
        sop_instance_uid=sop_instance_uid,
        status=StepStatus(status),
        attributes=json.loads(attributes),
        specific_character_set=charset,
        creator_ae_title=creator,
    )
