"""Tasks, their schedules and their execution history in the node's SQLite database.

The scheduler opens its own connection to the index file (WAL lets it write beside the
index actor) and keeps to its own tables, `workflow_*`, with their own schema version in
`workflow_schema` (the index owns `PRAGMA user_version`). Every function here is one
asyncio coroutine = one transaction, run through the node's asyncio portal.

A task row stores the kind's name and JSON parameters, not a callable; the schedule has
a row of its own with typed columns, so the database can be read without this code.
"""

import datetime as dt
import json
import os
from collections.abc import Iterable

import aiosqlite

from ...storage.index_db import transaction
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


async def open_workflow_db(path: str | os.PathLike[str]) -> aiosqlite.Connection:
    """Open the database at `path` (creating it), WAL mode, with our tables migrated."""
    db = await aiosqlite.connect(os.fspath(path), isolation_level=None)
    try:
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.execute("PRAGMA busy_timeout = 5000")
        await _migrate(db)
    except BaseException:
        await db.close()
        raise
    return db


async def _migrate(db: aiosqlite.Connection) -> None:
    async with transaction(db):
        await db.execute("CREATE TABLE IF NOT EXISTS workflow_schema (version INTEGER NOT NULL)")
        rows = await db.execute_fetchall("SELECT version FROM workflow_schema")
        version = rows[0][0] if rows else 0
        if version > SCHEMA_VERSION:
            raise PersistenceError(f"workflow tables are at schema version {version}; this code knows up to {SCHEMA_VERSION}")
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step]:
                await db.execute(statement)
        if not rows:
            await db.execute("INSERT INTO workflow_schema (version) VALUES (?)", (SCHEMA_VERSION,))
        elif version != SCHEMA_VERSION:
            await db.execute("UPDATE workflow_schema SET version = ?", (SCHEMA_VERSION,))


# -- writing --------------------------------------------------------------------------------


def _text(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


_TASK_COLUMNS = (
    "id, name, description, type, kind, params, state, enabled, priority, tags, timeout, max_retries,"
    " retry_delay, created_at, updated_at, next_run_at, last_run_at, last_execution_id, execution_count,"
    " success_count, failure_count, retry_attempt"
)


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


def _upsert_sql(table: str, columns: list[str]) -> str:
    # Not INSERT OR REPLACE: a replace deletes the row first, and the delete would cascade
    # to the task's schedule and history.
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}"


_UPSERT_TASK = _upsert_sql("workflow_task", [c.strip() for c in _TASK_COLUMNS.split(",")])
_UPSERT_SCHEDULE = _upsert_sql("workflow_schedule", ["task_id", "kind", "interval_seconds", "start_at", "cron_expression", "execute_at"])


async def _upsert(db: aiosqlite.Connection, task: ScheduledTask) -> None:
    await db.execute(_UPSERT_TASK, _task_row(task))
    await db.execute(_UPSERT_SCHEDULE, _schedule_row(task.id, task.schedule))


async def _prune(db: aiosqlite.Connection, task_id: str, keep_last: int) -> int:
    cursor = await db.execute(
        "DELETE FROM workflow_execution WHERE task_id = ? AND seq NOT IN"
        " (SELECT seq FROM workflow_execution WHERE task_id = ? ORDER BY seq DESC LIMIT ?)",
        (task_id, task_id, keep_last),
    )
    return cursor.rowcount


async def save_tasks(db: aiosqlite.Connection, tasks: Iterable[ScheduledTask]) -> None:
    async with transaction(db):
        for task in tasks:
            await _upsert(db, task)


async def save_execution(db: aiosqlite.Connection, task: ScheduledTask, record: TaskExecutionRecord, keep_last: int) -> None:
    """The task as the run left it, the run's record, older records pruned: one commit."""
    async with transaction(db):
        await _upsert(db, task)
        await db.execute(
            "INSERT OR IGNORE INTO workflow_execution (execution_id, task_id, attempt, trigger, started_at,"
            " finished_at, state, error_message, duration, timed_out) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.execution_id, record.task_id, record.attempt, record.trigger.value,
                _text(record.started_at), _text(record.finished_at), record.state.value,
                record.error_message, record.duration, int(record.timed_out),
            ),
        )  # fmt: skip
        await _prune(db, task.id, keep_last)


async def clear_history(db: aiosqlite.Connection, task_id: str, keep_last: int) -> int:
    async with transaction(db):
        return await _prune(db, task_id, keep_last)


async def delete_task(db: aiosqlite.Connection, task_id: str) -> None:
    async with transaction(db):
        await db.execute("DELETE FROM workflow_task WHERE id = ?", (task_id,))


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


async def load_all(db: aiosqlite.Connection, history_limit: int) -> tuple[list[ScheduledTask], list[TaskExecutionRecord]]:
    """Every task, and the last `history_limit` executions of each, oldest first."""
    history: dict[str, list[TaskExecutionRecord]] = {}
    records: list[TaskExecutionRecord] = []
    rows = await db.execute_fetchall(
        "SELECT execution_id, task_id, attempt, trigger, started_at, finished_at, state, error_message, duration, timed_out"
        " FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY task_id ORDER BY seq DESC) AS age FROM workflow_execution)"
        " WHERE age <= ? ORDER BY seq",
        (history_limit,),
    )
    for row in rows:
        records.append(_record(row))
        history.setdefault(row[1], []).append(records[-1])
    tasks = []
    task_rows = await db.execute_fetchall(
        f"SELECT {', '.join('t.' + c.strip() for c in _TASK_COLUMNS.split(','))},"
        " s.kind, s.interval_seconds, s.start_at, s.cron_expression, s.execute_at"
        " FROM workflow_task AS t JOIN workflow_schedule AS s ON s.task_id = t.id ORDER BY t.created_at, t.id"
    )
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
