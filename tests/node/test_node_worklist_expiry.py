"""Worklist expiry on a running node: the index's ExpireWorklistItems deletes items past
`[worklist] expire_after_hours` (judged at an injected moment, no waiting), and the
built-in `worklist-expiry` task the configuration schedules sends it."""

import datetime as dt
import time

import attrs
from pydicom.dataset import Dataset
from workflow.maintenance_support import next_execution

from triopacs import open_node
from triopacs.actors.node.index_dimse_n import AddWorklistItems, ExpireWorklistItems, ListWorklistItems
from triopacs.config import WorklistSettings
from triopacs.storage.worklist import item_from_dataset
from triopacs.workflow import ListTasks, TaskExecuted, TaskState, TriggerTask

from .nodes import index_rows, node_config

HOUR = 3600.0


def scheduled(step_id: str, at: dt.datetime) -> Dataset:
    ds = Dataset()
    ds.PatientName, ds.PatientID = "Doe^Jane", f"P{step_id}"
    step = Dataset()
    step.Modality, step.ScheduledStationAETitle, step.ScheduledProcedureStepID = "CT", "CT1", step_id
    step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime = at.strftime("%Y%m%d"), at.strftime("%H%M%S")
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def config(tmp_path, **worklist):
    return attrs.evolve(node_config(tmp_path / "node"), worklist=WorklistSettings(expire_after_hours=2.0, **worklist))


def item_ids(node) -> list[str]:
    return [row[0] for row in index_rows(node, "SELECT item_id FROM worklist_item ORDER BY item_id")]


async def test_items_expire_a_configured_time_past_their_scheduled_start(tmp_path):
    start = dt.datetime.now().replace(microsecond=0) + dt.timedelta(hours=1)
    items = [scheduled("EARLY", start), scheduled("LATE", start + dt.timedelta(hours=5))]
    async with open_node(config(tmp_path, expiry_enabled=False)) as node:
        index = node.ref("index")
        await index.ask(AddWorklistItems(items=tuple(item_from_dataset(ds) for ds in items)))
        now = time.time()
        # 2 h 59 min on: EARLY is 1 h 59 min past its start, inside the 2 hours.
        kept = await index.ask(ExpireWorklistItems(now=now + 2 * HOUR + 59 * 60))
        assert kept.item_ids == () and item_ids(node) == ["EARLY", "LATE"]
        gone = await index.ask(ExpireWorklistItems(now=now + 3 * HOUR + 60))
        assert gone.item_ids == ("EARLY",) and item_ids(node) == ["LATE"]
        last = await index.ask(ExpireWorklistItems(now=now + 8 * HOUR + 60))
        assert last.item_ids == ("LATE",) and item_ids(node) == []


async def test_the_builtin_task_deletes_expired_items(tmp_path):
    # An item added already past its time is kept in the table (never offered); the
    # task the configuration schedules deletes it, and leaves a current one alone.
    now = dt.datetime.now().replace(microsecond=0)
    items = [scheduled("OLD", now - dt.timedelta(days=2)), scheduled("NEW", now + dt.timedelta(hours=1))]
    async with open_node(config(tmp_path, expiry_schedule="every 6h")) as node:
        await node.ref("index").ask(AddWorklistItems(items=tuple(item_from_dataset(ds) for ds in items)))
        offered = await node.ref("index").ask(ListWorklistItems())
        assert item_ids(node) == ["NEW", "OLD"] and [e.item_id for e in offered.entries] == ["NEW"]
        scheduler = node.ref("scheduler")
        task = {t.id: t for t in (await scheduler.ask(ListTasks())).tasks}["builtin-worklist-expiry"]
        assert task.enabled and task.schedule.interval == 6 * HOUR
        with node.subscribe(TaskExecuted) as executed:
            await scheduler.ask(TriggerTask(task_id=task.id))
            record = await next_execution(executed, task.id)
        assert record.state is TaskState.COMPLETED, record.error_message
        assert item_ids(node) == ["NEW"]


async def test_expiry_can_be_switched_off(tmp_path):
    async with open_node(config(tmp_path, expiry_enabled=False)) as node:
        tasks = {t.id: t for t in (await node.ref("scheduler").ask(ListTasks())).tasks}
    assert "builtin-worklist-expiry" not in tasks
