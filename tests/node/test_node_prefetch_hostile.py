"""Sources that misbehave cost the prefetcher a bounded amount: a source answering far
more C-FIND matches than `max_find_matches` is cut off, a source that accepts the
connection and then says nothing is given up after `operation_timeout` (then retried,
then failed) - and neither stops the prefetcher."""

import trio
from peers import storescu
from peers.dicom_servers import RemoteAE as PeerAE
from peers.dicom_servers import dcmqrscp

from triopacs.actors import ActorFailed, ActorRestarted
from triopacs.workflow.prefetch import GetPrefetchStatus, PrefetchPriors, PrefetchQueryFailed, PrefetchStudyFailed

from .nodes import AE_TITLE
from .prefetch_support import Prior, drain, local_instances, prefetch_node, register, write_priors


async def test_a_source_answering_too_many_matches_is_cut_off(tmp_path):
    priors = write_priors(tmp_path / "priors", [Prior("MANY", "MR", "HEAD", days, images=1) for days in range(1, 31)])
    async with prefetch_node(tmp_path, {"QRSCP": "move"}, max_find_matches=5, max_studies_per_patient=100) as node:
        async with dcmqrscp("QRSCP", known_peers=[PeerAE(AE_TITLE, node.address.port)], parent_dir=tmp_path) as source:
            await register(node, "QRSCP", source.port)
            (await storescu(source, [tmp_path / "priors"])).check(expected=30)
            with trio.fail_after(120):
                done = await node.prefetch.ask(PrefetchPriors(patient_id="MANY", wait=True), timeout=None)
            held = [await local_instances(node, p.study_instance_uid) for p in priors]
    # Five matches read; each of them fetched whole; the other 25 never seen.
    assert done.stats.studies_prefetched == 5 and sum(held) == 5 and set(held) == {0, 1}


async def _silent_server(task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Accepts connections and never answers (reads, so the peer's bytes do not pile up)."""

    async def hold(stream: trio.SocketStream) -> None:
        async with stream:
            while await stream.receive_some(65536):
                pass

    await trio.serve_tcp(hold, 0, host="127.0.0.1", task_status=task_status)


async def test_a_silent_source_is_given_up_after_the_operation_timeout(tmp_path):
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(_silent_server)
        port = listener.socket.getsockname()[1]
        async with prefetch_node(tmp_path, {"SILENT": "move"}, operation_timeout=1.0, max_retry_attempts=1, retry_delay=0.1) as node:
            await register(node, "SILENT", port)
            with node.subscribe(PrefetchQueryFailed) as events:
                with trio.fail_after(30):
                    done = await node.prefetch.ask(PrefetchPriors(patient_id="P"), timeout=None)
                    finished = await node.prefetch.ask(PrefetchPriors(patient_id="P", wait=True), timeout=None)
                failures = drain(events)
            status = await node.prefetch.ask(GetPrefetchStatus())
        nursery.cancel_scope.cancel()
    assert done.queued and finished.stats.queries_failed == 1
    assert [(f.source, f.attempts, f.final) for f in failures] == [("SILENT", 1, False), ("SILENT", 2, True)]
    assert all("no end within 1 s" in f.error for f in failures)
    assert status.cumulative.queries_failed == 1 and not status.queued_patients


async def test_a_retrieval_that_breaks_fails_its_study_and_the_rest_goes_on(tmp_path):
    # The C-GET staging folder cannot be made (a file is in its way): that study fails,
    # the other source's study arrives, and the prefetcher never restarted.
    priors = write_priors(tmp_path / "priors", [Prior("BRK1", "CT", "CHEST", 5), Prior("BRK1", "CT", "CHEST", 8)])
    async with prefetch_node(tmp_path, {"GETTER": "get", "MOVER": "move"}) as node:
        (node.config.data_dir / "staging").mkdir(exist_ok=True)
        (node.config.data_dir / "staging" / "prefetch").write_text("not a folder")
        async with dcmqrscp("GETTER", parent_dir=tmp_path) as getter, dcmqrscp(
            "MOVER", known_peers=[PeerAE(AE_TITLE, node.address.port)], parent_dir=tmp_path
        ) as mover:
            await register(node, "GETTER", getter.port)
            await register(node, "MOVER", mover.port)
            (await storescu(getter, [tmp_path / "priors" / priors[0].study_instance_uid])).check(expected=2)
            (await storescu(mover, [tmp_path / "priors" / priors[1].study_instance_uid])).check(expected=2)
            with node.subscribe(PrefetchStudyFailed, ActorRestarted, ActorFailed) as events:
                with trio.fail_after(60):
                    done = await node.prefetch.ask(PrefetchPriors(patient_id="BRK1", wait=True), timeout=None)
                seen = drain(events)
            held = [await local_instances(node, p.study_instance_uid) for p in priors]
    (failed,) = [e for e in seen if isinstance(e, PrefetchStudyFailed)]
    assert failed.source == "GETTER" and failed.final and failed.error.startswith("GETTER: FileExistsError"), failed.error
    assert not [e for e in seen if isinstance(e, (ActorRestarted, ActorFailed))]
    assert held == [0, 2] and (done.stats.studies_prefetched, done.stats.studies_failed) == (1, 1)
