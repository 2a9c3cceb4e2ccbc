"""Storage Commitment requests in the index database, until their report is delivered.

Plain functions of a ``sqlite3.Connection`` (writes meant for one transaction each).
A request goes through these states, and is found again in the same state after a
restart:

    checking ──result──► reporting ──delivered──► reported
                             │ (attempts, next_attempt_at grow with each failure)
                             └──too many attempts──► abandoned

Reported and abandoned requests are kept for the record, the newest `keep` of them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import attrs

from .commitment import CommitmentResult, FailedInstance, ReferencedInstance, StoredCopy

CHECKING = "checking"
REPORTING = "reporting"
REPORTED = "reported"
ABANDONED = "abandoned"
UNFINISHED = (CHECKING, REPORTING)
KEEP_FINISHED = 1000


@attrs.frozen(kw_only=True)
class CommitmentRequest:
    transaction_uid: str
    requestor_ae_title: str
    referenced: tuple[ReferencedInstance, ...]
    association: str = ""  # the path of the association it came on ('' when unknown)
    context_id: int = 0
    state: str = CHECKING
    result: CommitmentResult | None = None
    attempts: int = 0
    next_attempt_at: float | None = None
    last_error: str = ""
    received_at: float = 0.0


def _dump_result(result: CommitmentResult) -> str:
    return json.dumps(
        {
            "success": [[i.sop_class_uid, i.sop_instance_uid] for i in result.success],
            "failed": [[i.sop_class_uid, i.sop_instance_uid, i.reason] for i in result.failed],
        }
    )


def _load_result(text: str | None) -> CommitmentResult | None:
    if text is None:
        return None
    data = json.loads(text)
    return CommitmentResult(
        success=tuple(ReferencedInstance(*pair) for pair in data["success"]),
        failed=tuple(FailedInstance(*triple) for triple in data["failed"]),
    )


def save_request(connection: sqlite3.Connection, request: CommitmentRequest) -> bool:
    """Record a new request; False when an unfinished one has its Transaction UID (a
    requestor asking again before its report came: the first one stands). A finished one
    of that UID is checked and reported again."""
    row = connection.execute(
        "SELECT state FROM commitment_request WHERE transaction_uid = ?", (request.transaction_uid,)
    ).fetchone()
    if row is not None and row[0] in UNFINISHED:
        return False
    connection.execute(
        "INSERT OR REPLACE INTO commitment_request (transaction_uid, requestor_ae_title, association, context_id, "
        "referenced, state, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            request.transaction_uid, request.requestor_ae_title, request.association, request.context_id,
            json.dumps([[i.sop_class_uid, i.sop_instance_uid] for i in request.referenced]), CHECKING, request.received_at,
        ),
    )
    return True


def record_result(connection: sqlite3.Connection, transaction_uid: str, result: CommitmentResult) -> None:
    connection.execute(
        "UPDATE commitment_request SET state = ?, result = ? WHERE transaction_uid = ?",
        (REPORTING, _dump_result(result), transaction_uid),
    )


def record_attempt(
    connection: sqlite3.Connection, transaction_uid: str, attempts: int, next_attempt_at: float | None, error: str
) -> None:
    """A delivery failed; with next_attempt_at None the request is given up (abandoned)."""
    connection.execute(
        "UPDATE commitment_request SET attempts = ?, next_attempt_at = ?, last_error = ?, state = ? WHERE transaction_uid = ?",
        (attempts, next_attempt_at, error, REPORTING if next_attempt_at is not None else ABANDONED, transaction_uid),
    )
    if next_attempt_at is None:
        _forget_old(connection)


def record_reported(connection: sqlite3.Connection, transaction_uid: str, now: float, keep: int = KEEP_FINISHED) -> None:
    connection.execute(
        "UPDATE commitment_request SET state = ?, reported_at = ?, next_attempt_at = NULL WHERE transaction_uid = ?",
        (REPORTED, now, transaction_uid),
    )
    _forget_old(connection, keep)


def _forget_old(connection: sqlite3.Connection, keep: int = KEEP_FINISHED) -> None:
    connection.execute(
        "DELETE FROM commitment_request WHERE state IN (?, ?) AND transaction_uid NOT IN "
        "(SELECT transaction_uid FROM commitment_request WHERE state IN (?, ?) ORDER BY received_at DESC LIMIT ?)",
        (REPORTED, ABANDONED, REPORTED, ABANDONED, keep),
    )


_SELECT = (
    "SELECT transaction_uid, requestor_ae_title, association, context_id, referenced, state, result, attempts, "
    "next_attempt_at, last_error, received_at FROM commitment_request"
)


def _request(row: tuple) -> CommitmentRequest:
    uid, requestor, association, context_id, referenced, state, result, attempts, next_at, error, received = row
    return CommitmentRequest(
        transaction_uid=uid,
        requestor_ae_title=requestor,
        association=association,
        context_id=context_id,
        referenced=tuple(ReferencedInstance(*pair) for pair in json.loads(referenced)),
        state=state,
        result=_load_result(result),
        attempts=attempts,
        next_attempt_at=next_at,
        last_error=error,
        received_at=received,
    )


def unfinished_requests(connection: sqlite3.Connection) -> list[CommitmentRequest]:
    rows = connection.execute(f"{_SELECT} WHERE state IN (?, ?) ORDER BY received_at", UNFINISHED).fetchall()
    return [_request(row) for row in rows]


def get_request(connection: sqlite3.Connection, transaction_uid: str) -> CommitmentRequest | None:
    row = connection.execute(f"{_SELECT} WHERE transaction_uid = ?", (transaction_uid,)).fetchone()
    return None if row is None else _request(row)


def stored_copies(connection: sqlite3.Connection, sop_instance_uids: Sequence[str]) -> dict[str, StoredCopy]:
    """What the index knows of each named instance it holds."""
    uids = list(dict.fromkeys(sop_instance_uids))
    copies: dict[str, StoredCopy] = {}
    for start in range(0, len(uids), 500):
        part = uids[start : start + 500]
        rows = connection.execute(
            "SELECT sop_instance_uid, sop_class_uid, file_path, file_size, sha256, tier FROM instance "
            f"WHERE sop_instance_uid IN ({','.join('?' * len(part))})",
            tuple(part),
        ).fetchall()
        for uid, sop_class, path, size, sha, tier in rows:
            copies[uid] = StoredCopy(sop_class_uid=sop_class, file_path=path, file_size=size, sha256=sha, tier=tier)
    return copies
