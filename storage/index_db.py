"""The index database: opening it, recording stored instances, lookups and deletions.

Every function is an asyncio coroutine on an ``aiosqlite.Connection`` in autocommit
mode (``isolation_level=None``), opened by ``open_index``. One index actor owns the
connection and runs these on its private asyncio loop; each function is one whole
operation (one transaction), so the Trio side crosses once per operation.

Durability: a C-STORE is acknowledged only after ``record_instances`` has committed.
In WAL mode ``synchronous=NORMAL`` makes a commit survive an application crash but not
a power cut (the WAL is fsynced only at checkpoints), so an acknowledged store could
lose its index row. We default to ``FULL``: the WAL is fsynced at each commit. With
group commit that is one fsync per batch, next to the one fsync per file we already
pay, so the cost is small and "acknowledged" means "survives a power cut" for both
the file and its index row.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence

import aiosqlite
import attrs

from .attributes import InstanceRecord
from .normalize import fold_name, normalize_date, normalize_time
from .schema import migrate
from .sqlite_thread import in_transaction, run_in_connection

SQLITE_MAX_VARIABLES = 900  # stay far below SQLite's limit in IN (...) lists


async def open_index(path: str | os.PathLike[str], *, synchronous: str = "FULL") -> aiosqlite.Connection:
    """Open (creating if needed) and migrate the index at ``path``; WAL, foreign keys on."""
    if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
        raise ValueError(f"synchronous={synchronous!r} would acknowledge stores that are not durable")
    db = await aiosqlite.connect(os.fspath(path), isolation_level=None)
    try:
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.execute("PRAGMA busy_timeout = 5000")
        await migrate(db)
    except BaseException:
        await db.close()
        raise
    return db


@contextlib.asynccontextmanager
async def transaction(db: aiosqlite.Connection) -> AsyncIterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (writers never deadlock on
    lock upgrade, and a failed batch leaves nothing behind)."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        await rollback_quietly(db)
        raise
    await db.execute("COMMIT")


async def rollback_quietly(db: aiosqlite.Connection) -> None:
    """ROLLBACK that cannot mask the error being handled: if the transaction is already
    gone (a COMMIT queued before a cancellation still ran), there is nothing to undo."""
    try:
        await db.execute("ROLLBACK")
    except sqlite3.OperationalError:
        pass


def _chunks(values: Sequence[object], size: int = SQLITE_MAX_VARIABLES) -> Iterable[Sequence[object]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _marks(count: int) -> str:
    return ",".join("?" * count)


async def _select_in(db: aiosqlite.Connection, sql: str, values: Sequence[object]) -> list[tuple]:
    """Run ``sql`` (with one ``IN ({})`` placeholder) over values in bounded chunks."""
    rows: list[tuple] = []
    for chunk in _chunks(values):
        rows.extend(await db.execute_fetchall(sql.format(_marks(len(chunk))), tuple(chunk)))
    return rows


# -- recording stored instances ------------------------------------------------------------


class DuplicatePolicy(enum.Enum):
    """What to do when an instance with the same SOP Instance UID is already indexed."""

    REJECT = "reject"
    REPLACE = "replace"
    IGNORE = "ignore"


class Outcome(enum.Enum):
    STORED = "stored"
    DUPLICATE_REJECTED = "duplicate-rejected"
    REPLACED = "replaced"
    DUPLICATE_IGNORED = "ignored"


@attrs.frozen(kw_only=True)
class RecordOutcome:
    """What happened to one record of a batch.

    ``previous_path`` is the file of the instance already indexed: kept by the index for
    DUPLICATE_REJECTED / DUPLICATE_IGNORED (the caller discards the new file), dropped for
    REPLACED (the caller deletes it when it is not the new path). ``same_content`` says
    the duplicate's bytes hash to the same SHA-256, e.g. a peer re-sending after a lost
    response."""

    sop_instance_uid: str
    outcome: Outcome
    previous_path: str | None = None
    same_content: bool = False


_UPSERT_PATIENT = """
INSERT INTO patient (patient_id, issuer_of_patient_id, patient_name, patient_name_folded,
                     patient_birth_date, patient_sex, specific_character_set, attributes)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (patient_id, issuer_of_patient_id) DO UPDATE SET
    patient_name = excluded.patient_name, patient_name_folded = excluded.patient_name_folded,
    patient_birth_date = excluded.patient_birth_date, patient_sex = excluded.patient_sex,
    specific_character_set = excluded.specific_character_set, attributes = excluded.attributes
WHERE patient.attributes IS NOT excluded.attributes
   OR patient.specific_character_set IS NOT excluded.specific_character_set
"""

_UPSERT_STUDY = """
INSERT INTO study (patient_pk, study_instance_uid, study_date, study_time, accession_number, study_id,
                   study_description, referring_physician_name, referring_physician_name_folded,
                   specific_character_set, attributes)
VALUES ((SELECT pk FROM patient WHERE patient_id = ? AND issuer_of_patient_id = ?),
        ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (study_instance_uid) DO UPDATE SET
    patient_pk = excluded.patient_pk, study_date = excluded.study_date, study_time = excluded.study_time,
    accession_number = excluded.accession_number, study_id = excluded.study_id,
    study_description = excluded.study_description,
    referring_physician_name = excluded.referring_physician_name,
    referring_physician_name_folded = excluded.referring_physician_name_folded,
    specific_character_set = excluded.specific_character_set, attributes = excluded.attributes
WHERE study.patient_pk IS NOT excluded.patient_pk OR study.attributes IS NOT excluded.attributes
   OR study.specific_character_set IS NOT excluded.specific_character_set
"""

_UPSERT_SERIES = """
INSERT INTO series (study_pk, series_instance_uid, modality, series_number, series_description,
                    series_date, series_time, body_part_examined, specific_character_set, attributes)
VALUES ((SELECT pk FROM study WHERE study_instance_uid = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series_instance_uid) DO UPDATE SET
    study_pk = excluded.study_pk, modality = excluded.modality, series_number = excluded.series_number,
    series_description = excluded.series_description, series_date = excluded.series_date,
    series_time = excluded.series_time, body_part_examined = excluded.body_part_examined,
    specific_character_set = excluded.specific_character_set, attributes = excluded.attributes
WHERE series.study_pk IS NOT excluded.study_pk OR series.attributes IS NOT excluded.attributes
   OR series.specific_character_set IS NOT excluded.specific_character_set
"""

_UPSERT_INSTANCE = """
INSERT INTO instance (series_pk, sop_instance_uid, sop_class_uid, instance_number, specific_character_set,
                      attributes, file_path, file_size, sha256, transfer_syntax_uid, tier, stored_at,
                      last_accessed)
VALUES ((SELECT pk FROM series WHERE series_instance_uid = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, 'local', ?, ?)
ON CONFLICT (sop_instance_uid) DO UPDATE SET
    series_pk = excluded.series_pk, sop_class_uid = excluded.sop_class_uid,
    instance_number = excluded.instance_number, specific_character_set = excluded.specific_character_set,
    attributes = excluded.attributes, file_path = excluded.file_path, file_size = excluded.file_size,
    sha256 = excluded.sha256, transfer_syntax_uid = excluded.transfer_syntax_uid, tier = 'local',
    stored_at = excluded.stored_at, last_accessed = excluded.last_accessed
"""


def _none_if_empty(value: str) -> str | None:
    return value or None


def _patient_row(r: InstanceRecord) -> tuple:
    return (
        r.patient_id, r.issuer_of_patient_id, _none_if_empty(r.patient_name), fold_name(r.patient_name),
        normalize_date(r.patient_birth_date), _none_if_empty(r.patient_sex), r.specific_character_set,
        r.patient_json,
    )


def _study_row(r: InstanceRecord) -> tuple:
    return (
        r.patient_id, r.issuer_of_patient_id, r.study_instance_uid, normalize_date(r.study_date),
        normalize_time(r.study_time), _none_if_empty(r.accession_number), _none_if_empty(r.study_id),
        _none_if_empty(r.study_description), _none_if_empty(r.referring_physician_name),
        fold_name(r.referring_physician_name), r.specific_character_set, r.study_json,
    )


def _series_row(r: InstanceRecord) -> tuple:
    return (
        r.study_instance_uid, r.series_instance_uid, _none_if_empty(r.modality), r.series_number,
        _none_if_empty(r.series_description), normalize_date(r.series_date), normalize_time(r.series_time),
        _none_if_empty(r.body_part_examined), r.specific_character_set, r.series_json,
    )


def _instance_row(r: InstanceRecord, now: float) -> tuple:
    return (
        r.series_instance_uid, r.sop_instance_uid, r.sop_class_uid, r.instance_number, r.specific_character_set,
        r.instance_json, r.file_path, r.file_size, r.sha256, r.transfer_syntax_uid, now, now,
    )


def _decide(
    records: Sequence[InstanceRecord], existing: dict[str, tuple[str, str]], policy: DuplicatePolicy
) -> tuple[list[RecordOutcome], list[InstanceRecord]]:
    """Outcome of each record, in order, and the records to write. A SOP Instance UID seen
    earlier in the same batch counts as already indexed."""
    seen = dict(existing)  # sop uid -> (file_path, sha256)
    outcomes: list[RecordOutcome] = []
    to_write: list[InstanceRecord] = []
    for record in records:
        previous = seen.get(record.sop_instance_uid)
        if previous is None:
            outcomes.append(RecordOutcome(sop_instance_uid=record.sop_instance_uid, outcome=Outcome.STORED))
            to_write.append(record)
            seen[record.sop_instance_uid] = (record.file_path, record.sha256)
            continue
        previous_path, previous_sha = previous
        same = previous_sha == record.sha256
        if policy is DuplicatePolicy.REPLACE:
            kind = Outcome.REPLACED
            to_write.append(record)
            seen[record.sop_instance_uid] = (record.file_path, record.sha256)
        elif policy is DuplicatePolicy.REJECT:
            kind = Outcome.DUPLICATE_REJECTED
        else:
            kind = Outcome.DUPLICATE_IGNORED
        outcomes.append(
            RecordOutcome(
                sop_instance_uid=record.sop_instance_uid, outcome=kind, previous_path=previous_path, same_content=same
            )
        )
    return outcomes, to_write


def _last_per_key(records: Iterable[InstanceRecord], key) -> list[InstanceRecord]:
    """One record per entity, the last one of the batch (last writer wins)."""
    return list({key(r): r for r in records}.values())


async def record_instances(
    db: aiosqlite.Connection,
    records: Sequence[InstanceRecord],
    policy: DuplicatePolicy,
    *,
    now: float | None = None,
) -> list[RecordOutcome]:
    """Index a batch of stored instances in ONE transaction; one outcome per record, in order.

    Patient, study and series rows are upserted with the attributes of the batch's last
    instance of each (last writer wins: a corrected name re-sent propagates). A study
    whose instance now names another patient moves to that patient, a series likewise;
    parents left empty by a move or a replacement are pruned. If anything fails nothing
    is committed and the exception propagates (the caller may retry records one by one).
    The whole transaction runs on the connection's thread in one crossing.
    """
    if not records:
        return []
    stamp = time.time() if now is None else now
    return await run_in_connection(db, in_transaction, _record, list(records), policy, stamp)


def _record(
    connection: sqlite3.Connection, records: list[InstanceRecord], policy: DuplicatePolicy, now: float
) -> list[RecordOutcome]:
    uids = list(dict.fromkeys(r.sop_instance_uid for r in records))
    existing_rows = _select_in_sync(
        connection, "SELECT sop_instance_uid, file_path, sha256, series_pk FROM instance WHERE sop_instance_uid IN ({})", uids
    )
    existing = {uid: (path, sha) for uid, path, sha, _ in existing_rows}
    outcomes, to_write = _decide(records, existing, policy)
    if to_write:
        _write(connection, to_write, {series_pk for *_, series_pk in existing_rows}, now)
    return outcomes


def _select_in_sync(connection: sqlite3.Connection, sql: str, values: Sequence[object]) -> list[tuple]:
    rows: list[tuple] = []
    for chunk in _chunks(values):
        rows.extend(connection.execute(sql.format(_marks(len(chunk))), tuple(chunk)).fetchall())
    return rows


def _write(connection: sqlite3.Connection, records: list[InstanceRecord], old_series: set[int], now: float) -> None:
    studies = _last_per_key(records, lambda r: r.study_instance_uid)
    series = _last_per_key(records, lambda r: r.series_instance_uid)
    # Parents the batch's studies/series hang from now: pruned afterwards if a move emptied them.
    old_patients = {
        pk for (pk,) in _select_in_sync(
            connection, "SELECT patient_pk FROM study WHERE study_instance_uid IN ({})", [r.study_instance_uid for r in studies]
        )
    }
    old_studies = {
        pk for (pk,) in _select_in_sync(
            connection, "SELECT study_pk FROM series WHERE series_instance_uid IN ({})", [r.series_instance_uid for r in series]
        )
    }
    patients = _last_per_key(records, lambda r: (r.patient_id, r.issuer_of_patient_id))
    connection.executemany(_UPSERT_PATIENT, [_patient_row(r) for r in patients])
    connection.executemany(_UPSERT_STUDY, [_study_row(r) for r in studies])
    connection.executemany(_UPSERT_SERIES, [_series_row(r) for r in series])
    instances = _last_per_key(records, lambda r: r.sop_instance_uid)
    connection.executemany(_UPSERT_INSTANCE, [_instance_row(r, now) for r in instances])
    # Deleting an emptied series fires the triggers that prune its study and patient.
    _prune(connection, "series", "instance", "series_pk", old_series)
    _prune(connection, "study", "series", "study_pk", old_studies)
    _prune(connection, "patient", "study", "patient_pk", old_patients)


def _prune(connection: sqlite3.Connection, parent: str, child: str, fk: str, candidates: set[int]) -> None:
    for chunk in _chunks(sorted(candidates)):
        connection.execute(
            f"DELETE FROM {parent} WHERE pk IN ({_marks(len(chunk))}) "
            f"AND NOT EXISTS (SELECT 1 FROM {child} WHERE {child}.{fk} = {parent}.pk)",
            tuple(chunk),
        )


# -- lookups --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class StoredInstance:
    """Where one indexed instance is and what it is."""

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    file_path: str
    file_size: int
    sha256: str
    transfer_syntax_uid: str
    tier: str
    stored_at: float
    last_accessed: float


_STORED_INSTANCE = """
SELECT i.sop_instance_uid, i.sop_class_uid, se.series_instance_uid, st.study_instance_uid, p.patient_id,
       i.file_path, i.file_size, i.sha256, i.transfer_syntax_uid, i.tier, i.stored_at, i.last_accessed
FROM instance i
JOIN series se ON se.pk = i.series_pk
JOIN study st ON st.pk = se.study_pk
JOIN patient p ON p.pk = st.patient_pk
"""


def _stored(row: tuple) -> StoredInstance:
    return StoredInstance(
        sop_instance_uid=row[0], sop_class_uid=row[1], series_instance_uid=row[2], study_instance_uid=row[3],
        patient_id=row[4], file_path=row[5], file_size=row[6], sha256=row[7], transfer_syntax_uid=row[8],
        tier=row[9], stored_at=row[10], last_accessed=row[11],
    )


async def get_instance(db: aiosqlite.Connection, sop_instance_uid: str) -> StoredInstance | None:
    rows = await db.execute_fetchall(_STORED_INSTANCE + " WHERE i.sop_instance_uid = ?", (sop_instance_uid,))
    return _stored(rows[0]) if rows else None


async def series_instances(db: aiosqlite.Connection, series_instance_uid: str) -> list[StoredInstance]:
    rows = await db.execute_fetchall(
        _STORED_INSTANCE + " WHERE se.series_instance_uid = ? ORDER BY i.instance_number, i.pk", (series_instance_uid,)
    )
    return [_stored(row) for row in rows]


async def study_instances(db: aiosqlite.Connection, study_instance_uid: str) -> list[StoredInstance]:
    rows = await db.execute_fetchall(
        _STORED_INSTANCE + " WHERE st.study_instance_uid = ? ORDER BY se.series_number, se.pk, i.instance_number, i.pk",
        (study_instance_uid,),
    )
    return [_stored(row) for row in rows]


# -- maintenance ----------------------------------------------------------------------------


async def _delete_instances_where(db: aiosqlite.Connection, where: str, params: tuple) -> list[str]:
    """Delete matching instance rows (triggers prune emptied parents); returns their paths
    for the caller to delete from the tier."""
    async with transaction(db):
        rows = await db.execute_fetchall(f"DELETE FROM instance WHERE {where} RETURNING file_path", params)
    return [path for (path,) in rows]


async def delete_instances(db: aiosqlite.Connection, sop_instance_uids: Sequence[str]) -> list[str]:
    paths: list[str] = []
    for chunk in _chunks(list(sop_instance_uids)):
        paths += await _delete_instances_where(db, f"sop_instance_uid IN ({_marks(len(chunk))})", tuple(chunk))
    return paths


async def delete_series(db: aiosqlite.Connection, series_instance_uid: str) -> list[str]:
    return await _delete_instances_where(
        db, "series_pk = (SELECT pk FROM series WHERE series_instance_uid = ?)", (series_instance_uid,)
    )


async def delete_study(db: aiosqlite.Connection, study_instance_uid: str) -> list[str]:
    return await _delete_instances_where(
        db,
        "series_pk IN (SELECT se.pk FROM series se JOIN study st ON st.pk = se.study_pk "
        "WHERE st.study_instance_uid = ?)",
        (study_instance_uid,),
    )


async def delete_patient(db: aiosqlite.Connection, patient_id: str, issuer_of_patient_id: str = "") -> list[str]:
    return await _delete_instances_where(
        db,
        "series_pk IN (SELECT se.pk FROM series se JOIN study st ON st.pk = se.study_pk "
        "JOIN patient p ON p.pk = st.patient_pk WHERE p.patient_id = ? AND p.issuer_of_patient_id = ?)",
        (patient_id, issuer_of_patient_id),
    )


async def touch_instances(
    db: aiosqlite.Connection, sop_instance_uids: Sequence[str], *, now: float | None = None
) -> int:
    """Mark instances as just accessed (retrieve, prefetch); returns how many rows changed."""
    stamp = time.time() if now is None else now
    changed = 0
    async with transaction(db):
        for chunk in _chunks(list(sop_instance_uids)):
            cursor = await db.execute(
                f"UPDATE instance SET last_accessed = ? WHERE sop_instance_uid IN ({_marks(len(chunk))})",
                (stamp, *chunk),
            )
            changed += cursor.rowcount
    return changed


async def set_location(db: aiosqlite.Connection, sop_instance_uid: str, *, tier: str, file_path: str) -> bool:
    """Record that an instance's file now lives in another tier/path (HSM migration)."""
    async with transaction(db):
        cursor = await db.execute(
            "UPDATE instance SET tier = ?, file_path = ? WHERE sop_instance_uid = ?",
            (tier, file_path, sop_instance_uid),
        )
    return cursor.rowcount == 1


@attrs.frozen(kw_only=True)
class IndexCounts:
    patients: int
    studies: int
    series: int
    instances: int
    total_bytes: int


async def index_counts(db: aiosqlite.Connection) -> IndexCounts:
    rows = await db.execute_fetchall(
        "SELECT (SELECT count(*) FROM patient), (SELECT count(*) FROM study), (SELECT count(*) FROM series), "
        "(SELECT count(*) FROM instance), (SELECT coalesce(sum(file_size), 0) FROM instance)"
    )
    patients, studies, series, instances, total = rows[0]
    return IndexCounts(patients=patients, studies=studies, series=series, instances=instances, total_bytes=total)
