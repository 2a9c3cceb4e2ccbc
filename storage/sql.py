"""What every SQLite database of the node shares: how it is opened, transactions, and
long value lists cut into IN (...) lists SQLite accepts.

Storage functions are plain synchronous functions of a `sqlite3.Connection`: tests call
them directly, and the actor that owns a database runs them on its database thread
(actors/runtime/database_thread.py), one call per request.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
V = TypeVar("V")

# Values per IN (...) list: far below SQLite's limit on variables in one statement.
MAX_LIST = 500

DURABLE_SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")


def connect(
    path: str | os.PathLike[str], *, synchronous: str = "FULL", prepare: Callable[[sqlite3.Connection], Any] | None = None
) -> sqlite3.Connection:
    """A connection in autocommit mode (our transactions are explicit), WAL, foreign keys
    on, waiting up to 5 s for a lock another process holds; `prepare(connection)` then
    (say, migrating the schema) - the connection is closed if anything fails."""
    level = synchronous.upper()
    if level not in DURABLE_SYNCHRONOUS:
        raise ValueError(f"synchronous={synchronous!r} would acknowledge writes that are not durable")
    connection = sqlite3.connect(os.fspath(path), isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {level}")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA busy_timeout = 5000")
        if prepare is not None:
            prepare(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def in_transaction(connection: sqlite3.Connection, work: Callable[..., T], *args: Any) -> T:
    """BEGIN IMMEDIATE; work(connection, *args); COMMIT - or ROLLBACK on any error.

    IMMEDIATE takes the write lock up front, so a writer never fails upgrading a read
    lock half way. An error that SQLite already answered with a rollback of its own
    (an interrupt, a full disk) leaves no transaction to roll back: the error stands."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection, *args)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return result


def chunks(values: Sequence[V], size: int = MAX_LIST) -> Iterator[Sequence[V]]:
    """`values` in slices of at most `size`, for one IN (...) list each."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def marks(count: int) -> str:
    """`count` placeholders for an IN (...) list: "?,?,?"."""
    return ",".join("?" * count)


def select_in(connection: sqlite3.Connection, sql: str, values: Sequence[object]) -> list[tuple]:
    """Run `sql` (with one ``IN ({})`` placeholder) over `values` in lists SQLite accepts."""
    rows: list[tuple] = []
    for chunk in chunks(values):
        rows.extend(connection.execute(sql.format(marks(len(chunk))), tuple(chunk)).fetchall())
    return rows
