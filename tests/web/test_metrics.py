"""/metrics after real DCMTK traffic: the counts are those of what the peers did."""

from __future__ import annotations

from dataclasses import replace

from dicom_samples import SeriesSpec, write_series
from peers import echoscu, findscu, storescu
from prometheus_client.parser import text_string_to_metric_families

from node.nodes import peer, running_node
from web.client import get


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_count_what_dcmtk_peers_did(tmp_path):
    write_series(tmp_path / "in", SeriesSpec(count=4, modality="CT"))
    async with running_node(tmp_path) as node:
        ae = node.config.node.ae_title
        (await echoscu(peer(node))).check()
        stored = (await storescu(peer(node), [tmp_path / "in"])).check(expected=4)
        found = await findscu(peer(node), {"StudyInstanceUID": "", "PatientID": ""}, level="STUDY")
        assert found.ok and len(found.responses) == 1
        rejected = await echoscu(replace(peer(node), ae_title="NOTTHISNODE"))
        assert rejected.returncode != 0
        scraped = samples((await get(node, "/metrics")).text)
    sizes = sum(p.stat().st_size for p in (tmp_path / "in").rglob("*") if p.is_file())
    ct = (("sop_class", "CT Image Storage"),)
    assert scraped[("pacs_associations_total", (("ae_title", ae),))] == 3
    assert scraped[("pacs_associations_active", (("ae_title", ae),))] == 0
    assert scraped[("pacs_associations_rejected_total", (("ae_title", ae),))] == 1
    assert scraped[("pacs_associations_aborted_total", (("ae_title", ae),))] == 0
    assert scraped[("pacs_images_stored_total", ct)] == len(stored.succeeded) == 4
    # What arrived is the files as storescu sent them, give or take their meta headers.
    assert 0.5 * sizes < scraped[("pacs_storage_bytes_total", ct)] < 1.5 * sizes
    assert scraped[("pacs_storage_latency_seconds_count", ())] == 4
    assert scraped[("pacs_queries_total", (("level", "STUDY"),))] == 1
    assert scraped[("pacs_query_latency_seconds_count", ())] == 1
    assert scraped[("pacs_tier_healthy", (("tier", "local"),))] == 1
    assert scraped[("pacs_actor_mailbox_depth", (("actor", "/node/services/index"),))] >= 0
    assert ("pacs_actor_mailbox_capacity", (("actor", "/node/services/index"),)) in scraped
    assert scraped[("pacs_metrics_events_dropped", ())] == 0


async def test_scheduler_runs_and_restarts_are_counted(tmp_path):
    from triopacs.workflow.tasks.messages import TriggerTask

    async with running_node(tmp_path) as node:
        with node.subscribe() as events:
            await node.scheduler.ask(TriggerTask(task_id="builtin-verification"))
            async for event in events:
                if type(event).__name__ == "TaskExecuted":
                    break
        scraped = samples((await get(node, "/metrics")).text)
    assert scraped[("pacs_scheduler_runs_total", (("outcome", "completed"),))] == 1
