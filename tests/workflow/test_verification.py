"""The built-in verification task in a real node: checksums, DICOM structure, rows
without files, files without rows, repair, and running by name through the scheduler.
"""

import datetime as dt
import shutil

import pydicom
import pytest
from dicom_samples import new_uid
from node.nodes import running_node

from triopacs.workflow import (
    CronSchedule,
    GetExecutionHistory,
    ScheduleTask,
    TaskExecuted,
    TaskState,
    TriggerTask,
)
from triopacs.workflow.verification import VerificationConfig

from .maintenance_support import (
    Studies,
    assert_consistent,
    find_studies,
    latest_report,
    listed,
    next_execution,
    rows,
    run_task,
    store,
    study_paths,
    study_uids,
)


@pytest.fixture
def studies(tmp_path):
    return Studies(tmp_path / "generated")


def statuses(data) -> dict[str, str]:
    return dict(rows(data, "SELECT file_path, file_status FROM instance"))


async def test_a_corrupted_file_is_reported_and_flagged_by_a_repairing_run(tmp_path, studies):
    study = studies.make("CT")
    async with running_node(tmp_path) as node:
        await store(node, study)
        data = node.config.data_dir
        damaged, intact = sorted(study_paths(data, study.study_instance_uid))
        path = data / damaged
        content = bytearray(path.read_bytes())
        content[len(content) // 2 : len(content) // 2 + 4] = b"\xde\xad\xbe\xef"  # same size, other bytes
        path.write_bytes(bytes(content))

        record, report = await run_task(node, "verification")
        assert record.state is TaskState.FAILED and "1 checksum mismatch" in record.error_message
        assert listed(report, "checksum_mismatches", "file_path") == [damaged]
        assert report["counts"]["content_checked"] == 2 and report["counts"]["problems"] == 1
        assert statuses(data) == {damaged: "ok", intact: "ok"}  # a plain run changes nothing

        record, report = await run_task(node, "verification", {"repair_on_failure": True})
        assert record.state is TaskState.FAILED  # flagged, but still damaged
        assert statuses(data) == {damaged: "corrupt", intact: "ok"}
        assert report["marked"] == {"corrupt": 1, "missing": 0, "ok": 0}
        assert_consistent(data)  # corrupt is not missing: the row and its file are both there


def _other_study_uid(path):
    dataset = pydicom.dcmread(path)
    dataset.StudyInstanceUID = new_uid()
    dataset.save_as(path)
    return "StudyInstanceUID"


def _garbage(path):
    path.write_bytes(b"this is not a DICOM file at all\n" * 64)
    return "cannot be parsed"


def _truncated(path):
    content = path.read_bytes()
    path.write_bytes(content[: len(content) - 1000])  # the pixel data loses its end
    return "truncated: (7FE0,0010)"


@pytest.mark.parametrize(
    "damage", [_other_study_uid, _garbage, _truncated], ids=["UID differs from the index", "unparseable", "truncated"]
)
async def test_the_structure_check_parses_files_and_compares_their_uids(tmp_path, studies, damage):
    study = studies.make("MR", count=1)
    async with running_node(tmp_path) as node:
        await store(node, study)
        data = node.config.data_dir
        (stored,) = study_paths(data, study.study_instance_uid)
        params = {"check_checksums": False, "check_dicom_structure": True}
        record, report = await run_task(node, "verification", params)
        assert record.state is TaskState.COMPLETED, record.error_message  # sound before the damage
        expected = damage(data / stored)
        record, report = await run_task(node, "verification", params)
    assert record.state is TaskState.FAILED
    assert listed(report, "structure_errors", "file_path") == [stored]
    assert expected in report["structure_errors"][0]["problem"]
    assert report["checksum_mismatches"] == []  # not asked for


async def test_an_orphan_file_is_reported_then_reindexed_and_found(tmp_path, studies):
    stored, orphan = studies.make("CT", count=1), studies.make("MR", count=1, patient_id="ORPHAN1")
    async with running_node(tmp_path) as node:
        await store(node, stored)
        data = node.config.data_dir
        relative = "files/restored-from-backup/orphan.dcm"
        (data / relative).parent.mkdir(parents=True)
        shutil.copyfile(orphan.paths[0], data / relative)
        # Not orphans: a store's temp file beside its destination, anything in incoming/.
        shutil.copyfile(orphan.paths[0], data / "files/restored-from-backup/.orphan.dcm.1f2e.part")
        shutil.copyfile(orphan.paths[0], data / "incoming/0a1b2c.part")

        record, report = await run_task(node, "verification")
        assert record.state is TaskState.FAILED and "1 orphan file" in record.error_message
        assert listed(report, "orphan_files", "file_path") == [relative]
        assert await find_studies(node, orphan.study_instance_uid) == []

        record, report = await run_task(node, "verification", {"repair_on_failure": True})
        assert record.state is TaskState.COMPLETED, record.error_message
        assert listed(report, "reindexed", "file_path") == [relative]
        assert await find_studies(node, orphan.study_instance_uid) == [orphan.study_instance_uid]
        assert rows(data, "SELECT file_path FROM instance WHERE sop_instance_uid = ?", orphan.sop_instance_uids[0]) == [(relative,)]

        record, report = await run_task(node, "verification")
        assert record.state is TaskState.COMPLETED and report["counts"]["orphan_files"] == 0


async def test_a_stray_copy_of_an_indexed_instance_is_reported_not_reindexed(tmp_path, studies):
    study = studies.make("CT", count=1)
    async with running_node(tmp_path) as node:
        await store(node, study)
        data = node.config.data_dir
        (indexed,) = study_paths(data, study.study_instance_uid)
        copy = "files/copies/same-instance.dcm"
        (data / copy).parent.mkdir(parents=True)
        shutil.copyfile(data / indexed, data / copy)
        record, report = await run_task(node, "verification", {"repair_on_failure": True})
        assert record.state is TaskState.FAILED
        assert report["stray_copies"] == [
            {"file_path": copy, "sop_instance_uid": study.sop_instance_uids[0], "indexed_file": indexed}
        ]
        assert rows(data, "SELECT file_path FROM instance") == [(indexed,)]
        assert (data / copy).exists()  # verification never deletes


async def test_a_missing_file_is_reported_and_its_row_flagged_not_deleted(tmp_path, studies):
    study = studies.make("MR", count=2)
    async with running_node(tmp_path) as node:
        await store(node, study)
        data = node.config.data_dir
        lost, kept = sorted(study_paths(data, study.study_instance_uid))
        (data / lost).unlink()

        record, report = await run_task(node, "verification")
        assert record.state is TaskState.FAILED and "1 missing file" in record.error_message
        assert listed(report, "missing_files", "file_path") == [lost]
        assert statuses(data) == {lost: "ok", kept: "ok"}

        record, report = await run_task(node, "verification", {"repair_on_failure": True})
        assert record.state is TaskState.FAILED
        assert statuses(data) == {lost: "missing", kept: "ok"}  # the row says what was lost
        assert report["marked"]["missing"] == 1
        assert study_uids(data) == {study.study_instance_uid}
        # A store of the instance again brings it back: the flag goes with the new file.
        await store(node, study)
        assert statuses(data) == {lost: "ok", kept: "ok"}


async def test_verification_scheduled_by_name_runs_and_its_report_is_kept(tmp_path, studies):
    study = studies.make("CT", count=2)
    async with running_node(tmp_path) as node:
        await store(node, study)
        scheduler = node.ref("scheduler")
        task = await scheduler.ask(
            ScheduleTask(
                name="nightly check", kind="verification", schedule=CronSchedule.daily_at(4),
                params={"max_verifications_per_cycle": 1, "check_db_consistency": False},
            )
        )
        checked = []
        for _ in range(2):
            with node.subscribe(TaskExecuted) as executed:
                await scheduler.ask(TriggerTask(task_id=task.id))
                record = await next_execution(executed, task.id)
            report = await latest_report(node, task.id)
            assert record.state is TaskState.COMPLETED, record.error_message
            assert report["counts"]["content_checked"] == 1
            checked.append(rows(node.config.data_dir, "SELECT file_path FROM instance WHERE checked_at IS NOT NULL"))
        history = (await scheduler.ask(GetExecutionHistory(task_id=task.id))).records
    assert [r.state for r in history] == [TaskState.COMPLETED] * 2
    assert task.type.value == "verification"
    # Each run checked the file checked longest ago: the second run took the other one.
    assert len(checked[0]) == 1 and len(checked[1]) == 2
    assert report["config"] == VerificationConfig(max_verifications_per_cycle=1, check_db_consistency=False).to_params()
    started = dt.datetime.fromisoformat(report["as_of"].replace("Z", "+00:00"))
    assert history[0].started_at - dt.timedelta(seconds=1) <= started <= history[0].finished_at


def test_only_sha256_is_accepted():
    assert VerificationConfig.from_params({"hash_algorithm": "sha256"}).hash_algorithm == "sha256"
    with pytest.raises(ValueError, match="hash_algorithm must be SHA256"):
        VerificationConfig.from_params({"hash_algorithm": "MD5"})
