"""The prefetcher's queue and statistics in its own SQLite file, `<data>/prefetch.sqlite`.

Why a file of its own rather than tables in index.sqlite: one writer per database file,
and the prefetcher is the only one that writes its queue - through the index actor every
queue change would wait behind the group commits of the very C-STOREs the prefetch
brings in. The scheduler keeps `scheduler.sqlite` for the same reason. The schema is
versioned like the index's (PRAGMA user_version, storage/schema.py's migrate).

Every function is a plain function of a `sqlite3.Connection`, one transaction each; the
prefetcher runs them on its database thread. `read_status` opens the file read-only
beside a running node (WAL lets a reader in), for `triopacs prefetch --status`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence

import attrs

from ...storage.schema import Migration, migrate
from ...storage.sql import connect, in_transaction
from .jobs import PatientJob, PrefetchStats, StudyJob, converter

CYCLES_KEPT = 50

MIGRATIONS = (
    Migration(
        "the prefetch queue and its statistics",
        (
            """
            CREATE TABLE prefetch_patient (
                patient_id TEXT PRIMARY KEY,
                job TEXT NOT NULL,
                next_attempt_at REAL NOT NULL
            )
            """,
            """
            CREATE TABLE prefetch_study (
                study_instance_uid TEXT PRIMARY KEY,
                patient_id TEXT NOT NULL,
                job TEXT NOT NULL,
                next_attempt_at REAL NOT NULL
            )
            """,
            "CREATE TABLE prefetch_totals (id INTEGER PRIMARY KEY CHECK (id = 1), stats TEXT NOT NULL, cycles INTEGER NOT NULL)",
            """
            CREATE TABLE prefetch_cycle (
                seq INTEGER PRIMARY KEY,
                cycle_id TEXT NOT NULL,
                trigger TEXT NOT NULL,
                started_at REAL NOT NULL,
                finished_at REAL NOT NULL,
                stats TEXT NOT NULL
            )
            """,
        ),
    ),
)


@attrs.frozen(kw_only=True)
class CycleRecord:
    cycle_id: str
    trigger: str  # worklist-query, worklist-change, schedule, request
    started_at: float
    finished_at: float
    stats: PrefetchStats


@attrs.frozen(kw_only=True)
class SavedQueue:
    patients: tuple[PatientJob, ...]
    studies: tuple[StudyJob, ...]
    totals: PrefetchStats
    cycles: int
    last_cycle: CycleRecord | None


def open_prefetch_db(path: str | os.PathLike[str]) -> sqlite3.Connection:
    return connect(path, synchronous="FULL", prepare=lambda connection: migrate(connection, MIGRATIONS, name="prefetch"))


def _dump(value) -> str:
    return json.dumps(converter.unstructure(value), separators=(",", ":"))


def _load(text: str, kind):
    return converter.structure(json.loads(text), kind)


def _put_patient(connection: sqlite3.Connection, job: PatientJob) -> None:
    connection.execute(
        "INSERT INTO prefetch_patient (patient_id, job, next_attempt_at) VALUES (?, ?, ?)"
        " ON CONFLICT (patient_id) DO UPDATE SET job = excluded.job, next_attempt_at = excluded.next_attempt_at",
        (job.patient_id, _dump(job), job.next_attempt_at),
    )


def _put_study(connection: sqlite3.Connection, job: StudyJob) -> None:
    connection.execute(
        "INSERT INTO prefetch_study (study_instance_uid, patient_id, job, next_attempt_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (study_instance_uid) DO UPDATE SET job = excluded.job, next_attempt_at = excluded.next_attempt_at",
        (job.study_instance_uid, job.patient_id, _dump(job), job.next_attempt_at),
    )


def _add_totals(connection: sqlite3.Connection, stats: PrefetchStats, cycles: int = 0) -> None:
    row = connection.execute("SELECT stats, cycles FROM prefetch_totals WHERE id = 1").fetchone()
    totals = _load(row[0], PrefetchStats) + stats if row else stats
    counted = (row[1] if row else 0) + cycles
    connection.execute(
        "INSERT INTO prefetch_totals (id, stats, cycles) VALUES (1, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET stats = excluded.stats, cycles = excluded.cycles",
        (_dump(totals), counted),
    )


def save_patients(connection: sqlite3.Connection, jobs: Sequence[PatientJob]) -> None:
    def save(connection: sqlite3.Connection) -> None:
        for job in jobs:
            _put_patient(connection, job)

    in_transaction(connection, save)


def settle_query(
    connection: sqlite3.Connection, patient_id: str, job: PatientJob | None, studies: Sequence[StudyJob], stats: PrefetchStats
) -> None:
    """A patient's query came back: its job kept for the sources still to ask (or gone),
    the studies chosen queued (a study queued already stays as it is), the counts added."""

    def settle(connection: sqlite3.Connection) -> None:
        if job is None:
            connection.execute("DELETE FROM prefetch_patient WHERE patient_id = ?", (patient_id,))
        else:
            _put_patient(connection, job)
        for study in studies:
            connection.execute(
                "INSERT OR IGNORE INTO prefetch_study (study_instance_uid, patient_id, job, next_attempt_at) VALUES (?, ?, ?, ?)",
                (study.study_instance_uid, study.patient_id, _dump(study), study.next_attempt_at),
            )
        _add_totals(connection, stats)

    in_transaction(connection, settle)


def settle_study(connection: sqlite3.Connection, study_instance_uid: str, job: StudyJob | None, stats: PrefetchStats) -> None:
    """A retrieval ended (job None) or will be tried again (the job as it is now)."""

    def settle(connection: sqlite3.Connection) -> None:
        if job is None:
            connection.execute("DELETE FROM prefetch_study WHERE study_instance_uid = ?", (study_instance_uid,))
        else:
            _put_study(connection, job)
        _add_totals(connection, stats)

    in_transaction(connection, settle)


def record_cycle(connection: sqlite3.Connection, record: CycleRecord, keep: int = CYCLES_KEPT) -> None:
    def save(connection: sqlite3.Connection) -> None:
        connection.execute(
            "INSERT INTO prefetch_cycle (cycle_id, trigger, started_at, finished_at, stats) VALUES (?, ?, ?, ?, ?)",
            (record.cycle_id, record.trigger, record.started_at, record.finished_at, _dump(record.stats)),
        )
        connection.execute("DELETE FROM prefetch_cycle WHERE seq NOT IN (SELECT seq FROM prefetch_cycle ORDER BY seq DESC LIMIT ?)", (keep,))
        # The duration of the cycles adds up here; their other counts were added as they came.
        _add_totals(connection, PrefetchStats(duration=record.stats.duration), cycles=1)

    in_transaction(connection, save)


def load_queue(connection: sqlite3.Connection) -> SavedQueue:
    patients = [_load(row[0], PatientJob) for row in connection.execute("SELECT job FROM prefetch_patient ORDER BY next_attempt_at")]
    studies = [_load(row[0], StudyJob) for row in connection.execute("SELECT job FROM prefetch_study ORDER BY next_attempt_at")]
    row = connection.execute("SELECT stats, cycles FROM prefetch_totals WHERE id = 1").fetchone()
    last = connection.execute(
        "SELECT cycle_id, trigger, started_at, finished_at, stats FROM prefetch_cycle ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return SavedQueue(
        patients=tuple(patients),
        studies=tuple(studies),
        totals=_load(row[0], PrefetchStats) if row else PrefetchStats(),
        cycles=row[1] if row else 0,
        last_cycle=None if last is None else CycleRecord(
            cycle_id=last[0], trigger=last[1], started_at=last[2], finished_at=last[3], stats=_load(last[4], PrefetchStats)
        ),
    )


def read_status(path: str | os.PathLike[str]) -> SavedQueue | None:
    """The queue and statistics as the file holds them, read-only (None: no file yet)."""
    if not os.path.exists(path):
        return None
    connection = sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True)
    try:
        return load_queue(connection)
    finally:
        connection.close()
