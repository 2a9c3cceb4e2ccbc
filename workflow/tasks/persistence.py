"""Tasks, their schedules and their execution history in the scheduler's SQLite file.

The scheduler owns its database file (the node's is `<data>/scheduler.sqlite`; the
index actor owns `index.sqlite`): one writer per file. Its tables are `workflow_*`,
with their schema version in `workflow_schema`. Every function here is a plain function
of a `sqlite3.Connection` and one transaction; the scheduler runs each on its database
thread in one call.

A task row stores the kind's name and JSON parameters, not a callable; the schedule has
a row of its own with typed columns, so the database can be read without this code.
"""

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterable

from ...storage.sql import connect, in_transaction
from .schedule import CronSchedule, IntervalSchedule, OneTimeSchedule, Schedule
from .types import ExecutionTrigger, ScheduledTask, TaskExecutionRecord, TaskState, TaskType

SCHEMA_VERSION = 1

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE workflow_task (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            type TEXT NOT NULL,
            kind TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL,
            enabled INTEGER NOT NULL,
            priority INTEGER NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',
            timeout REAL NOT NULL,
            max_retries INTEGER NOT NULL,
            retry_delay REAL NOT NULL,
            created_at TEXT,
            updated_at TEXT,
            next_run_at TEXT,
            last_run_at TEXT,
            last_execution_id TEXT,
            execution_count INTEGER NOT NULL DEFAULT 0,
            success_count INTEGER NOT NULL DEFAULT 0,
            failure_count INTEGER NOT NULL DEFAULT 0,
            retry_attempt INTEGER NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE workflow_schedule (
            task_id TEXT PRIMARY KEY REFERENCES workflow_task (id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('interval', 'cron', 'once')),
            interval_seconds REAL,
            start_at TEXT,
            cron_expression TEXT,
            execute_at TEXT
        )
        """,
        """
        CREATE TABLE workflow_execution (
            seq INTEGER PRIMARY KEY,
            execution_id TEXT NOT NULL UNIQUE,
            task_id TEXT NOT NULL REFERENCES workflow_task (id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            trigger TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            state TEXT NOT NULL,
            error_message TEXT,
            duration REAL NOT NULL,
            timed_out INTEGER NOT NULL
        )
        """,
        "CREATE INDEX workflow_execution_by_task ON workflow_execution (task_id, seq)",
    ),
}


class PersistenceError(RuntimeError):
    pass


def open_workflow_db(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open the database at `path` (creating it), WAL mode, with our tables migrated."""
    return connect(path, synchronous="FULL", prepare=lambda connection: in_transaction(connection, _migrate))


def schema_version(connection: sqlite3.Connection, schema: str = "main") -> int:
    """The version of the workflow tables in `schema` (0: there are none)."""
    if not connection.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE name = 'workflow_schema'").fetchone():
        return 0
    row = connection.execute(f"SELECT version FROM {schema}.workflow_schema").fetchone()
    return row[0] if row else 0


def _migrate(connection: sqlite3.Connection) -> None:
    version = schema_version(connection)
    if version > SCHEMA_VERSION:
        raise PersistenceError(f"workflow tables are at schema version {version}; this code knows up to {SCHEMA_VERSION}")
    if version == SCHEMA_VERSION:
        return
    connection.execute("CREATE TABLE IF NOT EXISTS workflow_schema (version INTEGER NOT NULL)")
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for statement in _MIGRATIONS[step]:
            connection.execute(statement)
    connection.execute("DELETE FROM workflow_schema")
    connection.execute("INSERT INTO workflow_schema (version) VALUES (?)", (SCHEMA_VERSION,))


# -- writing --------------------------------------------------------------------------------


def _text(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


TASK_COLUMNS = (
    "id", "name", "description", "type", "kind", "params", "state", "enabled", "priority", "tags", "timeout",
    "max_retries", "retry_delay", "created_at", "updated_at", "next_run_at", "last_run_at", "last_execution_id",
    "execution_count", "success_count", "failure_count", "retry_attempt",
)  # fmt: skip
SCHEDULE_COLUMNS = ("task_id", "kind", "interval_seconds", "start_at", "cron_expression", "execute_at")
EXECUTION_COLUMNS = (  # all but `seq`, the row's place in the history
    "execution_id", "task_id", "attempt", "trigger", "started_at", "finished_at", "state", "error_message",
    "duration", "timed_out",
)  # fmt: skip


def _task_row(task: ScheduledTask) -> tuple:
    return (
        task.id, task.name, task.description, task.type.value, task.kind, json.dumps(task.params),
        task.state.value, int(task.enabled), task.priority, json.dumps(list(task.tags)), task.timeout,
        task.max_retries, task.retry_delay, _text(task.created_at), _text(task.updated_at),
        _text(task.next_run_at), _text(task.last_run_at),
        task.last_execution.execution_id if task.last_execution else None,
        task.execution_count, task.success_count, task.failure_count, task.retry_attempt,
    )  # fmt: skip


def _schedule_row(task_id: str, schedule: Schedule) -> tuple:
    match schedule:
        case IntervalSchedule(interval=interval, start_at=start_at):
            return (task_id, "interval", interval, _text(start_at), None, None)
        case CronSchedule():
            return (task_id, "cron", None, None, schedule.to_string(), None)
        case OneTimeSchedule(execute_at=execute_at):
            return (task_id, "once", None, None, None, _text(execute_at))
    raise TypeError(f"not a schedule: {schedule!r}")


def _upsert_sql(table: str, columns: tuple[str, ...]) -> str:
    # Not INSERT OR REPLACE: a replace deletes the row first, and the delete would cascade
    # to the task's schedule and history.
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}"


_UPSERT_TASK = _upsert_sql("workflow_task", TASK_COLUMNS)
_UPSERT_SCHEDULE = _upsert_sql("workflow_schedule", SCHEDULE_COLUMNS)
_INSERT_EXECUTION = (
    f"INSERT OR IGNORE INTO workflow_execution ({', '.join(EXECUTION_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(EXECUTION_COLUMNS))})"
)


def _upsert(connection: sqlite3.Connection, task: ScheduledTask) -> None:
    connection.execute(_UPSERT_TASK, _task_row(task))
    connection.execute(_UPSERT_SCHEDULE, _schedule_row(task.id, task.schedule))


def _prune(connection: sqlite3.Connection, task_id: str, keep_last: int) -> int:
    return connection.execute(
        "DELETE FROM workflow_execution WHERE task_id = ? AND seq NOT IN"
        " (SELECT seq FROM workflow_execution WHERE task_id = ? ORDER BY seq DESC LIMIT ?)",
        (task_id, task_id, keep_last),
    ).rowcount


def save_tasks(connection: sqlite3.Connection, tasks: Iterable[ScheduledTask]) -> None:
    def save(connection: sqlite3.Connection) -> None:
        for task in tasks:
            _upsert(connection, task)

    in_transaction(connection, save)


def save_execution(connection: sqlite3.Connection, task: ScheduledTask, record: TaskExecutionRecord, keep_last: int) -> None:
    """The task as the run left it, the run's record, older records pruned: one commit."""

    def save(connection: sqlite3.Connection) -> None:
        _upsert(connection, task)
        connection.execute(
            _INSERT_EXECUTION,
            (
                record.execution_id, record.task_id, record.attempt, record.trigger.value,
                _text(record.started_at), _text(record.finished_at), record.state.value,
                record.error_message, record.duration, int(record.timed_out),
            ),
        )  # fmt: skip
        _prune(connection, task.id, keep_last)

    in_transaction(connection, save)


def clear_history(connection: sqlite3.Connection, task_id: str, keep_last: int) -> int:
    return in_transaction(connection, _prune, task_id, keep_last)


def delete_task(connection: sqlite3.Connection, task_id: str) -> None:
    in_transaction(connection, lambda c: c.execute("DELETE FROM workflow_task WHERE id = ?", (task_id,)))


# -- reading --------------------------------------------------------------------------------


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text is not None else None


def _schedule(kind: str, interval: float | None, start_at: str | None, expression: str | None, execute_at: str | None) -> Schedule:
    if kind == "interval":
        return IntervalSchedule(interval=interval, start_at=_time(start_at))  # type: ignore[arg-type]
    if kind == "cron":
        return CronSchedule.parse(expression or "")
    return OneTimeSchedule(execute_at=_time(execute_at))  # type: ignore[arg-type]


def _record(row: tuple) -> TaskExecutionRecord:
    execution_id, task_id, attempt, trigger, started, finished, state, error, duration, timed_out = row
    return TaskExecutionRecord(
        execution_id=execution_id, task_id=task_id, attempt=attempt, trigger=ExecutionTrigger(trigger),
        started_at=_time(started), finished_at=_time(finished), state=TaskState(state),
        error_message=error, duration=duration, timed_out=bool(timed_out),
    )  # fmt: skip


def load_all(connection: sqlite3.Connection, history_limit: int) -> tuple[list[ScheduledTask], list[TaskExecutionRecord]]:
    """Every task, and the last `history_limit` executions of each, oldest first."""
    history: dict[str, list[TaskExecutionRecord]] = {}
    records: list[TaskExecutionRecord] = []
    rows = connection.execute(
        f"SELECT {', '.join(EXECUTION_COLUMNS)}"
        " FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY task_id ORDER BY seq DESC) AS age FROM workflow_execution)"
        " WHERE age <= ? ORDER BY seq",
        (history_limit,),
    ).fetchall()
    for row in rows:
        records.append(_record(row))
        history.setdefault(row[1], []).append(records[-1])
    tasks = []
    task_rows = connection.execute(
        f"SELECT {', '.join('t.' + c for c in TASK_COLUMNS)},"
        " s.kind, s.interval_seconds, s.start_at, s.cron_expression, s.execute_at"
        " FROM workflow_task AS t JOIN workflow_schedule AS s ON s.task_id = t.id ORDER BY t.created_at, t.id"
    ).fetchall()
    for row in task_rows:
        (task_id, name, description, type_, kind, params, state, enabled, priority, tags, timeout, max_retries,
         retry_delay, created, updated, next_run, last_run, last_execution_id, executions, successes, failures,
         retry_attempt, schedule_kind, interval, start_at, expression, execute_at) = row  # fmt: skip
        last = next((r for r in reversed(history.get(task_id, [])) if r.execution_id == last_execution_id), None)
        tasks.append(
            ScheduledTask(
                id=task_id, name=name, description=description, type=TaskType(type_), kind=kind,
                params=json.loads(params), state=TaskState(state), enabled=bool(enabled), priority=priority,
                tags=tuple(json.loads(tags)), timeout=timeout, max_retries=max_retries, retry_delay=retry_delay,
                created_at=_time(created), updated_at=_time(updated), next_run_at=_time(next_run),
                last_run_at=_time(last_run), last_execution=last, execution_count=executions,
                success_count=successes, failure_count=failures, retry_attempt=retry_attempt,
                schedule=_schedule(schedule_kind, interval, start_at, expression, execute_at),
            )
        )  # fmt: skip
    return tasks, records
