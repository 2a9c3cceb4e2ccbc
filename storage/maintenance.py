"""What the maintenance tasks (cleanup, verification) read from and write to the index.

- cleanup: studies whose newest instance arrived before a time, oldest first, with what
  retention and exclusion rules look at;
- verification: the indexed files, page by page or least recently checked first; which
  of some paths the index knows (indexed, being deleted, released); the outcome of
  checks (when each file was checked and, for a repairing run, its status);
- both: the report of each run (`maintenance_report`).

Every function takes a plain `sqlite3.Connection`; the index actor runs each on its
database thread in one call, writers inside `sql.in_transaction`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import attrs

from .sql import chunks, marks

FILE_OK = "ok"
FILE_MISSING = "missing"
FILE_CORRUPT = "corrupt"
FILE_STATUSES = (FILE_OK, FILE_MISSING, FILE_CORRUPT)


# -- cleanup ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class StudySummary:
    """A study as retention and exclusion rules see it."""

    study_instance_uid: str
    patient_id: str = ""
    accession_number: str = ""
    study_description: str = ""
    study_date: str = ""
    modalities: tuple[str, ...] = ()
    last_stored_at: float  # when its newest instance arrived (epoch seconds)
    instances: int = 0
    bytes: int = 0


StudyCursor = tuple[float, int]  # (last_stored_at, study pk) of the last study of a page


def studies_stored_before(
    connection: sqlite3.Connection, before: float, after: StudyCursor | None, limit: int
) -> tuple[list[StudySummary], StudyCursor | None]:
    """Studies whose newest instance arrived before `before`, oldest first, one page
    after `after`; the cursor of the next page (None: this was the last)."""
    last, last_pk = after if after is not None else (float("-inf"), -1)
    rows = connection.execute(
        """
        SELECT st.pk, st.study_instance_uid, p.patient_id, coalesce(st.accession_number, ''),
               coalesce(st.study_description, ''), coalesce(st.study_date, ''),
               (SELECT group_concat(DISTINCT se2.modality) FROM series se2 WHERE se2.study_pk = st.pk),
               max(i.stored_at) AS last_stored, count(i.pk), coalesce(sum(i.file_size), 0)
        FROM study st
        JOIN patient p ON p.pk = st.patient_pk
        JOIN series se ON se.study_pk = st.pk
        JOIN instance i ON i.series_pk = se.pk
        GROUP BY st.pk
        HAVING last_stored < ? AND (last_stored > ? OR (last_stored = ? AND st.pk > ?))
        ORDER BY last_stored, st.pk
        LIMIT ?
        """,
        (before, last, last, last_pk, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    studies = [
        StudySummary(
            study_instance_uid=uid, patient_id=patient_id, accession_number=accession, study_description=description,
            study_date=study_date, modalities=tuple(sorted(modalities.split(","))) if modalities else (),
            last_stored_at=last_stored, instances=count, bytes=size,
        )
        for _, uid, patient_id, accession, description, study_date, modalities, last_stored, count, size in rows
    ]
    cursor = (rows[-1][7], rows[-1][0]) if more and rows else None
    return studies, cursor


# -- verification -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class IndexedFile:
    """One indexed instance's file, with what the index expects of it."""

    pk: int
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    file_path: str  # relative to the data directory
    file_size: int
    sha256: str
    file_status: str = FILE_OK
    checked_at: float | None = None


_INDEXED_FILE = """
SELECT i.pk, i.sop_instance_uid, i.sop_class_uid, se.series_instance_uid, st.study_instance_uid,
       i.file_path, i.file_size, i.sha256, i.file_status, i.checked_at
FROM instance i
JOIN series se ON se.pk = i.series_pk
JOIN study st ON st.pk = se.study_pk
WHERE i.tier = 'local'
"""


def _indexed(row: tuple) -> IndexedFile:
    pk, sop, sop_class, series, study, path, size, sha, status, checked = row
    return IndexedFile(
        pk=pk, sop_instance_uid=sop, sop_class_uid=sop_class, series_instance_uid=series, study_instance_uid=study,
        file_path=path, file_size=size, sha256=sha, file_status=status, checked_at=checked,
    )


def indexed_files_after(connection: sqlite3.Connection, after_pk: int, limit: int) -> list[IndexedFile]:
    """Local files in row order, one page after row `after_pk`."""
    rows = connection.execute(_INDEXED_FILE + " AND i.pk > ? ORDER BY i.pk LIMIT ?", (after_pk, limit)).fetchall()
    return [_indexed(row) for row in rows]


def files_to_check(connection: sqlite3.Connection, limit: int) -> list[IndexedFile]:
    """The `limit` local files checked longest ago (never checked first)."""
    rows = connection.execute(_INDEXED_FILE + " ORDER BY i.checked_at IS NOT NULL, i.checked_at, i.pk LIMIT ?", (limit,)).fetchall()
    return [_indexed(row) for row in rows]


def indexed_file(connection: sqlite3.Connection, sop_instance_uids: Sequence[str]) -> dict[str, str]:
    """SOP Instance UID -> the file path the index has for it, for those it knows."""
    found: dict[str, str] = {}
    for chunk in chunks(list(sop_instance_uids)):
        found.update(
            connection.execute(
                f"SELECT sop_instance_uid, file_path FROM instance WHERE sop_instance_uid IN ({marks(len(chunk))})", chunk
            ).fetchall()
        )
    return found


@attrs.frozen(kw_only=True)
class PathClasses:
    """Which of some paths the index knows, and as what; a path in none is an orphan."""

    indexed: tuple[str, ...] = ()  # a row names it
    deleting: tuple[str, ...] = ()  # in the deletion journal, about to go
    released: tuple[str, ...] = ()  # taken out of the index, kept on disk on purpose

    def known(self) -> set[str]:
        return {*self.indexed, *self.deleting, *self.released}


def classify_paths(connection: sqlite3.Connection, paths: Sequence[str]) -> PathClasses:
    found: dict[str, set[str]] = {"instance": set(), "file_deletion": set(), "released_file": set()}
    for chunk in chunks(list(paths)):
        for table, known in found.items():
            rows = connection.execute(f"SELECT file_path FROM {table} WHERE file_path IN ({marks(len(chunk))})", chunk)
            known.update(path for (path,) in rows)
    return PathClasses(
        indexed=tuple(sorted(found["instance"])),
        deleting=tuple(sorted(found["file_deletion"])),
        released=tuple(sorted(found["released_file"])),
    )


@attrs.frozen(kw_only=True)
class FileCheck:
    """The outcome of checking one file, to write back. The row is updated only if it
    still names the same file with the same checksum (a file stored again since is a new
    file, not the one checked). `status` None records the time only."""

    sop_instance_uid: str
    file_path: str
    sha256: str
    status: str | None = None


def record_checks(connection: sqlite3.Connection, checks: Sequence[FileCheck], now: float) -> int:
    """Write check outcomes (inside the caller's transaction); returns rows updated."""
    updated = 0
    for check in checks:
        if check.status is not None and check.status not in FILE_STATUSES:
            raise ValueError(f"unknown file status {check.status!r}")
        updated += connection.execute(
            "UPDATE instance SET checked_at = ?, file_status = coalesce(?, file_status) "
            "WHERE sop_instance_uid = ? AND file_path = ? AND sha256 = ?",
            (now, check.status, check.sop_instance_uid, check.file_path, check.sha256),
        ).rowcount
    return updated


# -- reports ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class StoredReport:
    """One run's report as kept in `maintenance_report` (`report` is JSON text)."""

    task_id: str
    task_name: str = ""
    kind: str
    started_at: float
    finished_at: float
    succeeded: bool
    summary: str = ""
    report: str = "{}"


def save_report(connection: sqlite3.Connection, report: StoredReport, keep_last: int) -> None:
    """Add a report and keep only the task's newest `keep_last` (inside a transaction)."""
    connection.execute(
        "INSERT INTO maintenance_report (task_id, task_name, kind, started_at, finished_at, succeeded, summary, report) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (report.task_id, report.task_name, report.kind, report.started_at, report.finished_at, int(report.succeeded),
         report.summary, report.report),
    )
    connection.execute(
        "DELETE FROM maintenance_report WHERE task_id = ? AND seq NOT IN "
        "(SELECT seq FROM maintenance_report WHERE task_id = ? ORDER BY seq DESC LIMIT ?)",
        (report.task_id, report.task_id, keep_last),
    )


def stored_reports(connection: sqlite3.Connection, task_id: str | None, limit: int) -> list[StoredReport]:
    """Reports, newest first: of one task, or of every task."""
    where, args = ("WHERE task_id = ?", (task_id,)) if task_id is not None else ("", ())
    rows = connection.execute(
        "SELECT task_id, task_name, kind, started_at, finished_at, succeeded, summary, report FROM maintenance_report "
        f"{where} ORDER BY seq DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [
        StoredReport(task_id=t, task_name=n, kind=k, started_at=s, finished_at=f, succeeded=bool(ok), summary=m, report=r)
        for t, n, k, s, f, ok, m, r in rows
    ]

