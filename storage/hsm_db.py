"""The index's side of hierarchical storage: which instances are due to move, the
migration journal, switching an instance's row to another tier, access times, and per
tier usage. Plain functions of a sqlite3 connection (see sql.py); the index actor runs
each as one call, writes in one transaction.

The journal makes a move crash-safe (the migration service, workflow/migration.py, drives it):

1. `begin_migration`: a journal row (state `copying`) names source and target.
2. The bytes are copied to the target tier and checked.
3. `switch_tier`: in ONE transaction the instance row moves to the target (only if it
   still names the source with the same SHA-256: a C-STORE may have replaced it
   meanwhile) and the journal row becomes `switched`, or `abandoned` if it did not.
4. The now-unused copy is deleted (the source after a switch when
   delete_after_migration, else the target), then `end_migration` drops the row.

At any crash the row says what to do: `copying` -> the index still names the source,
delete the target; `switched` -> delete the source (when asked to); `abandoned` ->
delete the target. An instance always has a readable copy the index names.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import attrs

from .sql import chunks, marks

COPYING = "copying"
SWITCHED = "switched"
ABANDONED = "abandoned"

JOURNAL_TABLE = (
    """
    CREATE TABLE migration_journal (
        sop_instance_uid TEXT PRIMARY KEY,
        study_instance_uid TEXT NOT NULL,
        source_tier TEXT NOT NULL,
        source_key TEXT NOT NULL,
        target_tier TEXT NOT NULL,
        target_key TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        delete_source INTEGER NOT NULL,
        state TEXT NOT NULL,
        started_at REAL NOT NULL
    )
    """,
    "CREATE INDEX migration_journal_by_target ON migration_journal (target_tier, target_key)",
)


@attrs.frozen(kw_only=True)
class Placement:
    """One instance where the index says it is."""

    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    tier: str
    key: str
    size: int
    sha256: str
    last_accessed: float


@attrs.frozen(kw_only=True)
class Move:
    """One instance moving from one tier to another (a journal row)."""

    sop_instance_uid: str
    study_instance_uid: str
    source_tier: str
    source_key: str
    target_tier: str
    target_key: str
    size: int
    sha256: str
    delete_source: bool = True
    state: str = COPYING


@attrs.frozen(kw_only=True)
class TierUsage:
    tier: str
    instances: int
    bytes: int


_PLACEMENT = (
    "SELECT i.sop_instance_uid, st.study_instance_uid, se.series_instance_uid, i.tier, i.file_path, i.file_size, "
    "i.sha256, i.last_accessed FROM instance i JOIN series se ON se.pk = i.series_pk JOIN study st ON st.pk = se.study_pk "
)


def _placement(row) -> Placement:
    return Placement(
        sop_instance_uid=row[0], study_instance_uid=row[1], series_instance_uid=row[2], tier=row[3],
        key=row[4], size=row[5], sha256=row[6], last_accessed=row[7],
    )


def migration_candidates(
    connection: sqlite3.Connection, tier: str, accessed_before: float, min_size: int, limit: int
) -> list[Placement]:
    """Instances of `tier` not accessed since `accessed_before`, of at least `min_size`
    bytes, least recently accessed first, none already in the journal."""
    rows = connection.execute(
        _PLACEMENT + "WHERE i.tier = ? AND i.last_accessed < ? AND i.file_size >= ? "
        "AND NOT EXISTS (SELECT 1 FROM migration_journal j WHERE j.sop_instance_uid = i.sop_instance_uid) "
        "ORDER BY i.last_accessed, i.pk LIMIT ?",
        (tier, accessed_before, min_size, limit),
    ).fetchall()
    return [_placement(row) for row in rows]


def study_placements(connection: sqlite3.Connection, study_instance_uid: str) -> list[Placement]:
    """Every instance of a study, where it is, in series/instance order."""
    rows = connection.execute(_PLACEMENT + "WHERE st.study_instance_uid = ? ORDER BY se.pk, i.instance_number, i.pk", (study_instance_uid,))
    return [_placement(row) for row in rows]


def placements(connection: sqlite3.Connection, sop_instance_uids: Sequence[str]) -> dict[str, Placement]:
    found: dict[str, Placement] = {}
    for chunk in chunks(list(sop_instance_uids)):
        for row in connection.execute(_PLACEMENT + f"WHERE i.sop_instance_uid IN ({marks(len(chunk))})", chunk):
            found[row[0]] = _placement(row)
    return found


def begin_migration(connection: sqlite3.Connection, moves: Sequence[Move], now: float) -> None:
    """Journal a batch of moves (state copying), in the caller's transaction."""
    connection.executemany(
        "INSERT INTO migration_journal (sop_instance_uid, study_instance_uid, source_tier, source_key, target_tier, "
        "target_key, size, sha256, delete_source, state, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                move.sop_instance_uid, move.study_instance_uid, move.source_tier, move.source_key, move.target_tier,
                move.target_key, move.size, move.sha256, int(move.delete_source), COPYING, now,
            )
            for move in moves
        ],
    )


def switch_tier(connection: sqlite3.Connection, moves: Sequence[Move]) -> list[str]:
    """Point each instance at its copy in the target tier, if its row still names the
    source (same key, same SHA-256); the journal rows say which happened. In one
    transaction (the caller's). Returns the SOP Instance UIDs switched."""
    switched = []
    for move in moves:
        done = connection.execute(
            "UPDATE instance SET tier = ?, file_path = ? WHERE sop_instance_uid = ? AND tier = ? AND file_path = ? AND sha256 = ?",
            (move.target_tier, move.target_key, move.sop_instance_uid, move.source_tier, move.source_key, move.sha256),
        ).rowcount == 1
        connection.execute(
            "UPDATE migration_journal SET state = ? WHERE sop_instance_uid = ?",
            (SWITCHED if done else ABANDONED, move.sop_instance_uid),
        )
        if done:
            switched.append(move.sop_instance_uid)
    return switched


def end_migration(connection: sqlite3.Connection, sop_instance_uids: Sequence[str]) -> int:
    ended = 0
    for chunk in chunks(list(sop_instance_uids)):
        ended += connection.execute(f"DELETE FROM migration_journal WHERE sop_instance_uid IN ({marks(len(chunk))})", chunk).rowcount
    return ended


def journal_entries(connection: sqlite3.Connection) -> list[Move]:
    rows = connection.execute(
        "SELECT sop_instance_uid, study_instance_uid, source_tier, source_key, target_tier, target_key, size, sha256, "
        "delete_source, state FROM migration_journal ORDER BY started_at"
    ).fetchall()
    return [
        Move(
            sop_instance_uid=r[0], study_instance_uid=r[1], source_tier=r[2], source_key=r[3], target_tier=r[4],
            target_key=r[5], size=r[6], sha256=r[7], delete_source=bool(r[8]), state=r[9],
        )
        for r in rows
    ]


def known_keys(connection: sqlite3.Connection, tier: str, keys: Sequence[str], journal: bool = True) -> set[str]:
    """Which of `keys` in `tier` an instance row (or, with `journal`, a journal row)
    names; the rest are strays."""
    known: set[str] = set()
    for chunk in chunks(list(keys)):
        listed = marks(len(chunk))
        query = f"SELECT file_path FROM instance WHERE tier = ? AND file_path IN ({listed})"
        params: list[str] = [tier, *chunk]
        if journal:
            query += (
                f" UNION SELECT target_key FROM migration_journal WHERE target_tier = ? AND target_key IN ({listed})"
                f" UNION SELECT source_key FROM migration_journal WHERE source_tier = ? AND source_key IN ({listed})"
            )
            params += [tier, *chunk, tier, *chunk]
        known.update(row[0] for row in connection.execute(query, params))
    return known


def tier_usage(connection: sqlite3.Connection) -> list[TierUsage]:
    rows = connection.execute("SELECT tier, count(*), coalesce(sum(file_size), 0) FROM instance GROUP BY tier ORDER BY tier")
    return [TierUsage(tier=r[0], instances=r[1], bytes=r[2]) for r in rows]


def touch_instances(connection: sqlite3.Connection, sop_instance_uids: Sequence[str], now: float) -> int:
    """Record an access (a retrieve) of these instances at `now`."""
    touched = 0
    for chunk in chunks(list(sop_instance_uids)):
        touched += connection.execute(
            f"UPDATE instance SET last_accessed = ? WHERE sop_instance_uid IN ({marks(len(chunk))})", (now, *chunk)
        ).rowcount
    return touched
