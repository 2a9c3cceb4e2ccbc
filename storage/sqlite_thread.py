"""Running a whole piece of SQLite work on an aiosqlite connection's own thread.

aiosqlite moves every statement to its connection thread and back: six statements are
six round trips between threads. For a transaction we run one plain function taking the
`sqlite3.Connection` there instead - one round trip, whatever the statements.

aiosqlite has no public call for this; all its public methods go through
`Connection._execute(fn, *args)`, and so do we. This module is the only place that
knows, so an aiosqlite change lands here alone.
"""

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")


async def run_in_connection(db: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """`fn(connection, *args)` on the connection's thread; its result or its exception."""

    def call() -> T:
        connection: sqlite3.Connection = db._conn  # noqa: SLF001 - see the module docstring
        return fn(connection, *args)

    return await db._execute(call)  # noqa: SLF001


def in_transaction(connection: sqlite3.Connection, work: Callable[..., T], *args: Any) -> T:
    """BEGIN IMMEDIATE; work; COMMIT - or ROLLBACK on any error (the connection is in autocommit mode)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection, *args)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result
