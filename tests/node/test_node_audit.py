"""The audit trail of a running node ([audit] on): one record per association accepted
or rejected, per C-STORE, C-FIND, C-MOVE and C-GET (with study and patient identifiers
and counts), per TLS refusal and per admin API access to data; records written before
the answer (group commit: concurrent stores share fsyncs); `triopacs audit verify`
and `export` on the result, and on a tampered copy."""

from __future__ import annotations

import json
import signal
import subprocess
import xml.etree.ElementTree as ET

import attrs
import trio
from cli_process import TRIOPACS, LineReader
from dicom_samples import SeriesSpec, write_series
from peers import echoscu, findscu, getscu, movescu, storescu

from triopacs import connect, open_node
from triopacs.actors.node.audit import GetAuditStatus
from triopacs.client.contexts import storage_contexts_for
from triopacs.config import AuditSettings
from triopacs.storage.audit_log import entries, verify

from .nodes import AE_TITLE, LOOPBACK, Address, node_config, peer, remote
from web.client import request


def audited(tmp_path, **more):
    config = node_config(tmp_path / "node", **more)
    return open_node(attrs.evolve(
        config, audit=AuditSettings(enabled=True),
        network=attrs.evolve(config.network, calling_ae_titles=("STORESCU", "FINDSCU", "MOVESCU", "GETSCU", "LOADER", "ECHOSCU")),
    ))


def records(node) -> list[dict]:
    return [e.fields for e in entries(node.config.data_dir / "audit" / "audit.jsonl")]


def by_event(found: list[dict], code: str, action: str | None = None) -> list[dict]:
    return [r for r in found if r["event"]["code"] == code and (action is None or r["action"] == action)]


async def test_every_association_and_operation_leaves_one_record(tmp_path, storescp_peer):
    series = write_series(tmp_path / "in", SeriesSpec(count=3, modality="CT", patient_id="AUD1"))
    study = series.study_instance_uid
    async with audited(tmp_path, remote=[remote(storescp_peer.ae_title, storescp_peer.port)]) as node:
        (await storescu(peer(node), series.paths)).check(expected=3)
        (await findscu(peer(node), {"PatientID": "AUD1", "StudyInstanceUID": ""}, level="STUDY")).check()
        moved = await movescu(peer(node), {"StudyInstanceUID": study}, destination_ae=storescp_peer.ae_title)
        assert moved.tool.returncode == 0, moved.tool.describe()
        got = await getscu(peer(node), {"StudyInstanceUID": study}, received_dir=tmp_path / "got")
        assert got.tool.returncode == 0, got.tool.describe()
        assert (await echoscu(peer(node), calling_ae="NOTALLOWED")).returncode != 0
        # The admin API: a study read and a study not there, both recorded.
        assert (await request(node, "GET", f"/api/v1/studies/{study}")).status_code == 200
        assert (await request(node, "GET", "/api/v1/studies/1.2.3.4")).status_code == 404
        found = records(node)

    accepted = [r for r in by_event(found, "110114") if r["outcome"] == 0]
    rejected = [r for r in by_event(found, "110114") if r["outcome"] == 4]
    assert {r["participants"][0]["user_id"] for r in accepted} == {"STORESCU", "FINDSCU", "MOVESCU", "GETSCU"}
    assert [r["participants"][0]["user_id"] for r in rejected] == ["NOTALLOWED"]
    assert "reason 3" in rejected[0]["outcome_text"]
    stores = by_event(found, "110104", "C")
    assert len(stores) == 3 and all(r["outcome"] == 0 for r in stores)
    objects = {(o["id_type"]["code"], o["id"]) for r in stores for o in r["objects"]}
    assert ("110180", study) in objects and ("2", "AUD1") in objects
    assert stores[0]["participants"][0]["role"]["code"] == "110153"  # the sender is the source
    [query] = by_event(found, "110112")
    details = dict(map(tuple, query["objects"][0]["details"]))
    assert details["PatientID"] == "AUD1" and details["matches"] == "1" and details["QueryRetrieveLevel"] == "STUDY"
    retrieves = by_event(found, "110104", "R")
    assert len(retrieves) == 2
    move = next(r for r in retrieves if any(p["user_id"] == storescp_peer.ae_title for p in r["participants"]))
    assert dict(map(tuple, move["objects"][0]["details"]))["completed"] == "3" and move["objects"][0]["id"] == study
    reads = by_event(found, "110103")
    assert [r["outcome"] for r in reads] == [0, 4] and reads[0]["objects"][0]["id"] == study
    assert [r["seq"] for r in found] == list(range(1, len(found) + 1))


async def test_concurrent_stores_share_fsyncs_and_the_trail_verifies(tmp_path, capsys):
    series = [write_series(tmp_path / "in", SeriesSpec(count=4, modality="CT", patient_id=f"GRP{i}")) for i in range(6)]
    async with audited(tmp_path) as node:

        async def load(paths) -> None:
            async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, calling_ae_title="LOADER",
                               contexts=storage_contexts_for(paths)) as association:
                for path in paths:
                    assert (await association.store(path)).ok

        async with trio.open_nursery() as nursery:
            for one in series:
                nursery.start_soon(load, one.paths)
        status = await node.audit.ask(GetAuditStatus())
    # 6 associations and 24 stores: 30 records, fewer writes (and fsyncs) than records.
    assert status.records == 30 and status.batches < status.records
    trail = node.config.data_dir / "audit" / "audit.jsonl"

    from triopacs.cli import main

    assert main(["audit", "verify", "--file", str(trail)]) == 0
    assert "ok: 30 records" in capsys.readouterr().out
    assert main(["audit", "export", "--since", "2000-01-01", "--file", str(trail), "-o", str(tmp_path / "audit.xml")]) == 0
    exported = ET.parse(tmp_path / "audit.xml").getroot()
    assert exported.tag == "AuditMessages" and len(exported) == 30
    assert {m.find("EventIdentification/EventID").get("csd-code") for m in exported} == {"110114", "110104"}
    capsys.readouterr()
    # Tampering: a patient ID changed in record 12 is named.
    text = trail.read_text().splitlines(keepends=True)
    fields = json.loads(text[11])
    fields["objects"][-1]["id"] = "SOMEONE-ELSE"
    text[11] = json.dumps(fields, sort_keys=True, separators=(",", ":")) + "\n"
    trail.write_text("".join(text))
    assert main(["audit", "verify", "--file", str(trail)]) == 1
    assert "record 12 was changed" in capsys.readouterr().err


async def test_with_sync_fsync_records_are_on_disk_before_the_answer(tmp_path):
    series = write_series(tmp_path / "in", SeriesSpec(count=3, modality="CT", patient_id="ORDER"))
    config = attrs.evolve(node_config(tmp_path / "node"), audit=AuditSettings(enabled=True, sync="fsync"))
    async with open_node(config) as node:
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(series.paths)) as association:
            for done, path in enumerate(series.paths, 1):
                assert (await association.store(path)).ok
                assert len(by_event(records(node), "110104", "C")) == done


async def test_with_sync_os_records_are_handed_over_without_waiting(tmp_path):
    series = write_series(tmp_path / "in", SeriesSpec(count=3, modality="CT", patient_id="LATER"))
    config = attrs.evolve(node_config(tmp_path / "node"), audit=AuditSettings(enabled=True, sync="os"))
    async with open_node(config) as node:
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(series.paths)) as association:
            for path in series.paths:
                assert (await association.store(path)).ok
        # The mailbox is first in, first out: once this is answered every record before it is written.
        status = await node.audit.ask(GetAuditStatus())
        assert status.records == 4 and len(by_event(records(node), "110104", "C")) == 3


async def test_worker_processes_ask_the_security_and_audit_actors_of_the_node(tmp_path):
    """Associations in a worker process reach /node/services/security and /audit over
    the process link: rules, roles and records work as in one process."""
    from triopacs.config import AccessSettings
    from triopacs.storage.access import AERule
    from triopacs.storage.security_db import open_security_db, put_ae_rule

    (tmp_path / "node").mkdir()
    db = open_security_db(str(tmp_path / "node" / "security.sqlite"))
    put_ae_rule(db, AERule(ae_title="STORESCU", role="technologist"))
    put_ae_rule(db, AERule(ae_title="LOOKER", role="viewer"))
    db.close()
    series = write_series(tmp_path / "in", SeriesSpec(count=2, modality="CT", patient_id="WRK1"))
    config = attrs.evolve(
        node_config(tmp_path / "node", workers=1), audit=AuditSettings(enabled=True), access=AccessSettings(enabled=True)
    )
    async with open_node(config) as node:
        (await storescu(peer(node), series.paths)).check(expected=2)
        refused = await storescu(peer(node), series.paths, calling_ae="LOOKER")
        assert all("0x124" in status for _path, status in refused.responses), refused.tool.describe()
        assert (await echoscu(peer(node), calling_ae="STRANGER")).returncode != 0
        found = records(node)
    assert len(by_event(found, "110104", "C")) == 2
    alerts = by_event(found, "110113")
    assert len(alerts) == 2 and alerts[0]["event_types"][0]["code"] == "110132" and "may not store" in alerts[0]["outcome_text"]
    assert [r["outcome"] for r in by_event(found, "110114")] == [0, 0, 4]


async def test_a_killed_node_loses_no_record_of_what_it_answered(tmp_path):
    """SIGKILL right after the stores were answered (durability fsync, one worker
    process): every answered store has its record, and the chain verifies."""
    series = write_series(tmp_path / "in", SeriesSpec(count=5, modality="CT", patient_id="KILL1"))
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\nport = 0\ndata_dir = "{tmp_path / "data"}"\nworkers = 1\n[http]\nenabled = false\n[audit]\nenabled = true\n')
    process = await trio.lowlevel.open_process([*TRIOPACS, "serve", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        with trio.fail_after(60):
            line = await LineReader(process.stdout).readline()
        assert line.startswith("ready"), line
        port = int(line.split("dicom=")[1].split()[0].rsplit(":", 1)[1])
        (await storescu(Address(AE_TITLE, port), series.paths)).check(expected=5)
        process.send_signal(signal.SIGKILL)
        await process.wait()
    finally:
        process.kill()
        await process.wait()
    trail = tmp_path / "data" / "audit" / "audit.jsonl"
    stores = [e.fields for e in entries(trail) if e.fields["event"]["code"] == "110104"]
    assert len(stores) == 5 and verify(trail).ok
