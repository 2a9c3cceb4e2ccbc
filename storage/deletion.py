"""Crash-safe deletion of studies: index rows and files never disagree after a restart.

SQLite and the file system cannot share a transaction, so a study is deleted in three
steps, ordered so that any crash leaves something the next start can finish:

1. retire (one transaction): the study's instance rows are deleted (the schema's
   triggers prune the emptied series, study and patient) and every file they named is
   written to the `file_deletion` journal. From this commit on no query sees the study,
   and its files belong to the journal.
2. remove: the hot tier, owner of the files, unlinks them (`RemoveObjects`,
   storage/local_store.py), fsyncs their directories (so a power cut cannot bring a
   file back once its entry is gone) and removes emptied folders.
3. forget (one transaction): the entries of the removed files are dropped.

A crash before step 1 commits changes nothing. After it, the remaining files are listed
by `pending_deletions`, and the index actor finishes them when it next opens the index,
before it serves anyone. Unlinking a file that is already gone is no error, so finishing
twice is harmless. So there is never an index row without its file, and a file without
a row is in the journal until it is gone.

A journaled file is removed only if no row names that path by then: the same SOP
instance stored again after its study was retired (same path in the UID layout) keeps
its new file.

With `keep_files` (cleanup's database_only) step 1 records the files in `released_file`
instead: out of the index, left on disk, and known to verification as released rather
than orphaned.

The SQL functions take a plain `sqlite3.Connection`; the index actor runs steps 1 and 3
on its database thread in one call each, and asks the hot tier for step 2.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from .files import fsync_directory
from .sql import chunks, marks

_STUDY_INSTANCES = (
    "SELECT se.pk FROM series se JOIN study st ON st.pk = se.study_pk WHERE st.study_instance_uid = ?"
)


@attrs.frozen(kw_only=True)
class RetiredStudy:
    """What step 1 did to one study. `retired` is False when nothing was deleted, and
    `reason` says why (gone already, stored into since it was chosen, ...)."""

    study_instance_uid: str
    retired: bool
    instances: int = 0
    bytes: int = 0
    paths: tuple[str, ...] = ()  # journaled for removal (released instead with keep_files)
    reason: str = ""


def retire_study(
    connection: sqlite3.Connection, study_uid: str, stored_before: float | None, keep_files: bool, now: float
) -> RetiredStudy:
    """Step 1 for one study, inside the caller's transaction (sql.in_transaction).

    `stored_before`: delete only if no instance of the study arrived at or after this
    time (the cleanup's cutoff, checked again here because a store may have come in
    since the study was chosen)."""
    last_stored, count, foreign = connection.execute(
        "SELECT max(i.stored_at), count(*), coalesce(sum(i.tier != 'local'), 0) FROM instance i "
        f"WHERE i.series_pk IN ({_STUDY_INSTANCES})",
        (study_uid,),
    ).fetchone()
    if count == 0:
        return RetiredStudy(study_instance_uid=study_uid, retired=False, reason="not in the index")
    if stored_before is not None and last_stored >= stored_before:
        return RetiredStudy(study_instance_uid=study_uid, retired=False, reason="instances arrived since it was chosen")
    if foreign:
        # Their files live in another tier, which this module cannot remove them from.
        return RetiredStudy(study_instance_uid=study_uid, retired=False, reason=f"{foreign} instances are in another storage tier")
    rows = connection.execute(
        f"DELETE FROM instance WHERE series_pk IN ({_STUDY_INSTANCES}) RETURNING sop_instance_uid, file_path, file_size",
        (study_uid,),
    ).fetchall()
    if keep_files:
        connection.executemany(
            "INSERT OR REPLACE INTO released_file (file_path, sop_instance_uid, study_instance_uid, released_at) VALUES (?, ?, ?, ?)",
            [(path, sop, study_uid, now) for sop, path, _ in rows],
        )
    else:
        journal(connection, [(path, sop) for sop, path, _ in rows], now)
    return RetiredStudy(
        study_instance_uid=study_uid,
        retired=True,
        instances=len(rows),
        bytes=sum(size for *_, size in rows),
        paths=() if keep_files else tuple(path for _, path, _ in rows),
    )


def journal(connection: sqlite3.Connection, files: Iterable[tuple[str, str]], now: float) -> None:
    """Put (file_path, sop_instance_uid) pairs in the deletion journal."""
    connection.executemany(
        "INSERT OR REPLACE INTO file_deletion (file_path, sop_instance_uid, queued_at) VALUES (?, ?, ?)",
        [(path, sop, now) for path, sop in files],
    )


@attrs.frozen
class PendingDeletions:
    remove: tuple[str, ...]  # journaled files no row uses: remove them
    in_use: tuple[str, ...]  # journaled paths a row names again: keep the file, drop the entry


def pending_deletions(connection: sqlite3.Connection, paths: Sequence[str] | None = None) -> PendingDeletions:
    """The journal (or the given entries of it), split by whether a row uses the path now."""
    query = (
        "SELECT d.file_path, EXISTS (SELECT 1 FROM instance i WHERE i.file_path = d.file_path) FROM file_deletion d"
    )
    if paths is None:
        rows = connection.execute(query).fetchall()
    else:
        rows = []
        for chunk in chunks(list(paths)):
            rows += connection.execute(f"{query} WHERE d.file_path IN ({marks(len(chunk))})", chunk).fetchall()
    return PendingDeletions(
        remove=tuple(sorted(path for path, used in rows if not used)),
        in_use=tuple(sorted(path for path, used in rows if used)),
    )


def forget_deletions(connection: sqlite3.Connection, paths: Sequence[str]) -> int:
    """Step 3: drop journal entries (inside the caller's transaction)."""
    forgotten = 0
    for chunk in chunks(list(paths)):
        forgotten += connection.execute(f"DELETE FROM file_deletion WHERE file_path IN ({marks(len(chunk))})", chunk).rowcount
    return forgotten


@attrs.frozen
class Removal:
    done: tuple[str, ...]  # removed, or already gone: their entries may be forgotten
    failed: tuple[tuple[str, str], ...]  # (path, why): they stay journaled for the next try


def remove_empty_folders(folder: Path, stop: Path) -> None:
    """rmdir `folder` and its parents while they are empty, up to (not including) `stop`."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (a store is writing there), or already gone
            return
        fsync_directory(folder.parent)
        folder = folder.parent

