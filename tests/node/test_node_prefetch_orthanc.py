"""The prefetcher against a real Orthanc: a DCMTK `findscu -W` worklist query answered
by the node queues its patients; their priors that match the criteria arrive by C-MOVE
(or C-GET) with Orthanc's instance counts, the others do not, the ones the node holds
already are skipped, and a second query fetches nothing again."""

import datetime as dt
from dataclasses import replace

import trio
from dicom_samples import SeriesSpec, new_uid, write_series
from peers import findscu_worklist, storescu
from peers.dicom_servers import RemoteAE as PeerAE
from peers.dicom_servers import orthanc

from triopacs.actors.node.index_dimse_n import AddWorklistItems
from triopacs.workflow.prefetch import (
    GetPrefetchStatus,
    PatientPrefetched,
    PrefetchCycleFinished,
    PrefetchRequestSent,
    PrefetchStudyDone,
)

from .nodes import AE_TITLE, index_rows, peer
from .prefetch_support import TODAY, Prior, items, local_instances, prefetch_node, register, wait_for, worklist_item, write_priors

SOURCE = "ORTHANC"

PRIORS = [
    # PRE1, scheduled for a CT of the chest
    Prior("PRE1", "CT", "CHEST", 30, series=2),  # fetched
    Prior("PRE1", "MR", "HEAD", 60),  # fetched (two priors allowed)
    Prior("PRE1", "CT", "CHEST", 800),  # older than the lookback: not fetched
    # PRE2, scheduled for an MR of the head: its recent MR is here already
    Prior("PRE2", "MR", "HEAD", 10),  # present: skipped
    Prior("PRE2", "CT", "ABDOMEN", 100),  # fetched
    # PRE3, scheduled for a CT: the two CTs come before the newer MR, and the cut is two
    Prior("PRE3", "CT", "CHEST", 20),
    Prior("PRE3", "MR", "HEAD", 7),  # not fetched: the other modality, beyond the cut
    Prior("PRE3", "CT", "CHEST", 40),
    # PRE4 has no worklist item: nothing of it is fetched
    Prior("PRE4", "CT", "CHEST", 5),
]
EXPECTED = {0: True, 1: True, 2: False, 3: True, 4: True, 5: True, 6: False, 7: True, 8: False}
WORKLIST = [
    worklist_item("SPS1", "PRE1", "CT", "CHEST"),
    worklist_item("SPS2", "PRE2", "MR", "HEAD"),
    worklist_item("SPS3", "PRE3", "CT", "CHEST"),
]


async def _orthanc_instances(source) -> dict[str, int]:
    """Instances per Study Instance UID, as Orthanc counts them."""
    counts = {}
    for study in await source.rest_get("/studies?expand"):
        statistics = await source.rest_get(f"/studies/{study['ID']}/statistics")
        counts[study["MainDicomTags"]["StudyInstanceUID"]] = int(statistics["CountInstances"])
    return counts


async def _prefetch_from_orthanc(tmp_path, retrieve: str):
    priors = write_priors(tmp_path / "priors", PRIORS)
    async with prefetch_node(
        tmp_path, {SOURCE: retrieve}, max_studies_per_patient=2, lookback_days=365, on_worklist_change=False,
        requeue_after=0.0,  # the second query asks the source again (and finds every prior here)
    ) as node:
        async with orthanc(SOURCE, known_peers=[PeerAE(AE_TITLE, node.address.port), PeerAE("STORESCU", 104)], parent_dir=tmp_path) as source:
            await register(node, SOURCE, source.port)
            (await storescu(source, [tmp_path / "priors"])).check(expected=sum(p.instances for p in priors))
            # PRE2's MR is here already.
            (await storescu(peer(node), [tmp_path / "priors" / priors[3].study_instance_uid])).check(expected=2)
            await node.index.ask(AddWorklistItems(items=items(*WORKLIST)))
            with node.subscribe(PatientPrefetched, PrefetchStudyDone, PrefetchCycleFinished, PrefetchRequestSent, capacity=4096) as events:
                result, answers = await findscu_worklist(peer(node), {"PatientID": "", "PatientName": ""}, out_dir=tmp_path / "wl1")
                assert result.ok and len(answers) == 3
                (cycle,) = await wait_for(events, PrefetchCycleFinished, 1)
            counts = {p.study_instance_uid: await local_instances(node, p.study_instance_uid) for p in priors}
            at_source = await _orthanc_instances(source)
            # The same query again: every prior is here, none is retrieved again.
            with node.subscribe(PrefetchStudyDone, PrefetchCycleFinished, PrefetchRequestSent, capacity=4096) as events:
                again, _ = await findscu_worklist(peer(node), {"PatientID": "", "PatientName": ""}, out_dir=tmp_path / "wl2")
                assert again.ok
                (second,) = await wait_for(events, PrefetchCycleFinished, 1)
                sent_again = []
                while True:
                    try:
                        sent_again.append(events.receive_nowait())
                    except trio.WouldBlock:
                        break
            status = await node.prefetch.ask(GetPrefetchStatus())
    return priors, counts, at_source, cycle.record, second.record, sent_again, status


async def _check(tmp_path, retrieve: str) -> None:
    priors, counts, at_source, first, second, sent_again, status = await _prefetch_from_orthanc(tmp_path, retrieve)
    for index, prior in enumerate(priors):
        uid = prior.study_instance_uid
        if EXPECTED[index]:
            assert counts[uid] == at_source[uid] == prior.instances, (index, prior)
        else:
            assert counts[uid] == 0, (index, prior)
    stats = first.stats
    assert first.trigger == "worklist-query"
    assert (stats.patients_processed, stats.studies_prefetched, stats.studies_already_present, stats.studies_failed) == (3, 5, 1, 0)
    assert stats.series_prefetched == 6 and stats.instances_prefetched == 12 and stats.bytes_downloaded > 12 * 100_000
    assert (second.stats.studies_prefetched, second.stats.studies_already_present) == (0, 6)
    assert not [e for e in sent_again if isinstance(e, PrefetchRequestSent) and e.purpose != "find"]
    assert status.cumulative.studies_prefetched == 5 and status.cycles_completed == 2 and not status.queued_patients


async def test_a_worklist_query_prefetches_the_priors_by_c_move(tmp_path):
    await _check(tmp_path, "move")


async def test_a_worklist_query_prefetches_the_priors_by_c_get(tmp_path):
    await _check(tmp_path, "get")


async def test_the_series_cut_retrieves_the_preferred_series_only(tmp_path):
    # One prior CT with a chest and an abdomen series; the step is a CT of the abdomen.
    study_uid = new_uid()
    base = SeriesSpec(count=2, modality="CT", patient_id="SER1", study_instance_uid=study_uid,
                      study_date=(TODAY - dt.timedelta(days=30)).strftime("%Y%m%d"))
    chest = write_series(tmp_path / "priors", replace(base, body_part_examined="CHEST", series_number=1))
    abdomen = write_series(tmp_path / "priors", replace(base, body_part_examined="ABDOMEN", series_number=2))
    async with prefetch_node(tmp_path, {SOURCE: "move"}, max_series_per_study=1) as node:
        async with orthanc(SOURCE, known_peers=[PeerAE(AE_TITLE, node.address.port), PeerAE("STORESCU", 104)], parent_dir=tmp_path) as source:
            await register(node, SOURCE, source.port)
            (await storescu(source, [tmp_path / "priors"])).check(expected=4)
            with node.subscribe(PatientPrefetched) as events:
                await node.index.ask(AddWorklistItems(items=items(worklist_item("SPS7", "SER1", "CT", "ABDOMEN"))))
                (done,) = await wait_for(events, PatientPrefetched, 1)
            held = index_rows(node, "SELECT series_instance_uid, count(*) FROM instance JOIN series ON instance.series_pk = series.pk GROUP BY 1")
    assert held == [(abdomen.series_instance_uid, 2)] and chest.series_instance_uid not in dict(held)
    assert (done.stats.studies_prefetched, done.stats.series_prefetched, done.stats.instances_prefetched) == (1, 1, 2)
