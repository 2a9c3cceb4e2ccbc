"""Moving the scheduler's tables out of the index file, once, when a node starts.

Older nodes kept the scheduler's `workflow_*` tables inside `<data>/index.sqlite`,
writing that file beside the index actor. Now each database has one writer, and the
scheduler has its own file. `move_out_of_index` carries an old node's tasks, schedules
and history over before any actor opens either file:

1. copy (one transaction in the scheduler's file): rows it does not have yet - a task
   or schedule by its id, an execution by its execution id, history in its old order;
2. drop (one transaction in the index file): the `workflow_*` tables.

A crash between the two leaves the tables in both files; the next start copies nothing
new (every row is there already) and drops them. An index without the tables is only
read, never written.
"""

import os
import sqlite3
from pathlib import Path

from ...storage.sql import connect, in_transaction
from .persistence import (
    EXECUTION_COLUMNS,
    SCHEDULE_COLUMNS,
    SCHEMA_VERSION,
    TASK_COLUMNS,
    PersistenceError,
    open_workflow_db,
    schema_version,
)

# Children first: dropping a parent would first delete its rows through the cascade.
LEGACY_TABLES = ("workflow_execution", "workflow_schedule", "workflow_task", "workflow_schema")


def has_legacy_tables(index_path: str | os.PathLike[str]) -> bool:
    """Whether the index file holds the scheduler's old tables (reading it only)."""
    if not Path(index_path).exists():
        return False
    uri = Path(index_path).resolve().as_uri() + "?mode=ro"
    connection = sqlite3.connect(uri, uri=True)
    try:
        found = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'workflow_task'").fetchone()
    finally:
        connection.close()
    return found is not None


def move_out_of_index(index_path: str | os.PathLike[str], scheduler_path: str | os.PathLike[str]) -> int:
    """Move the scheduler's tables from the index file into its own; how many tasks the
    index file held (0 when it had none, and then nothing is written)."""
    if not has_legacy_tables(index_path):
        return 0
    scheduler = open_workflow_db(scheduler_path)
    try:
        scheduler.execute("ATTACH DATABASE ? AS legacy", (os.fspath(index_path),))
        try:
            tasks = in_transaction(scheduler, _copy_legacy_rows)
        finally:
            scheduler.execute("DETACH DATABASE legacy")
    finally:
        scheduler.close()
    index = connect(index_path)
    try:
        in_transaction(index, _drop_legacy_tables)
    finally:
        index.close()
    return tasks


def _copy_legacy_rows(connection: sqlite3.Connection) -> int:
    version = schema_version(connection, "legacy")
    if version != SCHEMA_VERSION:
        raise PersistenceError(
            f"the workflow tables in the index file are at schema version {version}; this code moves version {SCHEMA_VERSION}"
        )
    for table, columns, order in (
        ("workflow_task", TASK_COLUMNS, "rowid"),
        ("workflow_schedule", SCHEDULE_COLUMNS, "rowid"),
        ("workflow_execution", EXECUTION_COLUMNS, "seq"),  # a new seq each, in the old order
    ):
        listed = ", ".join(columns)
        connection.execute(f"INSERT OR IGNORE INTO main.{table} ({listed}) SELECT {listed} FROM legacy.{table} ORDER BY {order}")
    (tasks,) = connection.execute("SELECT count(*) FROM legacy.workflow_task").fetchone()
    return tasks


def _drop_legacy_tables(connection: sqlite3.Connection) -> None:
    for table in LEGACY_TABLES:
        connection.execute(f"DROP TABLE IF EXISTS {table}")
