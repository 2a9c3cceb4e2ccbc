"""The index database: opening it, recording stored instances, counting what it holds.

Plain synchronous functions of a ``sqlite3.Connection`` in autocommit mode, opened by
``open_index``. The index actor owns the database and runs each on its writer or
reader thread as one call; ``record_instances`` is one whole transaction.

Durability: a C-STORE is acknowledged only after ``record_instances`` has committed.
In WAL mode ``synchronous=NORMAL`` makes a commit survive an application crash but not
a power cut (the WAL is fsynced only at checkpoints), so an acknowledged store could
lose its index row. We default to ``FULL``: the WAL is fsynced at each commit. With
group commit that is one fsync per batch, next to the one fsync per file we already
pay, so the cost is small and "acknowledged" means "survives a power cut" for both
the file and its index row.
"""

from __future__ import annotations

import enum
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence

import attrs

from .attributes import InstanceRecord
from .normalize import fold_name, normalize_date, normalize_time
from .schema import migrate
from .sql import chunks, connect, in_transaction, marks, select_in


def open_index(path: str | os.PathLike[str], *, synchronous: str = "FULL", query_only: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the index at ``path``; WAL, foreign keys on.

    ``query_only``: the connection refuses every write (the index actor's reader), so
    the writer's connection stays the only one that changes the file."""
    connection = connect(path, synchronous=synchronous)
    try:
        migrate(connection)
        if query_only:
            connection.execute("PRAGMA query_only = ON")
    except BaseException:
        connection.close()
        raise
    return connection


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


def record_instances(
    connection: sqlite3.Connection,
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
    """
    if not records:
        return []
    stamp = time.time() if now is None else now
    return in_transaction(connection, _record, list(records), policy, stamp)


def _record(
    connection: sqlite3.Connection, records: list[InstanceRecord], policy: DuplicatePolicy, now: float
) -> list[RecordOutcome]:
    uids = list(dict.fromkeys(r.sop_instance_uid for r in records))
    existing_rows = select_in(
        connection, "SELECT sop_instance_uid, file_path, sha256, series_pk FROM instance WHERE sop_instance_uid IN ({})", uids
    )
    existing = {uid: (path, sha) for uid, path, sha, _ in existing_rows}
    outcomes, to_write = _decide(records, existing, policy)
    if to_write:
        _write(connection, to_write, {series_pk for *_, series_pk in existing_rows}, now)
    return outcomes




def _write(connection: sqlite3.Connection, records: list[InstanceRecord], old_series: set[int], now: float) -> None:
    studies = _last_per_key(records, lambda r: r.study_instance_uid)
    series = _last_per_key(records, lambda r: r.series_instance_uid)
    # Parents the batch's studies/series hang from now: pruned afterwards if a move emptied them.
    old_patients = {
        pk for (pk,) in select_in(
            connection, "SELECT patient_pk FROM study WHERE study_instance_uid IN ({})", [r.study_instance_uid for r in studies]
        )
    }
    old_studies = {
        pk for (pk,) in select_in(
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
    for chunk in chunks(sorted(candidates)):
        connection.execute(
            f"DELETE FROM {parent} WHERE pk IN ({marks(len(chunk))}) "
            f"AND NOT EXISTS (SELECT 1 FROM {child} WHERE {child}.{fk} = {parent}.pk)",
            tuple(chunk),
        )


# -- counting ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class IndexCounts:
    patients: int
    studies: int
    series: int
    instances: int
    total_bytes: int


def index_counts(connection: sqlite3.Connection) -> IndexCounts:
    patients, studies, series, instances, total = connection.execute(
        "SELECT (SELECT count(*) FROM patient), (SELECT count(*) FROM study), (SELECT count(*) FROM series), "
        "(SELECT count(*) FROM instance), (SELECT coalesce(sum(file_size), 0) FROM instance)"
    ).fetchone()
    return IndexCounts(patients=patients, studies=studies, series=series, instances=instances, total_bytes=total)
