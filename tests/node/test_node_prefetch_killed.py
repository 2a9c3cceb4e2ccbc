"""A node killed (SIGKILL) in the middle of its prefetch queue: `triopacs serve` started
again on the same data directory resumes the queue from prefetch.sqlite, every prior
arrives, and the studies that were complete when it died are not retrieved again."""

import sqlite3

import trio
from cli_process import run_cli
from peers import findscu_worklist, storescu
from peers.dicom_servers import RemoteAE as PeerAE
from peers.dicom_servers import dcmqrscp
from peers.process import free_port

from triopacs.actors import read_trace
from triopacs.workflow.prefetch.persistence import read_status

from .nodes import AE_TITLE, Address
from .prefetch_support import Prior, worklist_item, write_priors
from .served import served_node
from .test_cli_worklist import write_item

HELD_PER_STUDY = (
    "SELECT study.study_instance_uid, count(*) FROM instance JOIN series ON instance.series_pk = series.pk"
    " JOIN study ON series.study_pk = study.pk GROUP BY study.study_instance_uid"
)


def held(data) -> dict[str, int]:
    if not (data / "index.sqlite").exists():
        return {}
    with sqlite3.connect(f"file:{data / 'index.sqlite'}?mode=ro", uri=True) as db:
        return dict(db.execute(HELD_PER_STUDY).fetchall())


async def until(condition, *, timeout: float = 120.0) -> None:
    """Wait for a state another process reaches (its files are all there is to watch)."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.02)


async def test_a_node_killed_mid_queue_resumes_and_retrieves_nothing_complete_again(tmp_path):
    priors = write_priors(tmp_path / "priors", [Prior("KILL1", "CT", "CHEST", days, images=3) for days in (3, 6, 9, 12, 15)])
    uids = {p.study_instance_uid for p in priors}
    data = tmp_path / "data"
    port = free_port()
    async with dcmqrscp("QRSCP", known_peers=[PeerAE(AE_TITLE, port)], parent_dir=tmp_path) as source:
        (await storescu(source, [tmp_path / "priors"])).check(expected=15)
        config = tmp_path / "node.toml"
        config.write_text(
            f'[node]\ndata_dir = "{data}"\nae_title = "{AE_TITLE}"\nport = {port}\n\n'
            f'[prefetch]\nenabled = true\nmax_concurrent_prefetches = 1\n\n'
            f'[[prefetch.source]]\nremote = "QRSCP"\n\n'
            f'[[remote]]\nae_title = "QRSCP"\nhost = "127.0.0.1"\nport = {source.port}\n'
        )
        write_item(tmp_path / "item.dcm", worklist_item("SPS31", "KILL1", "CT", "CHEST"))
        assert (await run_cli(["worklist", "add", str(tmp_path / "item.dcm"), "--config", str(config)])).returncode == 0
        args = ("--config", str(config), "--port", str(port))
        async with served_node(tmp_path, *args) as node:
            result, answers = await findscu_worklist(Address(AE_TITLE, node.port), {"PatientID": ""}, out_dir=tmp_path / "wl")
            assert result.ok and len(answers) == 1
            await until(lambda: 3 in held(data).values())  # one study in, the queue goes on
            node.process.kill()
        complete_at_kill = {uid for uid, count in held(data).items() if count == 3}
        left = read_status(data / "prefetch.sqlite")
        async with served_node(tmp_path, *args, "--trace", str(tmp_path / "after.jsonl")):
            await until(lambda: (s := read_status(data / "prefetch.sqlite")) is not None and not s.patients and not s.studies)
        final = held(data)
    retrieved_after = [
        record["payload"]["subject"] for record in read_trace(tmp_path / "after.jsonl")
        if record["kind"] == "effect" and record["to"] == "prefetch-request" and record["payload"]["purpose"] == "move"
    ]
    assert 1 <= len(complete_at_kill) < len(uids) and left.studies  # killed with work left
    assert final == {uid: 3 for uid in uids}
    assert not set(retrieved_after) & complete_at_kill  # what was complete is not asked for again
    assert set(retrieved_after) <= uids - complete_at_kill and len(retrieved_after) == len(set(retrieved_after))
