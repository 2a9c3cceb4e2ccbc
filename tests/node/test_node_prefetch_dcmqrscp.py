"""The prefetcher against DCMTK dcmqrscp sources: a worklist item added queues its
patient; a source that is down is tried again then given up while the others are
served; a source that refuses to C-MOVE to our AE fails its study at once (permanent);
the per-source rate limit spaces the associations; a node stopped in the middle of its
queue resumes it, and retrieves nothing twice."""

import functools
import sqlite3

import trio
from peers import storescu
from peers.dicom_servers import RemoteAE as PeerAE
from peers.dicom_servers import dcmqrscp
from peers.process import free_port

from triopacs import open_node
from triopacs.actors import ActorFailed, ActorRestarted, read_trace
from triopacs.actors.node.index_dimse_n import AddWorklistItems
from triopacs.workflow.prefetch import (
    GetPrefetchStatus,
    PatientPrefetched,
    PrefetchPriors,
    PrefetchQueryFailed,
    PrefetchRequestSent,
    PrefetchStudyDone,
    PrefetchStudyFailed,
    RunPrefetchCycle,
)
from triopacs.workflow.prefetch.messages import PrefetchCycleFinished

from .nodes import AE_TITLE, index_rows
from .prefetch_support import (
    Prior,
    drain,
    items,
    local_instances,
    prefetch_config,
    prefetch_node,
    register,
    wait_for,
    worklist_item,
    write_priors,
)


async def test_a_worklist_item_added_queues_its_patient(tmp_path):
    priors = write_priors(tmp_path / "priors", [Prior("DQ1", "CT", "CHEST", 15, series=2), Prior("DQ1", "MR", "HEAD", 400)])
    async with prefetch_node(tmp_path, {"QRSCP": "move"}) as node:
        async with dcmqrscp("QRSCP", known_peers=[PeerAE(AE_TITLE, node.address.port)], parent_dir=tmp_path) as source:
            await register(node, "QRSCP", source.port)
            (await storescu(source, [tmp_path / "priors"])).check(expected=6)
            with node.subscribe(PatientPrefetched, PrefetchCycleFinished) as events:
                await node.index.ask(AddWorklistItems(items=items(worklist_item("SPS9", "DQ1", "CT", "CHEST"))))
                (done,) = await wait_for(events, PatientPrefetched, 1)
                # A cycle asked for now finds the item in the look ahead (24 h), but its patient
                # done within requeue_after; a request queues it all the same.
                started = await node.prefetch.ask(RunPrefetchCycle())
                asked = await node.prefetch.ask(PrefetchPriors(patient_id="DQ1", wait=True), timeout=None)
            counts = [await local_instances(node, p.study_instance_uid) for p in priors]
    assert counts == [4, 0]  # the one in the lookback, whole; not the older one
    assert started.patients == 0 and (asked.stats.studies_prefetched, asked.stats.studies_already_present) == (0, 1)
    assert (done.stats.studies_prefetched, done.stats.series_prefetched, done.stats.instances_prefetched) == (1, 2, 4)


async def test_a_source_down_or_refusing_does_not_keep_the_others_from_serving(tmp_path):
    priors = write_priors(tmp_path / "priors", [Prior("DQ2", "CT", "CHEST", 10), Prior("DQ2", "CT", "CHEST", 20)])
    closed_port = free_port()  # nothing listens there
    sources = {"DOWN": "move", "NOMOVE": "move", "QRSCP": "move"}
    async with prefetch_node(tmp_path, sources, max_retry_attempts=2, retry_delay=0.1) as node:
        # NOMOVE does not know our AE: it answers C-FIND, and refuses to C-MOVE to us.
        async with dcmqrscp("NOMOVE", parent_dir=tmp_path) as refusing, dcmqrscp(
            "QRSCP", known_peers=[PeerAE(AE_TITLE, node.address.port)], parent_dir=tmp_path
        ) as serving:
            await register(node, "DOWN", closed_port)
            await register(node, "NOMOVE", refusing.port)
            await register(node, "QRSCP", serving.port)
            (await storescu(refusing, [tmp_path / "priors" / priors[0].study_instance_uid])).check(expected=2)
            (await storescu(serving, [tmp_path / "priors" / priors[1].study_instance_uid])).check(expected=2)
            with node.subscribe(PrefetchQueryFailed, PrefetchStudyFailed, PrefetchStudyDone, capacity=1024) as events:
                with trio.fail_after(120):
                    done = await node.prefetch.ask(PrefetchPriors(patient_id="DQ2", wait=True), timeout=None)
                seen = drain(events)
            counts = [await local_instances(node, p.study_instance_uid) for p in priors]
            status = await node.prefetch.ask(GetPrefetchStatus())
    query_failures = [(e.source, e.attempts, e.final) for e in seen if isinstance(e, PrefetchQueryFailed)]
    assert query_failures == [("DOWN", 1, False), ("DOWN", 2, False), ("DOWN", 3, True)]  # the first try and two retries
    (refused,) = [e for e in seen if isinstance(e, PrefetchStudyFailed)]
    assert (refused.source, refused.study_instance_uid, refused.attempts, refused.final) == ("NOMOVE", priors[0].study_instance_uid, 1, True)
    assert "0xA801" in refused.error  # Move Destination Unknown: not tried again
    (fetched,) = [e for e in seen if isinstance(e, PrefetchStudyDone)]
    assert (fetched.source, fetched.study_instance_uid, fetched.instances) == ("QRSCP", priors[1].study_instance_uid, 2)
    assert counts == [0, 2]
    stats = done.stats
    assert (stats.patients_processed, stats.studies_prefetched, stats.studies_failed, stats.queries_failed) == (1, 1, 1, 1)
    assert status.cumulative == stats + type(stats)(duration=status.cumulative.duration) and not status.queued_patients


async def test_the_rate_limit_spaces_the_associations_to_a_source(tmp_path):
    rate = 240  # a minute: one association every 0.25 s
    patients = [f"RL{n}" for n in range(4)]
    priors = write_priors(tmp_path / "priors", [Prior(p, "CT", "CHEST", 3) for p in patients])
    async with prefetch_node(tmp_path, {"QRSCP": "move"}, rate_limit_per_minute=float(rate), max_concurrent_prefetches=4) as node:
        async with dcmqrscp("QRSCP", known_peers=[PeerAE(AE_TITLE, node.address.port)], parent_dir=tmp_path, extra_args=["-v"]) as source:
            await register(node, "QRSCP", source.port)
            (await storescu(source, [tmp_path / "priors"])).check(expected=8)
            received_before = source.server.log_text().count("Association Received")
            with node.subscribe(PrefetchRequestSent, PatientPrefetched, capacity=1024) as events:
                for patient in patients:
                    await node.prefetch.ask(PrefetchPriors(patient_id=patient))
                seen: list = []
                await wait_for(events, PatientPrefetched, len(patients), seen=seen)
                sent = [e for e in seen + drain(events) if isinstance(e, PrefetchRequestSent)]
            received = source.server.log_text().count("Association Received") - received_before
            counts = [await local_instances(node, p.study_instance_uid) for p in priors]
    assert counts == [2] * len(patients)
    assert len(sent) == received == 2 * len(patients)  # one C-FIND and one C-MOVE association each
    # The bucket spaces the tokens exactly (tests/workflow/test_prefetch_rate.py, on a mock
    # clock); an association opens when its task runs after that, a few ms later at most.
    jitter = 0.05
    times = sorted(e.at for e in sent)
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert min(gaps) >= 60 / rate - jitter, gaps
    assert times[-1] - times[0] >= (len(times) - 1) * 60 / rate - jitter


HELD_PER_STUDY = (
    "SELECT study.study_instance_uid, count(*) FROM instance JOIN series ON instance.series_pk = series.pk"
    " JOIN study ON series.study_pk = study.pk GROUP BY study.study_instance_uid"
)


def retrieved(trace) -> list[str]:
    """The studies the prefetcher asked a source to send, as the run's trace recorded them."""
    return [
        record["payload"]["subject"] for record in read_trace(trace)
        if record["kind"] == "effect" and record["to"] == "prefetch-request" and record["payload"]["purpose"] != "find"
    ]


async def test_a_node_stopped_mid_queue_resumes_and_fetches_nothing_twice(tmp_path):
    priors = write_priors(tmp_path / "priors", [Prior("DQ3", "CT", "CHEST", days, images=3) for days in (5, 10, 15, 20)])
    port = free_port()  # dcmqrscp moves to the node at this port, in both runs
    async with dcmqrscp("QRSCP", known_peers=[PeerAE(AE_TITLE, port)], parent_dir=tmp_path) as source:
        (await storescu(source, [tmp_path / "priors"])).check(expected=12)
        run = functools.partial(
            prefetch_config, tmp_path / "node", {"QRSCP": "move"}, ports={"QRSCP": source.port}, port=port, max_concurrent_prefetches=1,
        )
        # First run: stopped as soon as the first study is in.
        async with open_node(run(trace_file=tmp_path / "first.jsonl")) as node:
            with node.subscribe(PrefetchStudyDone, capacity=1024) as events:
                await node.prefetch.ask(PrefetchPriors(patient_id="DQ3"))
                await wait_for(events, PrefetchStudyDone, 1)
        complete_after_first = {uid for uid, count in index_rows(node, HELD_PER_STUDY) if count == 3}
        queued_after_first = sqlite_rows(node.config.data_dir / "prefetch.sqlite", "SELECT study_instance_uid FROM prefetch_study")
        # Second run: the queue is resumed from prefetch.sqlite, with no one asking.
        async with open_node(run(trace_file=tmp_path / "second.jsonl")) as node:
            with trio.fail_after(120):
                while (status := await node.prefetch.ask(GetPrefetchStatus())).queued_studies or status.running:
                    await trio.sleep(0.05)  # polls the status: the queue may be empty before we could subscribe
            counts = [await local_instances(node, p.study_instance_uid) for p in priors]
    first, second = retrieved(tmp_path / "first.jsonl"), retrieved(tmp_path / "second.jsonl")
    assert counts == [3, 3, 3, 3]
    assert 1 <= len(complete_after_first) < 4 and queued_after_first  # stopped with work left
    assert {uid for (uid,) in queued_after_first} == {p.study_instance_uid for p in priors} - set(first[:1])
    assert not set(second) & complete_after_first  # nothing complete was retrieved again
    assert set(first) | set(second) == {p.study_instance_uid for p in priors}
    assert len(second) == len(set(second))
    assert not status.queued_patients
    assert status.cumulative.studies_prefetched + status.cumulative.studies_already_present == 4


def sqlite_rows(path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


async def test_the_periodic_cycle_prefetches_for_the_items_in_the_look_ahead(tmp_path):
    priors = write_priors(tmp_path / "priors", [Prior("SOON", "CT", "CHEST", 12), Prior("LATER", "CT", "CHEST", 12)])
    async with prefetch_node(
        tmp_path, {"QRSCP": "move"}, on_worklist_change=False, cycle_interval=0.5, lookahead_hours=4.0, requeue_after=0.0,
    ) as node:
        async with dcmqrscp("QRSCP", known_peers=[PeerAE(AE_TITLE, node.address.port)], parent_dir=tmp_path) as source:
            await register(node, "QRSCP", source.port)
            (await storescu(source, [tmp_path / "priors"])).check(expected=4)
            with node.subscribe(PrefetchCycleFinished) as events:
                await node.index.ask(AddWorklistItems(items=items(
                    worklist_item("SPS21", "SOON", "CT", hours_ahead=2), worklist_item("SPS22", "LATER", "CT", hours_ahead=10),
                )))
                (cycle,) = await wait_for(events, PrefetchCycleFinished, 1)
                # The next cycle finds SOON's prior here, and LATER still beyond the look ahead.
                (following,) = await wait_for(events, PrefetchCycleFinished, 1)
            counts = [await local_instances(node, p.study_instance_uid) for p in priors]
    assert cycle.record.trigger == following.record.trigger == "schedule"
    assert (cycle.record.stats.patients_processed, cycle.record.stats.studies_prefetched) == (1, 1)
    assert counts == [2, 0]
    assert (following.record.stats.patients_processed, following.record.stats.studies_already_present) == (1, 1)


async def test_a_prefetcher_that_crashes_is_restarted_and_its_queue_goes_on(tmp_path):
    # A real fault: another process holds prefetch.sqlite's write lock past the busy
    # timeout, so recording a finished study fails and the actor crashes. Its supervisor
    # restarts it; the queue comes back from the file; the study whose end was not
    # recorded is found complete in the index, not retrieved again.
    priors = write_priors(tmp_path / "priors", [Prior("CRASH1", "CT", "CHEST", days, images=2) for days in (4, 8, 12)])
    # One association every 2 s: the lock is taken well before the second study's goes.
    async with prefetch_node(tmp_path, {"QRSCP": "move"}, max_concurrent_prefetches=1, rate_limit_per_minute=30.0) as node:
        async with dcmqrscp("QRSCP", known_peers=[PeerAE(AE_TITLE, node.address.port)], parent_dir=tmp_path) as source:
            await register(node, "QRSCP", source.port)
            (await storescu(source, [tmp_path / "priors"])).check(expected=6)
            seen: list = []
            with node.subscribe(PrefetchStudyDone, PrefetchRequestSent, ActorFailed, ActorRestarted, PrefetchCycleFinished,
                                capacity=1024) as events:
                await node.prefetch.ask(PrefetchPriors(patient_id="CRASH1"))
                await wait_for(events, PrefetchStudyDone, 1, seen=seen)
                blocker = sqlite3.connect(node.config.data_dir / "prefetch.sqlite", isolation_level=None)
                blocker.execute("BEGIN IMMEDIATE")  # the prefetcher's next write waits, then fails
                try:
                    (failed,) = await wait_for(events, ActorFailed, 1, seen=seen)
                finally:
                    blocker.execute("ROLLBACK")
                    blocker.close()
                (resumed,) = await wait_for(events, PrefetchCycleFinished, 1, seen=seen)
            counts = [await local_instances(node, p.study_instance_uid) for p in priors]
            status = await node.prefetch.ask(GetPrefetchStatus())
    moves = [e.subject for e in seen if isinstance(e, PrefetchRequestSent) and e.purpose == "move"]
    assert failed.path == "/node/services/prefetch" and "database is locked" in failed.error
    assert [e.path for e in seen if isinstance(e, ActorRestarted)] == ["/node/services/prefetch"]
    assert resumed.record.trigger == "resumed"
    assert counts == [2, 2, 2]
    assert sorted(moves) == sorted(p.study_instance_uid for p in priors)  # each retrieved once
    assert not status.queued_patients and status.queued_studies == 0
