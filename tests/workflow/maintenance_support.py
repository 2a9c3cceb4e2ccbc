"""Real nodes with real studies for the cleanup and verification tests.

Studies go in through C-STORE (triopacs' client), tasks run through the node's scheduler
by kind name, and what the tests check is read from the index database and the data
directory themselves.

A study is made "old" by moving its instances' stored_at back (cleanup counts age from
when a study's newest instance arrived); that write is the test's, not the node's.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import trio
from dicom_samples import GeneratedSeries, SeriesSpec, write_series
from node.nodes import AE_TITLE, LOOPBACK

from triopacs import connect
from triopacs.client.contexts import default_contexts, storage_contexts_for
from triopacs.actors.node.index import GetReports
from triopacs.storage.file_scan import is_temp_name
from triopacs.supervisor import Node
from triopacs.workflow import OneTimeSchedule, ScheduleTask, TaskExecuted, TaskExecutionRecord

DAY = 86400.0
TASK_DEADLINE = 60.0  # real seconds a task in these tests may take before the test fails


class Studies:
    """Generated studies (one series each unless said otherwise), written once per test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def make(self, modality: str = "CT", *, count: int = 2, study_uid: str | None = None, **spec: Any) -> GeneratedSeries:
        self.count += 1
        spec.setdefault("patient_id", f"P{self.count:03d}")
        return write_series(
            self.folder / f"s{self.count}",
            SeriesSpec(count=count, modality=modality, study_instance_uid=study_uid, series_number=self.count, **spec),
        )


async def store(node: Node, *series: GeneratedSeries) -> None:
    paths = [path for one in series for path in one.paths]
    contexts = storage_contexts_for(paths)
    async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=contexts) as association:
        for path in paths:
            assert (await association.store(path)).ok


async def find_studies(node: Node, study_uid: str = "") -> list[str]:
    """Study Instance UIDs a C-FIND at STUDY level answers."""
    from pydicom import Dataset

    query = Dataset()
    query.StudyInstanceUID = study_uid
    async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=default_contexts()) as association:
        return [str(match.StudyInstanceUID) async for match in association.find(query, level="STUDY")]


# -- the data directory ---------------------------------------------------------------------


def database(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "index.sqlite", timeout=30)


def rows(data_dir: Path, sql: str, *args: Any) -> list[tuple]:
    with database(data_dir) as db:
        return db.execute(sql, args).fetchall()


def age_studies(data_dir: Path, days: float, *study_uids: str) -> None:
    """Make these studies' instances look as if they arrived `days` earlier."""
    with database(data_dir) as db:
        for uid in study_uids:
            changed = db.execute(
                "UPDATE instance SET stored_at = stored_at - ? WHERE series_pk IN "
                "(SELECT se.pk FROM series se JOIN study st ON st.pk = se.study_pk WHERE st.study_instance_uid = ?)",
                (days * DAY, uid),
            ).rowcount
            assert changed, f"study {uid} is not in the index"


def indexed_paths(data_dir: Path) -> set[str]:
    return {path for (path,) in rows(data_dir, "SELECT file_path FROM instance")}


def files_on_disk(data_dir: Path) -> set[str]:
    """Every stored file under files/, as the index would name it (temp files aside)."""
    return {
        path.relative_to(data_dir).as_posix()
        for path in (data_dir / "files").rglob("*")
        if path.is_file() and not is_temp_name(path.name)
    }


def study_paths(data_dir: Path, study_uid: str) -> set[str]:
    return {
        path
        for (path,) in rows(
            data_dir,
            "SELECT i.file_path FROM instance i JOIN series se ON se.pk = i.series_pk JOIN study st ON st.pk = se.study_pk "
            "WHERE st.study_instance_uid = ?",
            study_uid,
        )
    }


def study_uids(data_dir: Path) -> set[str]:
    return {uid for (uid,) in rows(data_dir, "SELECT study_instance_uid FROM study")}


def assert_consistent(data_dir: Path) -> None:
    """Every row has its file, every file its row, nothing is left in the journal."""
    on_disk, indexed = files_on_disk(data_dir), indexed_paths(data_dir)
    assert on_disk - indexed == set(), "files without rows"
    assert indexed - on_disk == set(), "rows without files"
    assert rows(data_dir, "SELECT file_path FROM file_deletion") == []


# -- running tasks --------------------------------------------------------------------------


async def run_task(node: Node, kind: str, params: dict[str, Any] | None = None, *, name: str = "") -> tuple[TaskExecutionRecord, dict[str, Any]]:
    """Schedule a task of `kind` to run once now, wait for its run; its record and report."""
    scheduler = node.ref("scheduler")
    with node.subscribe(TaskExecuted) as executed:
        task = await scheduler.ask(
            ScheduleTask(
                name=name or f"test {kind}",
                kind=kind,
                params=params or {},
                schedule=OneTimeSchedule(execute_at=dt.datetime.now(dt.timezone.utc)),
            )
        )
        record = await next_execution(executed, task.id)
    return record, await latest_report(node, task.id)


async def next_execution(subscription, task_id: str) -> TaskExecutionRecord:
    with trio.fail_after(TASK_DEADLINE):
        async for event in subscription:
            if event.record.task_id == task_id:
                return event.record
    raise AssertionError("the event stream ended")


async def latest_report(node: Node, task_id: str) -> dict[str, Any]:
    reports = (await node.ref("index").ask(GetReports(task_id=task_id, limit=1))).reports
    assert reports, f"no report kept for task {task_id}"
    return json.loads(reports[0].report)


def listed(report: dict[str, Any], key: str, field: str = "study_instance_uid") -> list[str]:
    return [entry[field] for entry in report[key]]


def sorted_uids(series: Iterable[GeneratedSeries]) -> list[str]:
    return sorted(s.study_instance_uid for s in series)
