"""Worklist items in the index database: add, remove, list, answer queries, expire.

Plain functions of a ``sqlite3.Connection``; the caller decides the transaction (the
index actor runs the writes in one, see storage/sql.py). Times are epoch seconds given
by the caller, so tests choose the clock.

Expiry: an item is past its time once `expire_after` seconds have gone by since its
scheduled start; from then on queries and listings no longer see it, and the next
`add_items` or `expire_items` (the node's worklist-expiry task) deletes it. Status: 'scheduled', 'in-progress' once an MPPS for its step is created,
'done' once that MPPS is COMPLETED (no longer offered to modalities), back to
'scheduled' when it is DISCONTINUED (the step is still to be done).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence

import attrs
from pydicom import Dataset

from .errors import QueryError
from .sql import select_in
from .worklist import WorklistItem
from .worklist_query import WorklistPlan, worklist_response

SCHEDULED = "scheduled"
IN_PROGRESS = "in-progress"
DONE = "done"
STATUSES = (SCHEDULED, IN_PROGRESS, DONE)
OFFERED = (SCHEDULED, IN_PROGRESS)  # what modalities are answered with

_COLUMNS = (
    "item_id", "patient_id", "patient_name_folded", "accession_number", "requested_procedure_id",
    "study_instance_uid", "modality", "station_ae_title", "performing_physician_folded", "start_date",
    "start_time", "start_at", "scheduled_at", "specific_character_set", "attributes",
)
_UPSERT = f"""
INSERT INTO worklist_item ({", ".join(_COLUMNS)}, status, added_at, updated_at)
VALUES ({", ".join(":" + c for c in _COLUMNS)}, '{SCHEDULED}', :now, :now)
ON CONFLICT (item_id) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "item_id")},
    status = '{SCHEDULED}', updated_at = excluded.updated_at
"""


@attrs.frozen(kw_only=True)
class ItemAdded:
    item_id: str
    replaced: bool  # an item with this Scheduled Procedure Step ID was there already


@attrs.frozen(kw_only=True)
class WorklistEntry:
    """One item as listed (for people and the CLI)."""

    item_id: str
    status: str
    patient_id: str
    patient_name: str
    accession_number: str
    modality: str
    station_ae_title: str
    start: str  # YYYYMMDDHHMMSS
    expired: bool


@attrs.frozen(kw_only=True)
class WorklistMatch:
    """A matched item: what was answered, and the whole item (for the prefetcher)."""

    item_id: str
    response: Dataset
    attributes: dict


@attrs.frozen(kw_only=True)
class WorklistPage:
    matches: tuple[WorklistMatch, ...]
    cursor: int | None  # None: no more


def add_items(connection: sqlite3.Connection, items: Sequence[WorklistItem], now: float, expire_after: float) -> list[ItemAdded]:
    """Add or replace items (by Scheduled Procedure Step ID); a replaced item is scheduled
    again. Expired items are deleted first."""
    purge_expired(connection, now, expire_after)
    known = {row[0] for row in select_in(connection, "SELECT item_id FROM worklist_item WHERE item_id IN ({})", [i.item_id for i in items])}
    connection.executemany(_UPSERT, [{**item.columns(), "now": now} for item in items])
    return [ItemAdded(item_id=item.item_id, replaced=item.item_id in known) for item in items]


def remove_item(connection: sqlite3.Connection, item_id: str) -> bool:
    return connection.execute("DELETE FROM worklist_item WHERE item_id = ?", (item_id,)).rowcount > 0


def purge_expired(connection: sqlite3.Connection, now: float, expire_after: float) -> int:
    return connection.execute("DELETE FROM worklist_item WHERE scheduled_at < ?", (now - expire_after,)).rowcount


def expire_items(connection: sqlite3.Connection, now: float, expire_after: float) -> list[str]:
    """Delete the expired items; their ids."""
    rows = connection.execute(
        "DELETE FROM worklist_item WHERE scheduled_at < ? RETURNING item_id", (now - expire_after,)
    ).fetchall()
    return sorted(row[0] for row in rows)


def set_status(connection: sqlite3.Connection, item_ids: Iterable[str], status: str) -> list[str]:
    """Set the status of the items named that exist; the IDs changed."""
    assert status in STATUSES
    ids = list(dict.fromkeys(item_ids))
    found = [row[0] for row in select_in(connection, "SELECT item_id FROM worklist_item WHERE item_id IN ({})", ids)]
    connection.executemany(
        "UPDATE worklist_item SET status = ? WHERE item_id = ?", [(status, item_id) for item_id in found]
    )
    return found


def list_items(connection: sqlite3.Connection, now: float, expire_after: float, *, include_expired: bool = False) -> list[WorklistEntry]:
    rows = connection.execute(
        "SELECT item_id, status, patient_id, accession_number, modality, station_ae_title, start_at, scheduled_at, attributes "
        "FROM worklist_item ORDER BY start_at, item_id"
    ).fetchall()
    entries = []
    for item_id, status, patient_id, accession, modality, station, start_at, scheduled_at, attributes in rows:
        expired = scheduled_at < now - expire_after
        if expired and not include_expired:
            continue
        name = (json.loads(attributes).get("00100010") or {}).get("Value") or [{}]
        entries.append(
            WorklistEntry(
                item_id=item_id, status=status, patient_id=patient_id or "", accession_number=accession or "",
                patient_name=(name[0] or {}).get("Alphabetic", "") if isinstance(name[0], dict) else str(name[0]),
                modality=modality or "", station_ae_title=station or "", start=start_at[:14], expired=expired,
            )
        )
    return entries


@attrs.frozen(kw_only=True)
class ScheduledItem:
    """An item still to be done, whole (for the prefetcher's look ahead)."""

    item_id: str
    attributes: dict


def scheduled_between(connection: sqlite3.Connection, start: float, end: float, limit: int) -> list[ScheduledItem]:
    """The items scheduled (not started yet) to start between `start` and `end` (epoch
    seconds), soonest first, at most `limit`."""
    rows = connection.execute(
        "SELECT item_id, attributes FROM worklist_item WHERE status = ? AND scheduled_at BETWEEN ? AND ?"
        " ORDER BY scheduled_at, item_id LIMIT ?",
        (SCHEDULED, start, end, limit),
    ).fetchall()
    return [ScheduledItem(item_id=item_id, attributes=json.loads(attributes)) for item_id, attributes in rows]


def item_attributes(connection: sqlite3.Connection, item_id: str) -> tuple[dict, str] | None:
    """An item's DICOM JSON and Specific Character Set, or None."""
    row = connection.execute(
        "SELECT attributes, specific_character_set FROM worklist_item WHERE item_id = ?", (item_id,)
    ).fetchone()
    return None if row is None else (json.loads(row[0]), row[1])


def find_page(
    connection: sqlite3.Connection,
    plan: WorklistPlan,
    *,
    now: float,
    expire_after: float,
    cursor: int = 0,
    size: int = 100,
    max_scanned: int = 1000,
) -> WorklistPage:
    """Up to `size` matches after `cursor` among the items offered and not expired. A page
    stops after `max_scanned` rows even with fewer matches: ask again from its cursor."""
    sql = (
        "SELECT pk, item_id, attributes, specific_character_set FROM worklist_item "
        f"WHERE ({plan.where}) AND status IN ({','.join('?' * len(OFFERED))}) AND scheduled_at >= ? AND pk > ? "
        "ORDER BY pk LIMIT ?"
    )
    try:
        rows = connection.execute(sql, (*plan.params, *OFFERED, now - expire_after, cursor, max_scanned)).fetchall()
    except sqlite3.OperationalError as error:
        if "pattern too complex" in str(error):
            raise QueryError("a wild card value is too long for the index to match") from None
        raise
    matches: list[WorklistMatch] = []
    position = cursor
    for pk, item_id, attributes_text, charset in rows:
        if len(matches) == size:
            return WorklistPage(matches=tuple(matches), cursor=position)
        position = pk
        attributes = json.loads(attributes_text)
        if plan.matches(attributes):
            matches.append(
                WorklistMatch(item_id=item_id, response=worklist_response(plan, attributes, charset), attributes=attributes)
            )
    return WorklistPage(matches=tuple(matches), cursor=position if len(rows) == max_scanned else None)


