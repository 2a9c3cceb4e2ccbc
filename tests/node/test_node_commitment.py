"""Storage Commitment SCP: pynetdicom (separate processes) asks a running node to commit
instances; the node answers the N-ACTION at once, checks each instance (in the index,
file readable, SHA-256 as recorded) and reports with N-EVENT-REPORT on the same
association, or on a new one to the requestor's [[remote]] entry (a pynetdicom listener
that takes the SCP role the node proposes), retrying while the requestor is down."""

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio
from dicom_samples import SeriesSpec, new_uid, write_series

from triopacs import connect
from triopacs.actors.node.dimse_n_events import StorageCommitmentReported, StorageCommitmentRetrying
from triopacs.client.contexts import storage_contexts_for

from .nodes import AE_TITLE, LOOPBACK, index_rows, remote, run_peer_script, running_node

SCU = Path(__file__).with_name("pynetdicom_nscu.py")
LISTENER = Path(__file__).with_name("pynetdicom_commit_scu_listener.py")
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
TRANSACTION, REFERENCED, FAILED, REASON = "00081195", "00081199", "00081198", "00081197"
CLASS, INSTANCE = "00081150", "00081155"


def action(transaction: str, references: list[tuple[str, str]]) -> dict:
    items = [{CLASS: {"vr": "UI", "Value": [c]}, INSTANCE: {"vr": "UI", "Value": [i]}} for c, i in references]
    return {TRANSACTION: {"vr": "UI", "Value": [transaction]}, REFERENCED: {"vr": "SQ", "Value": items}}


def listed(report: dict, sequence: str) -> dict[str, int | None]:
    """SOP Instance UID -> Failure Reason (None in the success list)."""
    items = report["dataset"].get(sequence, {}).get("Value", [])
    return {item[INSTANCE]["Value"][0]: (item.get(REASON) or {}).get("Value", [None])[0] for item in items}


async def steps(node, tmp_path: Path, steps: list[dict]) -> dict:
    path = tmp_path / f"steps-{new_uid()}.json"
    path.write_text(json.dumps(steps))
    return await run_peer_script(SCU, str(node.address.port), AE_TITLE, str(path))


@pytest.fixture
def series(tmp_path):
    return write_series(tmp_path / "source", SeriesSpec(count=3, modality="CT", patient_id="SC1"))


async def store(node, series) -> None:
    files = list(series.paths)
    async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(files)) as association:
        assert all([(await association.store(path)).ok for path in files])


async def test_report_on_the_same_association_lists_successes_and_failures(tmp_path, series):
    ok1, ok2, altered = series.sop_instance_uids
    unknown, transaction = new_uid(), new_uid()
    async with running_node(tmp_path) as node:
        await store(node, series)
        (path,) = index_rows(node, "SELECT file_path FROM instance WHERE sop_instance_uid = ?", altered)[0]
        tampered = node.config.data_dir / path
        tampered.write_bytes(tampered.read_bytes()[:-4] + b"XXXX")
        with node.subscribe(StorageCommitmentReported) as events:
            result = await steps(node, tmp_path, [{
                "op": "commit", "wait": 30,
                "dataset": action(transaction, [(CT, ok1), (CT, ok2), (CT, altered), (CT, unknown), (MR, ok1)]),
            }])
            reported = await events.receive()
        state = index_rows(node, "SELECT state FROM commitment_request WHERE transaction_uid = ?", transaction)
    assert [r["status"] for r in result["results"]] == [0x0000]
    (report,) = result["reports"]
    assert report["event_type"] == 2  # failures exist
    assert report["dataset"][TRANSACTION]["Value"] == [transaction]
    assert listed(report, REFERENCED) == {ok1: None, ok2: None}
    failed = report["dataset"][FAILED]["Value"]
    reasons = sorted((item[INSTANCE]["Value"][0], item[CLASS]["Value"][0], item[REASON]["Value"][0]) for item in failed)
    assert reasons == sorted([(altered, CT, 0x0110), (unknown, CT, 0x0112), (ok1, MR, 0x0119)])
    assert reported.transaction_uid == transaction and reported.same_association and (reported.committed, reported.failed) == (2, 3)
    assert state == [("reported",)]


async def start_listener(nursery, ae_title: str):
    """The requestor's listener process, and the port it reports once listening."""
    argv = [sys.executable, str(LISTENER), ae_title, "1"]
    process = await nursery.start(partial(trio.run_process, argv, stdout=subprocess.PIPE, check=False))
    lines = LineReader(process.stdout)
    port = json.loads(await lines.next())["port"]
    return process, lines, port


class LineReader:
    def __init__(self, stream) -> None:
        self.stream, self.buffer = stream, b""

    async def next(self) -> str:
        with trio.fail_after(60):
            while b"\n" not in self.buffer:
                chunk = await self.stream.receive_some()
                assert chunk, "the listener exited"
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


async def test_report_on_a_new_association_when_the_requestor_has_gone(tmp_path, series):
    transaction = new_uid()
    async with trio.open_nursery() as nursery:
        process, lines, port = await start_listener(nursery, "PYNETDICOM")
        async with running_node(tmp_path, remote=[remote("PYNETDICOM", port)], retry_initial=0.1) as node:
            await store(node, series)
            with node.subscribe(StorageCommitmentReported) as events:
                result = await steps(node, tmp_path, [
                    {"op": "commit", "dataset": action(transaction, [(CT, uid) for uid in series.sop_instance_uids])},
                    {"op": "abort"},
                ])
                report = json.loads(await lines.next())
                reported = await events.receive()
        await process.wait()
    assert [r["status"] for r in result["results"]] == [0x0000]
    assert report["event_type"] == 1 and report["calling_ae"] == AE_TITLE
    assert listed(report, REFERENCED) == dict.fromkeys(series.sop_instance_uids)
    assert FAILED not in report["dataset"]
    assert not reported.same_association and reported.transaction_uid == transaction


async def test_a_pending_report_survives_a_restart_and_reaches_the_requestor_once_it_listens(tmp_path, series):
    transaction = new_uid()
    with trio.socket.socket() as closed:  # a port nobody listens on
        await closed.bind((LOOPBACK, 0))
        dead_port = closed.getsockname()[1]
    async with running_node(tmp_path, remote=[remote("PYNETDICOM", dead_port)], retry_initial=0.1) as node:
        await store(node, series)
        with node.subscribe(StorageCommitmentRetrying) as events:
            await steps(node, tmp_path, [
                {"op": "commit", "dataset": action(transaction, [(CT, series.sop_instance_uids[0])])}, {"op": "abort"},
            ])
            retrying = await events.receive()
    assert retrying.transaction_uid == transaction and retrying.attempts >= 1
    async with trio.open_nursery() as nursery:
        process, lines, port = await start_listener(nursery, "PYNETDICOM")
        async with running_node(tmp_path, remote=[remote("PYNETDICOM", port)], retry_initial=0.1):
            report = json.loads(await lines.next())
        await process.wait()
    assert report["event_type"] == 1 and listed(report, REFERENCED) == {series.sop_instance_uids[0]: None}


async def test_instances_on_another_tier_are_checked_by_that_tier(tmp_path, series):
    """Migrated to a warm tier, the instances are committed from there; one altered in the
    warm tier's folder fails with 0110."""
    from triopacs import open_node

    from .test_node_tiers import migrate, tiered, tiers_of, warm_tier

    ok1, ok2, altered = series.sop_instance_uids
    transaction = new_uid()
    config = tiered(tmp_path, [warm_tier(tmp_path)], warm_tier="warm", hot_to_warm=0, warm_to_cold=36500.0)
    async with open_node(config) as node:
        await store(node, series)
        report = await migrate(node)
        assert report.migrated == 3 and tiers_of(node) == {"warm": 3}
        (key,) = index_rows(node, "SELECT file_path FROM instance WHERE sop_instance_uid = ?", altered)[0]
        tampered = tmp_path / "warm" / key
        tampered.write_bytes(tampered.read_bytes()[:-4] + b"XXXX")
        result = await steps(node, tmp_path, [{"op": "commit", "wait": 30, "dataset": action(transaction, [(CT, ok1), (CT, ok2), (CT, altered)])}])
    (report,) = result["reports"]
    assert listed(report, REFERENCED) == {ok1: None, ok2: None}
    assert listed(report, FAILED) == {altered: 0x0110}
