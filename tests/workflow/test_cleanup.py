"""The built-in cleanup task in a real node: retention by modality, locks, dry runs,
limits, exclusions, database-only, crashes and cancellation, and its configuration.

Studies arrive through C-STORE; "old" studies have their stored_at moved back (cleanup
counts a study's age from when its newest instance arrived here).
"""

import signal
import subprocess
import sys
import textwrap

import attrs
import pytest
import trio
from node.nodes import node_config, running_node

from triopacs import open_node
from triopacs.config import CleanupSettings, ConfigError, VerificationSettings, from_mapping
from triopacs.workflow import (
    CancelTask,
    GetExecutionHistory,
    GetLockStats,
    IntervalSchedule,
    ListTasks,
    Lock,
    LockReleased,
    LockType,
    ScheduleTask,
    TaskExecuted,
    TaskState,
    TriggerTask,
    study_lock,
)
from triopacs.workflow.cleanup import CleanupConfig
from triopacs.workflow.tasks.schedule import CronSchedule
from triopacs.workflow.tasks.schedule_text import parse_schedule_text

from .maintenance_support import (
    Studies,
    age_studies,
    assert_consistent,
    files_on_disk,
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


def data_dir(node):
    return node.config.data_dir


# -- retention ------------------------------------------------------------------------------


async def test_retention_by_modality_deletes_the_old_ct_and_keeps_the_mr(tmp_path, studies):
    old_ct, old_mr, new_ct = studies.make("CT"), studies.make("MR"), studies.make("CT")
    mixed = studies.make("CT")
    mixed_mr = studies.make("MR", study_uid=mixed.study_instance_uid)  # one study, CT and MR series
    async with running_node(tmp_path) as node:
        await store(node, old_ct, old_mr, new_ct, mixed, mixed_mr)
        age_studies(data_dir(node), 40, old_ct.study_instance_uid, old_mr.study_instance_uid, mixed.study_instance_uid)
        old_ct_files = study_paths(data_dir(node), old_ct.study_instance_uid)
        old_ct_bytes = sum((data_dir(node) / path).stat().st_size for path in old_ct_files)
        # The default alone (10 days) would delete every aged study: the modalities decide.
        params = {"default_retention": 10, "modality_retention": {"CT": 30, "mr": 60}}
        record, report = await run_task(node, "cleanup", params)
        remaining = study_uids(data_dir(node))
        found = await find_studies(node)
        assert_consistent(data_dir(node))
    assert record.state is TaskState.COMPLETED, record.error_message
    assert listed(report, "deleted") == [old_ct.study_instance_uid]
    assert report["counts"]["deleted_instances"] == 2 and report["counts"]["candidates"] == 1
    assert report["counts"]["freed_bytes"] == old_ct_bytes > 0
    assert remaining == {old_mr.study_instance_uid, new_ct.study_instance_uid, mixed.study_instance_uid}
    assert sorted(found) == sorted(remaining)
    assert not any((tmp_path / "node" / path).exists() for path in old_ct_files)
    # the emptied study and series folders went with the files
    assert not (tmp_path / "node" / "files" / old_ct.study_instance_uid).exists()


def test_a_study_keeps_the_longest_retention_of_its_own_modalities():
    config = CleanupConfig(default_retention=365, modality_retention={"CT": 30, "MR": 3650})
    assert config.retention_for("ct") == 30 and config.retention_for("US") == 365
    assert config.retention_for_study(("CT", "MR")) == 3650
    assert config.retention_for_study(("CT", "SR")) == 30  # SR has no retention of its own
    assert config.retention_for_study(("SR",)) == config.retention_for_study(()) == 365


# -- locks ----------------------------------------------------------------------------------


async def test_a_locked_study_is_skipped_and_deleted_once_free(tmp_path, studies):
    locked, free = studies.make("CT"), studies.make("CT")
    async with running_node(tmp_path) as node:
        await store(node, locked, free)
        age_studies(data_dir(node), 40, locked.study_instance_uid, free.study_instance_uid)
        async with study_lock(node.ref("locks"), locked.study_instance_uid, LockType.SHARED, reason="a viewer reads it"):
            record, report = await run_task(node, "cleanup", {"default_retention": 30})
            assert study_uids(data_dir(node)) == {locked.study_instance_uid}
        assert record.state is TaskState.COMPLETED
        assert listed(report, "deleted") == [free.study_instance_uid]
        assert listed(report, "skipped_locked") == [locked.study_instance_uid]
        _, report = await run_task(node, "cleanup", {"default_retention": 30})
        assert listed(report, "deleted") == [locked.study_instance_uid]
        assert study_uids(data_dir(node)) == set()
        assert_consistent(data_dir(node))


async def test_without_verify_not_locked_cleanup_waits_for_the_lock(tmp_path, studies):
    study = studies.make("CT")
    async with running_node(tmp_path, acquire_wait_timeout=30.0) as node:
        await store(node, study)
        age_studies(data_dir(node), 40, study.study_instance_uid)
        # Someone holds the study for one second more; cleanup waits for it, then deletes.
        await node.ref("locks").ask(Lock(study_uid=study.study_instance_uid, timeout=1.0, link=False, reason="migration"))
        record, report = await run_task(node, "cleanup", {"default_retention": 30, "verify_not_locked": False})
        stats = await node.ref("locks").ask(GetLockStats())
        assert record.state is TaskState.COMPLETED
        assert listed(report, "deleted") == [study.study_instance_uid] and report["skipped_locked"] == []
        assert stats.contention_count == 1  # it did find the study taken, and waited
        assert study_uids(data_dir(node)) == set()


async def test_a_wait_that_runs_out_skips_the_study(tmp_path, studies):
    study = studies.make("CT")
    async with running_node(tmp_path, acquire_wait_timeout=0.2) as node:
        await store(node, study)
        age_studies(data_dir(node), 40, study.study_instance_uid)
        async with study_lock(node.ref("locks"), study.study_instance_uid, reason="held throughout"):
            record, report = await run_task(node, "cleanup", {"default_retention": 30, "verify_not_locked": False})
        assert record.state is TaskState.COMPLETED
        assert listed(report, "skipped_locked") == [study.study_instance_uid]
        assert "wait ran out" in report["skipped_locked"][0]["reason"]
        assert study_uids(data_dir(node)) == {study.study_instance_uid}


# -- dry run, limits, exclusions, database only ---------------------------------------------


async def test_a_dry_run_lists_what_would_go_and_deletes_nothing(tmp_path, studies):
    old, new = studies.make("CT"), studies.make("MR")
    async with running_node(tmp_path) as node:
        await store(node, old, new)
        age_studies(data_dir(node), 400, old.study_instance_uid)
        before = files_on_disk(data_dir(node))
        record, report = await run_task(node, "cleanup", {"dry_run": True})
        assert record.state is TaskState.COMPLETED
        assert listed(report, "would_delete") == [old.study_instance_uid] and "deleted" not in report
        assert report["counts"]["deleted"] == 1 and report["counts"]["deleted_instances"] == 0
        assert study_uids(data_dir(node)) == {old.study_instance_uid, new.study_instance_uid}
        assert files_on_disk(data_dir(node)) == before


async def test_max_deletions_per_cycle_takes_the_oldest_first(tmp_path, studies):
    made = [studies.make("CT", count=1) for _ in range(3)]
    async with running_node(tmp_path) as node:
        await store(node, *made)
        for days, series in zip((42, 41, 40), made):
            age_studies(data_dir(node), days, series.study_instance_uid)
        _, first = await run_task(node, "cleanup", {"default_retention": 30, "max_deletions_per_cycle": 2})
        assert listed(first, "deleted") == [made[0].study_instance_uid, made[1].study_instance_uid]
        assert first["limit_reached"] is True
        assert study_uids(data_dir(node)) == {made[2].study_instance_uid}
        _, second = await run_task(node, "cleanup", {"default_retention": 30, "max_deletions_per_cycle": 2})
        assert listed(second, "deleted") == [made[2].study_instance_uid] and second["limit_reached"] is False
        assert_consistent(data_dir(node))


async def test_exclude_patterns_protect_studies(tmp_path, studies):
    vip = studies.make("CT", patient_id="VIP0042")
    research = studies.make("CT", study_description="RESEARCH PROTOCOL 7")
    accession = studies.make("CT", accession_number="KEEP-123")
    plain = studies.make("CT", study_description="RESEARCH-FREE", patient_id="P9")
    async with running_node(tmp_path) as node:
        await store(node, vip, research, accession, plain)
        everyone = [s.study_instance_uid for s in (vip, research, accession, plain)]
        age_studies(data_dir(node), 40, *everyone)
        # description:...: only the description; "P9" would match the plain study's patient
        # ID as a bare pattern, but as an accession pattern it matches nothing.
        patterns = ["vip*", "description:*protocol*", "keep-*", "accession:P9"]
        _, report = await run_task(node, "cleanup", {"default_retention": 30, "exclude_patterns": patterns})
        assert listed(report, "deleted") == [plain.study_instance_uid]
        excluded = {entry["study_instance_uid"]: entry["pattern"] for entry in report["excluded"]}
        assert excluded == {
            vip.study_instance_uid: "vip*",
            research.study_instance_uid: "description:*protocol*",
            accession.study_instance_uid: "keep-*",
        }
        assert study_uids(data_dir(node)) == set(everyone) - {plain.study_instance_uid}


async def test_database_only_keeps_the_files_and_verification_knows_them(tmp_path, studies):
    study = studies.make("CT")
    async with running_node(tmp_path) as node:
        await store(node, study)
        age_studies(data_dir(node), 40, study.study_instance_uid)
        files = study_paths(data_dir(node), study.study_instance_uid)
        record, report = await run_task(node, "cleanup", {"default_retention": 30, "database_only": True})
        assert record.state is TaskState.COMPLETED
        assert listed(report, "deleted") == [study.study_instance_uid] and report["counts"]["freed_bytes"] == 0
        assert study_uids(data_dir(node)) == set() and await find_studies(node) == []
        assert files_on_disk(data_dir(node)) == files  # still there
        released = {path for (path,) in rows(data_dir(node), "SELECT file_path FROM released_file")}
        assert released == files
        # Released on purpose, so not orphans: a repairing verification leaves them alone.
        verified, check = await run_task(node, "verification", {"repair_on_failure": True})
        assert verified.state is TaskState.COMPLETED, verified.error_message
        assert check["counts"]["orphan_files"] == 0 and check["counts"]["reindexed"] == 0
        assert study_uids(data_dir(node)) == set()


# -- crashes and cancellation ---------------------------------------------------------------

CRASHING_NODE = textwrap.dedent(
    """
    import sys, threading
    import trio
    from triopacs import open_node
    from triopacs.config import load_config
    from triopacs.storage.local_store import LocalStore
    from triopacs.workflow import TriggerTask

    config_file, removed_first = sys.argv[1], sys.argv[2]
    real_remove = LocalStore.remove

    def remove_then_hang(store, keys):
        # Step 1 (rows out, files journaled) has committed; the hot tier removes some
        # files, then hangs here until the test kills the process.
        real_remove(store, keys[: int(removed_first)])
        print("crash point", len(keys), flush=True)
        threading.Event().wait()  # never set: held here until the kill

    LocalStore.remove = remove_then_hang

    async def main():
        async with open_node(load_config(config_file, environ={})) as node:
            await node.ref("scheduler").ask(TriggerTask(task_id="builtin-cleanup"))
            await trio.sleep_forever()

    trio.run(main)
    """
)


async def read_until(stream, marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        chunk = await stream.receive_some()
        if not chunk:
            raise AssertionError(f"the process ended before {marker!r}: {seen.decode(errors='replace')}")
        seen += chunk
    return seen


@pytest.mark.parametrize("removed_first", [0, 1], ids=["killed before any file went", "killed after one of three files"])
async def test_a_node_killed_mid_cleanup_is_consistent_after_restart(tmp_path, studies, removed_first):
    doomed, kept = studies.make("CT", count=3), studies.make("MR")
    data = tmp_path / "node"
    async with running_node(tmp_path) as node:
        await store(node, doomed, kept)
    age_studies(data, 40, doomed.study_instance_uid)
    doomed_files = study_paths(data, doomed.study_instance_uid)
    config_file = tmp_path / "crash.toml"
    config_file.write_text(
        f'[http]\nport = 0\nevents_port = 0\n[node]\nport = 0\nbind = "127.0.0.1"\ndata_dir = "{data}"\n[log]\nlevel = "warning"\n'
        '[cleanup]\nenabled = true\ndefault_retention = 30\n[verification]\nenabled = false\n'
    )
    script = tmp_path / "crashing_node.py"
    script.write_text(CRASHING_NODE)
    process = await trio.lowlevel.open_process(
        [sys.executable, str(script), str(config_file), str(removed_first)], stdout=subprocess.PIPE
    )
    try:
        with trio.fail_after(60):
            await read_until(process.stdout, b"crash point")
        # Between the steps: the rows are gone, the files (but those removed) still there.
        assert study_uids(data) == {kept.study_instance_uid}
        left = doomed_files & files_on_disk(data)
        assert len(left) == 3 - removed_first
        assert {path for (path,) in rows(data, "SELECT file_path FROM file_deletion")} == doomed_files
        process.kill()
        with trio.fail_after(30):
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == -signal.SIGKILL
    async with running_node(tmp_path) as node:
        # The index finished the deletion before it answered anything.
        assert_consistent(data)
        assert study_uids(data) == {kept.study_instance_uid}
        assert not doomed_files & files_on_disk(data)
        assert await find_studies(node) == [kept.study_instance_uid]


async def test_a_cancelled_cleanup_leaves_everything_consistent(tmp_path, studies):
    first, second = studies.make("CT", count=1), studies.make("CT", count=1)
    async with running_node(tmp_path, acquire_wait_timeout=600.0) as node:
        await store(node, first, second)
        age_studies(data_dir(node), 41, first.study_instance_uid)
        age_studies(data_dir(node), 40, second.study_instance_uid)
        scheduler = node.ref("scheduler")
        locks = node.ref("locks")
        async with study_lock(locks, second.study_instance_uid, reason="held until the cleanup is cancelled"):
            with node.subscribe(LockReleased, TaskExecuted) as events:
                task = await scheduler.ask(
                    ScheduleTask(
                        name="cleanup", kind="cleanup", schedule=IntervalSchedule(interval=86400),
                        params={"default_retention": 30, "verify_not_locked": False},
                    )
                )
                await scheduler.ask(TriggerTask(task_id=task.id))
                with trio.fail_after(60):
                    async for event in events:  # the first study is done; the second is being waited for
                        if isinstance(event, LockReleased) and event.info.study_uid == first.study_instance_uid:
                            break
                await scheduler.ask(CancelTask(task_id=task.id))
                record = await next_execution(events, task.id)
            stats = await locks.ask(GetLockStats())
        assert record.state is TaskState.CANCELLED
        assert stats.waiting_requests == 0  # its request for the second study was withdrawn
        assert study_uids(data_dir(node)) == {second.study_instance_uid}
        assert_consistent(data_dir(node))
        report = await latest_report(node, task.id)
        assert report["interrupted"] is True and listed(report, "deleted") == [first.study_instance_uid]
        history = (await scheduler.ask(GetExecutionHistory(task_id=task.id))).records
        assert [r.state for r in history] == [TaskState.CANCELLED]


# -- configuration --------------------------------------------------------------------------


async def test_the_built_in_tasks_follow_the_configuration(tmp_path):
    base = node_config(tmp_path / "node")
    cleanup_on = attrs.evolve(
        base, cleanup=CleanupSettings(enabled=True, schedule="every 6h", modality_retention={"CT": 90}, dry_run=True)
    )
    async with open_node(cleanup_on) as node:
        tasks = {t.id: t for t in (await node.ref("scheduler").ask(ListTasks())).tasks}
    assert set(tasks) == {"builtin-cleanup", "builtin-verification", "builtin-worklist-expiry"}
    cleanup = tasks["builtin-cleanup"]
    assert cleanup.kind == "cleanup" and cleanup.enabled and cleanup.schedule.interval == 6 * 3600
    assert CleanupConfig.from_params(cleanup.params) == CleanupConfig(modality_retention={"CT": 90}, dry_run=True)
    verification = tasks["builtin-verification"]
    assert verification.schedule == CronSchedule.parse("0 4 * * 0") and verification.enabled

    # Restarted with another schedule, cleanup off and verification off.
    changed = attrs.evolve(
        base,
        cleanup=CleanupSettings(enabled=False, schedule="every 2h", modality_retention={"CT": 90}, dry_run=True),
        verification=VerificationSettings(enabled=False),
    )
    async with open_node(changed) as node:
        tasks = {t.id: t for t in (await node.ref("scheduler").ask(ListTasks())).tasks}
    assert not tasks["builtin-cleanup"].enabled and not tasks["builtin-verification"].enabled

    # On again with new settings: the task is replaced; a new schedule is taken as it is.
    again = attrs.evolve(base, cleanup=CleanupSettings(enabled=True, schedule="30 1 * * *", default_retention=700))
    async with open_node(again) as node:
        cleanup = await node.ref("scheduler").ask(ListTasks())
    cleanup = {t.id: t for t in cleanup.tasks}["builtin-cleanup"]
    assert cleanup.enabled and cleanup.schedule == CronSchedule.parse("30 1 * * *")
    assert cleanup.params["default_retention"] == 700 and cleanup.params["dry_run"] is False


async def test_without_the_scheduler_there_are_no_tasks_but_locks_remain(tmp_path):
    async with running_node(tmp_path, max_concurrent_tasks=1) as node:
        assert "/node/services/scheduler" in node.system.paths()
    config = node_config(tmp_path / "off")
    config = attrs.evolve(config, scheduler=attrs.evolve(config.scheduler, enabled=False))
    async with open_node(config) as node:
        paths = set(node.system.paths())
    assert "/node/services/locks" in paths and "/node/services/scheduler" not in paths


def test_the_default_schedules_parse():
    # config.py takes the defaults on trust (it does not import the workflow package).
    assert parse_schedule_text(CleanupSettings().schedule) == CronSchedule.daily_at(2, 0)
    assert parse_schedule_text(VerificationSettings().schedule) == CronSchedule.weekly_on(0, 4, 0)
    assert parse_schedule_text("every 90m").interval == 5400


@pytest.mark.parametrize(
    "data,key,fragment",
    [
        ({"cleanup": {"schedule": "61 * * * *"}}, "cleanup.schedule", "minute: 61 is out of range"),
        ({"cleanup": {"schedule": "every fortnight"}}, "cleanup.schedule", "every 30m"),
        ({"cleanup": {"modality_retention": {"CT": 0}}}, "cleanup.modality_retention", "between 1 and 36500"),
        ({"cleanup": {"modality_retention": {"CT": "long"}}}, "cleanup.modality_retention", "a table of names and integers"),
        ({"cleanup": {"default_retention": 0}}, "cleanup.default_retention", "between 1 and 36500"),
        ({"cleanup": {"exclude_patterns": [""]}}, "cleanup.exclude_patterns", "non-empty"),
        ({"cleanup": {"dryrun": True}}, "cleanup.dryrun", "known keys are"),
        ({"locks": {"cleanup_interval": 0}}, "locks.cleanup_interval", "between"),
        ({"scheduler": {"timezone": "Mars/Olympus"}}, "scheduler.timezone", "IANA time zone"),
        ({"scheduler": {"max_concurrent_tasks": 0}}, "scheduler.max_concurrent_tasks", "between 1"),
    ],
)
def test_configuration_errors_name_the_key(data, key, fragment):
    with pytest.raises(ConfigError) as info:
        from_mapping(data)
    assert info.value.key == key
    assert fragment in str(info.value)


def test_bad_task_parameters_fail_the_run_naming_the_parameter():
    with pytest.raises(ValueError, match="unknown parameter 'dryrun'"):
        CleanupConfig.from_params({"dryrun": True})
    with pytest.raises(ValueError, match="max_deletions_per_cycle must be a whole number"):
        CleanupConfig.from_params({"max_deletions_per_cycle": 2.5})
    with pytest.raises(ValueError, match="modality_retention.CT must be >= 0"):
        CleanupConfig.from_params({"modality_retention": {"CT": -1}})
