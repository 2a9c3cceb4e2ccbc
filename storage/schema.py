"""The SQLite index: tables, indexes, pruning triggers and their migrations.

Versioning: ``PRAGMA user_version`` holds the number of migrations applied. At open,
the missing ones run in order inside one ``BEGIN IMMEDIATE`` transaction (DDL and
``user_version`` are transactional in SQLite), so a crash mid-upgrade leaves the old
schema intact. A database newer than this code is refused rather than guessed at.

Patient identity. PatientID is only unique within the authority that issued it (two
hospitals both have a patient "12345"), so a patient row is keyed by the pair
(PatientID, IssuerOfPatientID), with '' standing for "no issuer" because SQLite treats
NULLs as distinct in UNIQUE constraints. Rows refer to each other through integer
surrogate keys: compact foreign keys, and a later patient merge or ID correction
updates one row instead of every study. Instances without any PatientID share the
patient ('', ''): the type 2 attribute being empty, there is nothing better to key on.

Matching columns hold comparable forms (normalize.py): dates YYYYMMDD, times
HHMMSS.ffffff, PN also case folded. Values returned to C-FIND come from the per-level
``attributes`` JSON, exactly as received.

Emptied parents are pruned: deleting the last instance of a series deletes the series,
and so on up to the patient (triggers, whatever code path deleted); a move between
parents is pruned by the batch writer (index_db).
"""

from __future__ import annotations

import sqlite3

import attrs

from .hsm_db import JOURNAL_TABLE as MIGRATION_JOURNAL
from .sql import in_transaction


@attrs.frozen
class Migration:
    description: str
    statements: tuple[str, ...]


_V1_TABLES = (
    """
    CREATE TABLE patient (
        pk INTEGER PRIMARY KEY,
        patient_id TEXT NOT NULL,
        issuer_of_patient_id TEXT NOT NULL DEFAULT '',
        patient_name TEXT,
        patient_name_folded TEXT,
        patient_birth_date TEXT,
        patient_sex TEXT,
        specific_character_set TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}',
        UNIQUE (patient_id, issuer_of_patient_id)
    )
    """,
    """
    CREATE TABLE study (
        pk INTEGER PRIMARY KEY,
        patient_pk INTEGER NOT NULL REFERENCES patient (pk),
        study_instance_uid TEXT NOT NULL UNIQUE,
        study_date TEXT,
        study_time TEXT,
        accession_number TEXT,
        study_id TEXT,
        study_description TEXT,
        referring_physician_name TEXT,
        referring_physician_name_folded TEXT,
        specific_character_set TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}'
    )
    """,
    """
    CREATE TABLE series (
        pk INTEGER PRIMARY KEY,
        study_pk INTEGER NOT NULL REFERENCES study (pk),
        series_instance_uid TEXT NOT NULL UNIQUE,
        modality TEXT,
        series_number INTEGER,
        series_description TEXT,
        series_date TEXT,
        series_time TEXT,
        body_part_examined TEXT,
        specific_character_set TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}'
    )
    """,
    """
    CREATE TABLE instance (
        pk INTEGER PRIMARY KEY,
        series_pk INTEGER NOT NULL REFERENCES series (pk),
        sop_instance_uid TEXT NOT NULL UNIQUE,
        sop_class_uid TEXT NOT NULL,
        instance_number INTEGER,
        specific_character_set TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}',
        file_path TEXT NOT NULL,
        file_size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        transfer_syntax_uid TEXT NOT NULL,
        tier TEXT NOT NULL DEFAULT 'local',
        stored_at REAL NOT NULL,
        last_accessed REAL NOT NULL
    )
    """,
)

_V1_INDEXES = (
    "CREATE INDEX patient_by_name ON patient (patient_name_folded)",
    "CREATE INDEX study_by_patient ON study (patient_pk)",
    "CREATE INDEX study_by_date ON study (study_date)",
    "CREATE INDEX study_by_accession ON study (accession_number)",
    # (study_pk, modality) also answers ModalitiesInStudy from the index alone.
    "CREATE INDEX series_by_study ON series (study_pk, modality)",
    "CREATE INDEX instance_by_series ON instance (series_pk, sop_class_uid)",
    # HSM migration picks the least recently used instances of a tier.
    "CREATE INDEX instance_by_tier_age ON instance (tier, last_accessed)",
)


def _prune_on_delete(child: str, parent: str, parent_fk: str) -> str:
    """A trigger deleting the ``parent`` row once its last ``child`` row is deleted.

    Only deletions prune here: a row moving to another parent (a corrected study) is
    pruned by the writer at the end of its batch, because pruning mid-batch could
    delete a parent that a later row of the same batch is about to use."""
    return (
        f"CREATE TRIGGER {child}_deleted_prunes_{parent} AFTER DELETE ON {child} BEGIN "
        f"DELETE FROM {parent} WHERE pk = OLD.{parent_fk} "
        f"AND NOT EXISTS (SELECT 1 FROM {child} WHERE {parent_fk} = OLD.{parent_fk}); END"
    )


_V1_TRIGGERS = (
    _prune_on_delete("instance", "series", "series_pk"),
    _prune_on_delete("series", "study", "study_pk"),
    _prune_on_delete("study", "patient", "patient_pk"),
)

# Maintenance (workflow cleanup and verification; see storage/deletion.py, storage/maintenance.py):
# - instance.file_status / checked_at: what the last verification found ('ok', 'missing',
#   'corrupt'; flags are set only by a repairing run) and when each file was last checked,
#   so runs capped at N files go on where the previous one stopped. An instance stored
#   again (replaced) or relocated has a new file: the trigger forgets its check.
# - file_deletion: the journal of crash-safe deletion. Rows leave `instance` and their
#   files enter this table in one transaction; the files are removed afterwards and the
#   entries dropped. Whatever a crash interrupts is finished when the index next opens.
# - released_file: files a database-only cleanup took out of the index but left on disk
#   on purpose; verification does not call them orphans (nor re-indexes them).
# - maintenance_report: the report of each cleanup/verification run.
_V2_MAINTENANCE = (
    "ALTER TABLE instance ADD COLUMN file_status TEXT NOT NULL DEFAULT 'ok'",
    "ALTER TABLE instance ADD COLUMN checked_at REAL",
    # Which row names a file: verification asks it of every file it finds, the deletion
    # journal before it removes one.
    "CREATE INDEX instance_by_file ON instance (file_path)",
    """
    CREATE TRIGGER instance_new_file_forgets_check AFTER UPDATE OF file_path, sha256 ON instance
    WHEN OLD.file_status != 'ok' OR OLD.checked_at IS NOT NULL
    BEGIN UPDATE instance SET file_status = 'ok', checked_at = NULL WHERE pk = NEW.pk; END
    """,
    """
    CREATE TABLE file_deletion (
        file_path TEXT PRIMARY KEY,
        sop_instance_uid TEXT NOT NULL,
        queued_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE released_file (
        file_path TEXT PRIMARY KEY,
        sop_instance_uid TEXT NOT NULL,
        study_instance_uid TEXT NOT NULL,
        released_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE maintenance_report (
        seq INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL,
        task_name TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL NOT NULL,
        succeeded INTEGER NOT NULL,
        summary TEXT NOT NULL DEFAULT '',
        report TEXT NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX maintenance_report_by_task ON maintenance_report (task_id, seq)",
)

# DIMSE-N services (storage/worklist_db.py, mpps_db.py, commitment_db.py):
# - worklist_item: one Scheduled Procedure Step (the RIS's unit of work), keyed by its SPS
#   ID; the whole item as DICOM JSON, its matching keys in columns in normalize.py's forms
#   (start_date/start_time/start_at for date, time and the combined date-time ranges),
#   `scheduled_at` (epoch seconds) for expiry, `status` following its MPPS.
# - mpps: Modality Performed Procedure Steps as N-CREATE/N-SET left them.
# - commitment_request: Storage Commitment requests until their report is delivered
#   (state checking -> reporting -> reported), so a restart resumes them.
_V3_DIMSE_N = (
    """
    CREATE TABLE worklist_item (
        pk INTEGER PRIMARY KEY,
        item_id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL DEFAULT 'scheduled',
        patient_id TEXT,
        patient_name_folded TEXT,
        accession_number TEXT,
        requested_procedure_id TEXT,
        study_instance_uid TEXT,
        modality TEXT,
        station_ae_title TEXT,
        performing_physician_folded TEXT,
        start_date TEXT,
        start_time TEXT,
        start_at TEXT,
        scheduled_at REAL NOT NULL,
        specific_character_set TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL,
        added_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
    "CREATE INDEX worklist_item_by_station ON worklist_item (station_ae_title, start_at)",
    "CREATE INDEX worklist_item_by_start ON worklist_item (start_at)",
    "CREATE INDEX worklist_item_by_patient ON worklist_item (patient_id)",
    "CREATE INDEX worklist_item_by_accession ON worklist_item (accession_number)",
    "CREATE INDEX worklist_item_by_schedule ON worklist_item (scheduled_at)",
    """
    CREATE TABLE mpps (
        pk INTEGER PRIMARY KEY,
        sop_instance_uid TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        creator_ae_title TEXT NOT NULL DEFAULT '',
        specific_character_set TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE commitment_request (
        transaction_uid TEXT PRIMARY KEY,
        requestor_ae_title TEXT NOT NULL,
        association TEXT NOT NULL DEFAULT '',
        context_id INTEGER NOT NULL DEFAULT 0,
        referenced TEXT NOT NULL,
        state TEXT NOT NULL,
        result TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        last_error TEXT NOT NULL DEFAULT '',
        received_at REAL NOT NULL,
        reported_at REAL
    )
    """,
    "CREATE INDEX commitment_request_by_state ON commitment_request (state, received_at)",
)
# HSM (storage/hsm_db.py): the journal of instances moving between storage tiers.
_V4_MIGRATION_JOURNAL = MIGRATION_JOURNAL

MIGRATIONS: tuple[Migration, ...] = (
    Migration("patient/study/series/instance with files, tiers and pruning", _V1_TABLES + _V1_INDEXES + _V1_TRIGGERS),
    Migration("file check status, deletion journal, released files, maintenance reports", _V2_MAINTENANCE),
    Migration("worklist items, performed procedure steps, storage commitment requests", _V3_DIMSE_N),
    Migration("migration journal of instances moving between storage tiers", _V4_MIGRATION_JOURNAL),
)

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer triopacs; opening it could corrupt it."""


def schema_version(connection: sqlite3.Connection) -> int:
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    return int(version)


def migrate(connection: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS, *, name: str = "index") -> int:
    """Apply the migrations the database lacks, all in one transaction; returns the version.

    Requires a connection in autocommit mode (``isolation_level=None``) so the explicit
    transaction is the only one."""
    current = schema_version(connection)
    if current > len(migrations):
        raise SchemaTooNew(f"{name} schema version {current} is newer than this code's {len(migrations)}")
    if current == len(migrations):
        return current
    in_transaction(connection, _apply, migrations)
    return len(migrations)


def _apply(connection: sqlite3.Connection, migrations: tuple[Migration, ...]) -> None:
    # Re-read under the write lock: another process may have migrated meanwhile.
    for migration in migrations[schema_version(connection) :]:
        for statement in migration.statements:
            connection.execute(statement)
    connection.execute(f"PRAGMA user_version = {len(migrations)}")
