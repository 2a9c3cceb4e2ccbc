"""One writer per database file: the scheduler keeps its tasks in its own file, and an
older node's tasks, kept inside index.sqlite, move there once - nothing lost, nothing
doubled, even when a crash cuts the move in two."""

import shutil
import sqlite3
from contextlib import closing

import pytest
import trio
from node.nodes import running_node

from triopacs.storage.index_db import open_index
from triopacs.workflow import GetExecutionHistory, IntervalSchedule, ListTasks, ScheduleTask, TaskState
from triopacs.workflow.tasks.legacy_index import LEGACY_TABLES, has_legacy_tables, move_out_of_index

from .scheduler_support import Recorder, scheduler_node

WORKFLOW_TABLES = set(LEGACY_TABLES)


def tables(database) -> set[str]:
    with closing(sqlite3.connect(database)) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def count(database, table: str) -> int:
    with closing(sqlite3.connect(database)) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def an_index_of_its_own(path) -> None:
    """An index file with a row of the index's own, to see that the move leaves it be."""
    with closing(open_index(path)) as db:
        db.execute(
            "INSERT INTO maintenance_report (task_id, kind, started_at, finished_at, succeeded) VALUES ('t', 'cleanup', 1, 2, 1)"
        )


async def old_layout_with_history(index, recorder):
    """What a node before issue 13 left: the scheduler's tables inside the index file.
    Returns its tasks and the history of the task that ran."""
    an_index_of_its_own(index)
    async with scheduler_node(recorder.kinds, str(index)) as scheduler:
        every = await scheduler.ask(ScheduleTask(name="every", kind="note", schedule=IntervalSchedule(interval=600)))
        await scheduler.ask(ScheduleTask(name="hourly", kind="note", schedule=IntervalSchedule(interval=3600)))
        await trio.sleep(1900)  # 'every' runs at 600, 1200 and 1800
        tasks = {t.id: t for t in (await scheduler.ask(ListTasks())).tasks}
        history = (await scheduler.ask(GetExecutionHistory(task_id=every.id))).records
    assert len(history) == 3 and WORKFLOW_TABLES <= tables(index)
    return tasks, every.id, history


async def test_tasks_and_history_move_to_the_schedulers_own_file(autojump_clock, tmp_path):
    index, own = tmp_path / "index.sqlite", tmp_path / "scheduler.sqlite"
    recorder = Recorder()
    tasks, every, history = await old_layout_with_history(index, recorder)

    assert move_out_of_index(index, own) == 2
    assert not tables(index) & WORKFLOW_TABLES
    assert {"patient", "study", "series", "instance", "maintenance_report"} <= tables(index)
    assert count(index, "maintenance_report") == 1
    async with scheduler_node(recorder.kinds, str(own)) as scheduler:
        assert {t.id: t for t in (await scheduler.ask(ListTasks())).tasks} == tasks
        assert (await scheduler.ask(GetExecutionHistory(task_id=every))).records == history
        await trio.sleep(510)  # the grid goes on from the moved state: 2400
        assert recorder.times("every") == [600, 1200, 1800, 2400]


async def test_a_crash_between_copy_and_drop_neither_loses_nor_doubles(autojump_clock, tmp_path):
    index, own, saved = tmp_path / "index.sqlite", tmp_path / "scheduler.sqlite", tmp_path / "saved.sqlite"
    await old_layout_with_history(index, Recorder())
    assert not index.with_name("index.sqlite-wal").exists()  # every connection closed: one file holds it all
    shutil.copy(index, saved)

    assert move_out_of_index(index, own) == 2
    executions = count(own, "workflow_execution")
    shutil.copy(saved, index)  # as if the drop had never committed
    assert has_legacy_tables(index)

    assert move_out_of_index(index, own) == 2  # copies nothing new, drops the old tables
    assert (count(own, "workflow_task"), count(own, "workflow_schedule"), count(own, "workflow_execution")) == (2, 2, executions)
    assert not tables(index) & WORKFLOW_TABLES
    assert move_out_of_index(index, own) == 0


def test_an_index_without_the_tables_is_only_read(tmp_path):
    index, own = tmp_path / "index.sqlite", tmp_path / "scheduler.sqlite"
    an_index_of_its_own(index)
    before = index.read_bytes()
    assert move_out_of_index(index, own) == 0
    assert index.read_bytes() == before and not own.exists()
    assert move_out_of_index(tmp_path / "none.sqlite", own) == 0 and not (tmp_path / "none.sqlite").exists()


def test_workflow_tables_of_another_version_are_not_moved(tmp_path):
    index, own = tmp_path / "index.sqlite", tmp_path / "scheduler.sqlite"
    an_index_of_its_own(index)
    with closing(sqlite3.connect(index, isolation_level=None)) as db:
        db.execute("CREATE TABLE workflow_schema (version INTEGER NOT NULL)")
        db.execute("CREATE TABLE workflow_task (id TEXT PRIMARY KEY)")
        db.execute("INSERT INTO workflow_schema VALUES (7)")
    with pytest.raises(RuntimeError, match="schema version 7"):
        move_out_of_index(index, own)
    assert WORKFLOW_TABLES - {"workflow_execution", "workflow_schedule"} <= tables(index)  # left as they were


# -- in a node -----------------------------------------------------------------------------


async def test_the_node_keeps_tasks_out_of_the_index_file(tmp_path):
    async with running_node(tmp_path) as node:
        data = node.config.data_dir
        listed = {t.id for t in (await node.ref("scheduler").ask(ListTasks())).tasks}
    assert "builtin-verification" in listed
    assert not tables(data / "index.sqlite") & WORKFLOW_TABLES
    assert count(data / "scheduler.sqlite", "workflow_task") == len(listed)


@pytest.fixture
def old_data_dir(tmp_path):
    """A data directory an older node left, built on a mock clock of its own."""
    data = tmp_path / "node"
    data.mkdir()
    old = trio.run(old_layout_with_history, data / "index.sqlite", Recorder(), clock=trio.testing.MockClock(autojump_threshold=0))
    return data, old


async def test_a_node_started_on_an_old_data_directory_keeps_its_tasks(tmp_path, old_data_dir):
    data, (tasks, every, history) = old_data_dir
    async with running_node(tmp_path) as node:
        assert node.config.data_dir == data
        scheduler = node.ref("scheduler")
        listed = {t.id: t for t in (await scheduler.ask(ListTasks())).tasks}
        assert set(listed) == {*tasks, "builtin-verification", "builtin-worklist-expiry"}
        assert {listed[i].name for i in tasks} == {"every", "hourly"}
        assert {listed[i].state for i in tasks} == {TaskState.ORPHANED}  # 'note' is the test's own kind
        assert (await scheduler.ask(GetExecutionHistory(task_id=every))).records == history
    assert not tables(data / "index.sqlite") & WORKFLOW_TABLES
