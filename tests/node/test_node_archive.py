"""The built-in archive task on a real node: a study past archive_after becomes a
package (its Part 10 files and a manifest) in a destination tier - another directory or
moto's S3 - checked, deleted here when asked; `triopacs restore` brings it back and
DCMTK getscu gets the same bytes."""

import json
import sys

import attrs
import pytest
import trio
from peers import getscu
from peers.buckets import create_bucket, s3_settings

from triopacs import open_node
from triopacs.actors import AsyncioPortal
from triopacs.actors.node.index import GetReports
from triopacs.config import ArchiveSettings, load_config
from triopacs.workflow import TriggerTask
from triopacs.workflow.tasks.messages import TaskExecuted

from .nodes import node_config, peer
from .test_node_tiers import received, tiers_of
from .test_node_retrieve import load, study  # noqa: F401 - study is a fixture


async def run_archive(node):
    with node.subscribe(TaskExecuted) as events:
        await node.scheduler.ask(TriggerTask(task_id="builtin-archive"))
        while True:
            executed = await events.receive()
            if executed.record.task_id == "builtin-archive":
                return executed.record


def toml_of(tmp_path, tier_table: str, **archive) -> str:
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in archive.items())
    return (
        f'[http]\nport = 0\nevents_port = 0\n[node]\nport = 0\ndata_dir = "{tmp_path / "data"}"\n\n[log]\nlevel = "warning"\n\n'
        f'[archive]\nenabled = true\nschedule = "0 2 1 1 *"\ndestination = "vault"\narchive_after = 0.0\n{lines}\n{tier_table}'
    )


async def test_archive_to_a_directory_delete_and_restore(tmp_path, study):
    await archive_delete_restore(tmp_path, study, f'[[tier]]\nname = "vault"\nkind = "local"\npath = "{tmp_path / "vault"}"\n')
    manifest = json.loads((tmp_path / "vault" / "archive" / study[0].study_instance_uid / "manifest.json").read_text())
    assert len(manifest["instances"]) == 5 and all(len(e["sha256"]) == 64 for e in manifest["instances"])


async def test_archive_to_s3_delete_and_restore(tmp_path, study, s3_endpoint):
    settings = s3_settings(s3_endpoint)
    async with AsyncioPortal() as portal:
        await create_bucket(portal, settings)
    await archive_delete_restore(tmp_path, study, (
        f'[[tier]]\nname = "vault"\nkind = "s3"\nbucket = "{settings.bucket}"\nendpoint_url = "{settings.endpoint_url}"\n'
        f'access_key_id = "testing"\nsecret_access_key = "testing"\n'
    ))


async def archive_delete_restore(tmp_path, study, table):
    toml = tmp_path / "node.toml"
    toml.write_text(toml_of(tmp_path, table, delete_after_archive=True))
    uid = study[0].study_instance_uid
    async with open_node(load_config(toml)) as node:
        kept = await load(node, study)
        record = await run_archive(node)
        again = await run_archive(node)  # archived already: nothing to do
        reports = (await node.index.ask(GetReports(task_id="builtin-archive"))).reports
        assert tiers_of(node) == {}  # deleted here after archiving
    assert record.state.value == "completed", record
    report = json.loads(reports[-1].report)
    assert report["counts"]["archived"] == 1 and report["counts"]["deleted"] == 1 and report["archived"] == [uid]
    assert json.loads(reports[0].report)["counts"]["archived"] == 0 and again.state.value == "completed"
    result = await trio.run_process([sys.executable, "-m", "triopacs", "restore", "--config", str(toml), uid], capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    assert f"restored 5 of 5 instances of study {uid}" in result.stdout.decode()
    # No terminal: a line per file fetched, then per file stored (among the node's log lines).
    progress = [line for line in result.stderr.decode().splitlines() if line.startswith(("fetched ", "["))]
    assert progress[:5] == [f"fetched {n}/5" for n in range(1, 6)] and progress[-1].startswith("[5/5] ") and progress[-1].endswith(": ok")
    async with open_node(load_config(toml)) as node:
        assert tiers_of(node) == {"local": 5}
        got = await getscu(peer(node), {"StudyInstanceUID": uid}, received_dir=tmp_path / "got")
    got.check()
    assert received(got.received_files()) == kept


def test_archive_needs_a_destination_tier(tmp_path):
    from triopacs.config import ConfigError

    with pytest.raises(ConfigError, match="archive.destination"):
        attrs.evolve(node_config(tmp_path), archive=ArchiveSettings(enabled=True))
