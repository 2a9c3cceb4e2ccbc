"""Tasks, schedules and history survive a restart of the scheduler on the same SQLite file;
unknown kinds come back orphaned; runs cut short by a stop run again."""

import datetime as dt
import sqlite3

import pytest
import trio

from triopacs.actors import ActorSystem
from triopacs.workflow import (
    CronSchedule,
    GetExecutionHistory,
    GetTask,
    IntervalSchedule,
    ListTasks,
    OneTimeSchedule,
    PauseTask,
    ResumeTask,
    ScheduleTask,
    TaskOrphaned,
    TaskState,
    TriggerTask,
    UnknownTaskKind,
)
from triopacs.workflow.tasks.persistence import SCHEMA_VERSION, PersistenceError, open_workflow_db

from .scheduler_support import START, Recorder, next_event, scheduler_node, wall_now


async def test_tasks_schedules_and_history_come_back_after_a_restart(autojump_clock, tmp_path):
    database = str(tmp_path / "scheduler.sqlite")
    recorder = Recorder()
    async with scheduler_node(recorder.kinds, database) as scheduler:
        every = await scheduler.ask(
            ScheduleTask(name="every", kind="note", schedule=IntervalSchedule(interval=600), params={"name": "every"},
                         priority=3, tags=("maintenance", "db"), timeout=30, max_retries=2, retry_delay=5)
        )  # fmt: skip
        nightly = await scheduler.ask(
            ScheduleTask(name="nightly", kind="fail", schedule=CronSchedule.parse("30 2 * * mon-fri"), params={"name": "nightly"})
        )
        later = await scheduler.ask(
            ScheduleTask(name="later", kind="note", schedule=OneTimeSchedule(execute_at=START + dt.timedelta(days=30)), params={"name": "later"})
        )
        await trio.sleep(1900)  # 'every' runs at 600, 1200, 1800
        await scheduler.ask(PauseTask(task_id=nightly.id))
        before = {t.id: t for t in (await scheduler.ask(ListTasks())).tasks}
        history_before = (await scheduler.ask(GetExecutionHistory(task_id=every.id))).records
    assert recorder.times("every") == [600, 1200, 1800]

    await trio.sleep(250)  # the node is down; nothing runs
    async with scheduler_node(recorder.kinds, database) as scheduler:
        after = {t.id: t for t in (await scheduler.ask(ListTasks())).tasks}
        assert after == before  # every field, schedules and last executions included
        assert after[every.id].tags == ("db", "maintenance") and after[every.id].schedule.start_at == START + dt.timedelta(seconds=600)
        assert after[nightly.id].state is TaskState.PAUSED and after[later.id].state is TaskState.PENDING
        assert (await scheduler.ask(GetExecutionHistory(task_id=every.id))).records == history_before
        await trio.sleep(260)  # the grid goes on: 2400
        assert recorder.times("every") == [600, 1200, 1800, 2400]
        assert (await scheduler.ask(GetTask(task_id=every.id))).execution_count == 4


async def test_a_missed_run_happens_once_when_the_scheduler_is_back(autojump_clock, tmp_path):
    database = str(tmp_path / "scheduler.sqlite")
    recorder = Recorder()
    async with scheduler_node(recorder.kinds, database) as scheduler:
        hourly = await scheduler.ask(ScheduleTask(name="hourly", kind="note", schedule=IntervalSchedule(interval=3600)))
    await trio.sleep(5 * 3600)  # down for five hours: four runs missed
    async with scheduler_node(recorder.kinds, database) as scheduler:
        await trio.sleep(1)
        assert recorder.times("hourly") == [5 * 3600]  # caught up once, at start
        task = await scheduler.ask(GetTask(task_id=hourly.id))
        assert task.next_run_at == START + dt.timedelta(hours=6)


async def test_a_run_cut_short_by_a_stop_runs_again_after_the_restart(autojump_clock, tmp_path):
    database = str(tmp_path / "scheduler.sqlite")
    recorder = Recorder()
    async with scheduler_node(recorder.kinds, database) as scheduler:
        long = await scheduler.ask(ScheduleTask(name="long", kind="sleep", schedule=CronSchedule.daily_at(13), params={"seconds": 600}))
        await trio.sleep(3700)  # started at 13:00 (3600 s), still running
    assert recorder.cleaned_up == ["long"]
    async with scheduler_node(recorder.kinds, database) as scheduler:
        await trio.sleep(1)
        assert recorder.times("long") == [3600, 3700]
        history = (await scheduler.ask(GetExecutionHistory(task_id=long.id))).records
        assert history[0].state is TaskState.CANCELLED and "interrupted" in history[0].error_message


async def test_an_unknown_kind_is_restored_as_orphaned_not_fatal(autojump_clock, tmp_path):
    database = str(tmp_path / "scheduler.sqlite")
    recorder = Recorder()
    recorder.kinds.register("report", recorder.note)
    async with scheduler_node(recorder.kinds, database) as scheduler:
        report = await scheduler.ask(ScheduleTask(name="report", kind="report", schedule=CronSchedule.daily_at(18)))
        await scheduler.ask(ScheduleTask(name="other", kind="note", schedule=CronSchedule.daily_at(19)))
    recorder.kinds.unregister("report")  # the application that registered it is not loaded

    system = ActorSystem()
    with system.bus.subscribe(TaskOrphaned) as orphans:
        async with scheduler_node(recorder.kinds, database, system=system) as scheduler:
            event = await next_event(orphans, TaskOrphaned)
            assert (event.task_id, event.kind) == (report.id, "report")
            orphan = await scheduler.ask(GetTask(task_id=report.id))
            assert orphan.state is TaskState.ORPHANED
            assert len((await scheduler.ask(ListTasks(state=TaskState.PENDING))).tasks) == 1
            with pytest.raises(UnknownTaskKind):
                await scheduler.ask(TriggerTask(task_id=report.id))
            with pytest.raises(UnknownTaskKind):
                await scheduler.ask(ResumeTask(task_id=report.id))
            await trio.sleep(8 * 3600)  # 18:00 passes: nothing runs, nothing crashes
            recorder.kinds.register("report", recorder.note)
            resumed = await scheduler.ask(ResumeTask(task_id=report.id))
            assert resumed.state is TaskState.PENDING and resumed.next_run_at == START + dt.timedelta(days=1, hours=6)
    # Registered again before a start, an orphan simply comes back.
    async with scheduler_node(recorder.kinds, database) as scheduler:
        assert (await scheduler.ask(GetTask(task_id=report.id))).state is TaskState.PENDING


def test_its_own_file_with_a_schema_version(tmp_path):
    database = tmp_path / "scheduler.sqlite"
    open_workflow_db(database).close()
    with sqlite3.connect(database) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"workflow_task", "workflow_schedule", "workflow_execution", "workflow_schema"}
        assert db.execute("SELECT version FROM workflow_schema").fetchall() == [(SCHEMA_VERSION,)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.execute("UPDATE workflow_schema SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(PersistenceError, match="schema version"):
        open_workflow_db(database)


async def test_a_database_too_new_stops_the_scheduler_from_starting(autojump_clock, tmp_path):
    database = tmp_path / "scheduler.sqlite"
    open_workflow_db(database).close()
    with sqlite3.connect(database) as db:
        db.execute("UPDATE workflow_schema SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(PersistenceError, match="schema version"):
        async with scheduler_node(Recorder().kinds, str(database)):
            pass
