"""Association worker processes ([node] workers, `triopacs serve --workers N`): real
DCMTK peers against a node whose associations run in two worker processes, the index,
locks, AE registry and commitment staying in the node's process; a worker killed with
SIGKILL is replaced and the node goes on serving."""

import os
import signal

import trio
from dicom_samples import SeriesSpec, new_uid, write_series
from peers import echoscu, findscu, storescp, storescu

from triopacs.actors.node.dimse_n_events import StorageCommitmentReported
from triopacs.actors.node.workers import GetWorkerStatistics
from triopacs.actors.runtime.events import ActorRestarted

from .nodes import index_rows, peer, remote, running_node, stored_files
from .test_node_commitment import CT, REFERENCED, action, listed, steps, store
from .test_node_retrieve import load, run_movescu, study  # noqa: F401 - study is a fixture

WORKERS = ("/node/workers/w1", "/node/workers/w2")


async def statistics(node):
    return [await node.ref(path).ask(GetWorkerStatistics()) for path in WORKERS]


async def test_concurrent_storescu_associations_are_spread_over_the_workers_and_all_indexed(tmp_path):
    series = [write_series(tmp_path / f"s{i}", SeriesSpec(count=5, modality="CT", patient_id=f"W{i}")) for i in range(4)]
    async with running_node(tmp_path, workers=2) as node:
        pids = {s.pid for s in await statistics(node)}
        assert len(pids) == 2 and os.getpid() not in pids  # two processes of their own
        results = []
        async with trio.open_nursery() as nursery:
            for each in series:
                async def send(each=each):
                    results.append(await storescu(peer(node), each.paths))
                nursery.start_soon(send)
        for result in results:
            result.check()
        served = [s.connections for s in await statistics(node)]
        found = await findscu(peer(node), {"PatientID": "W*", "StudyInstanceUID": ""}, level="STUDY")
        indexed = index_rows(node, "SELECT count(*) FROM instance")[0][0]
    assert sorted(served) == [2, 2]  # the listener gives each connection to the least busy worker
    assert indexed == 20 and len(stored_files(node)) == 20
    assert sorted(m["PatientID"] for m in found.check().responses) == ["W0", "W1", "W2", "W3"]


async def test_movescu_through_a_worker_reaches_the_destination_byte_for_byte(tmp_path, study):
    async with storescp(extra_args=["+B"], parent_dir=tmp_path) as destination:
        async with running_node(tmp_path, workers=2, remote=[remote(destination.ae_title, destination.port)]) as node:
            kept = await load(node, study)
            outcome = await run_movescu(node, study[0].study_instance_uid, destination.ae_title, cwd=tmp_path)
        assert outcome.status == 0x0000, outcome.output
        assert len(destination.stored_files()) == len(kept) == 5


async def test_a_commitment_report_goes_back_on_the_association_a_worker_serves(tmp_path):
    """The commitment actor, in the node's process, reports on the requestor's own
    association, which lives in a worker: the node reaches it by its path."""
    series = write_series(tmp_path / "source", SeriesSpec(count=2, modality="CT", patient_id="WC"))
    transaction = new_uid()
    async with running_node(tmp_path, workers=2) as node:
        await store(node, series)
        with node.subscribe(StorageCommitmentReported) as events:
            refs = [(CT, uid) for uid in series.sop_instance_uids]
            result = await steps(node, tmp_path, [{"op": "commit", "wait": 30, "dataset": action(transaction, refs)}])
            reported = await events.receive()
    (report,) = result["reports"]
    assert listed(report, REFERENCED) == {uid: None for uid in series.sop_instance_uids}
    assert reported.same_association and reported.committed == 2


async def test_a_killed_worker_is_replaced_and_the_node_goes_on_serving(tmp_path):
    series = write_series(tmp_path / "source", SeriesSpec(count=3, modality="CT", patient_id="WK"))
    async with running_node(tmp_path, workers=2) as node:
        before = await statistics(node)
        with node.subscribe(ActorRestarted) as restarts:
            os.kill(before[0].pid, signal.SIGKILL)
            restarted = await restarts.receive()
        assert restarted.path == WORKERS[0]
        after = await statistics(node)
        assert after[0].pid != before[0].pid and after[1].pid == before[1].pid  # only that worker
        for _ in range(4):  # both workers serve, the new one included
            (await echoscu(peer(node))).check()
        assert [s.connections for s in await statistics(node)] == [2, 2]
        (await storescu(peer(node), series.paths)).check()
        assert index_rows(node, "SELECT count(*) FROM instance")[0][0] == 3


async def test_a_worklist_query_served_by_a_worker_is_published_on_the_nodes_bus(tmp_path):
    """What the prefetcher listens to: WorklistQueried, from the worker's association."""
    from triopacs.actors.node.dimse_n_events import WorklistQueried

    from .test_node_worklist import add_items

    async with running_node(tmp_path, workers=2) as node:
        await add_items(node)
        with node.subscribe(WorklistQueried) as events:
            answered = await findscu(peer(node), ["PatientName", "PatientID"], level=None, model="worklist")
            queried = await events.receive()
    assert answered.ok and len(answered.responses) == 3
    assert queried.calling_ae_title == "FINDSCU" and len(queried.items) == 3


async def test_serve_runs_one_worker_per_core_by_default_and_none_with_workers_0(tmp_path):
    from .served import _children, served_node

    for folder in ("default", "none", "file"):
        (tmp_path / folder).mkdir()
    (tmp_path / "file" / "triopacs.toml").write_text("[node]\nworkers = 0\n")
    async with served_node(tmp_path / "default") as node:
        (await echoscu(peer_of(node))).check()
        assert len(_children(node.process.pid)) == (os.cpu_count() or 1)
    async with served_node(tmp_path / "none", "--workers", "0") as node:
        (await echoscu(peer_of(node))).check()
        assert _children(node.process.pid) == []
    async with served_node(tmp_path / "file", "--config", str(tmp_path / "file" / "triopacs.toml")) as node:
        assert _children(node.process.pid) == []  # the file's 0 is the user's, not serve's default


def peer_of(served):
    from .nodes import Address

    return Address(ae_title=served.ae_title, port=served.port, host=served.host)
