"""MPPS SCP: pynetdicom (a separate process) creates, updates, completes and
discontinues performed procedure steps on a running node; refused transitions get the
PS3.4 F.7 statuses, events are published, the steps persist in the index file."""

import json
from pathlib import Path

import trio

from triopacs.actors.node.dimse_n_events import MPPSCompleted, MPPSDiscontinued, MPPSStarted

from .nodes import AE_TITLE, index_rows, run_peer_script, running_node

SCRIPT = Path(__file__).with_name("pynetdicom_nscu.py")
MPPS = "1.2.840.10008.3.1.2.3.3"


async def pynetdicom_n(node, tmp_path: Path, steps: list[dict], timeout: float = 60) -> dict:
    steps_file = tmp_path / f"steps-{trio.current_time():.6f}.json"
    steps_file.write_text(json.dumps(steps))
    return await run_peer_script(SCRIPT, str(node.address.port), AE_TITLE, str(steps_file), timeout=timeout)


def _text(vr: str, value: str) -> dict:
    return {"vr": vr, "Value": [value]}


def creation(**override) -> dict:
    attributes = {
        "00080060": _text("CS", "CT"),
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
        "00100020": _text("LO", "PAT1"),
        "00400241": _text("AE", "MODALITY"),
        "00400244": _text("DA", "20261203"),
        "00400245": _text("TM", "101500"),
        "00400252": _text("CS", "IN PROGRESS"),
        "00400253": _text("SH", "PPS1"),
        "00400270": {"vr": "SQ", "Value": [{"0020000D": _text("UI", "1.2.826.0.1.3680043.9.7.1"),
                                            "00400009": _text("SH", "SPS1")}]},
    }
    attributes.update(override)
    return {key: value for key, value in attributes.items() if value is not None}


def create(instance: str, dataset: dict) -> dict:
    return {"op": "create", "class": MPPS, "instance": instance, "dataset": dataset}


def n_set(instance: str, dataset: dict) -> dict:
    return {"op": "set", "class": MPPS, "instance": instance, "dataset": dataset}


END = {"00400250": _text("DA", "20261203"), "00400251": _text("TM", "103000")}


async def test_create_set_complete_then_a_late_set_is_refused(tmp_path):
    uid = "1.2.826.0.1.3680043.9.7.2"
    async with running_node(tmp_path) as node:
        with node.subscribe(MPPSStarted, MPPSCompleted) as events:
            result = await pynetdicom_n(node, tmp_path, [
                create(uid, creation()),
                n_set(uid, {"00400254": _text("LO", "Head CT")}),
                n_set(uid, {"00400252": _text("CS", "COMPLETED"), **END}),
                n_set(uid, {"00400254": _text("LO", "too late")}),
            ])
            started = await events.receive()
            completed = await events.receive()
        rows = index_rows(node, "SELECT status, attributes FROM mpps WHERE sop_instance_uid = ?", uid)
    statuses = [r["status"] for r in result["results"]]
    assert statuses == [0x0000, 0x0000, 0x0000, 0x0110]
    assert result["results"][3]["error_id"] == 0xA710
    assert isinstance(started, MPPSStarted) and started.sop_instance_uid == uid and started.calling_ae_title == "PYNETDICOM"
    assert isinstance(completed, MPPSCompleted) and completed.sop_instance_uid == uid
    assert rows[0][0] == "COMPLETED" and json.loads(rows[0][1])["00400254"] == _text("LO", "Head CT")


async def test_discontinued_is_final_too(tmp_path):
    uid = "1.2.826.0.1.3680043.9.7.3"
    async with running_node(tmp_path) as node:
        with node.subscribe(MPPSDiscontinued) as events:
            result = await pynetdicom_n(node, tmp_path, [
                create(uid, creation()),
                n_set(uid, {"00400252": _text("CS", "DISCONTINUED"), **END}),
                n_set(uid, {"00400252": _text("CS", "COMPLETED")}),
            ])
            discontinued = await events.receive()
    assert [r["status"] for r in result["results"]] == [0x0000, 0x0000, 0x0110]
    assert discontinued.sop_instance_uid == uid


async def test_bad_creations_and_sets_get_their_statuses_and_the_association_goes_on(tmp_path):
    uid = "1.2.826.0.1.3680043.9.7.4"
    async with running_node(tmp_path) as node:
        result = await pynetdicom_n(node, tmp_path, [
            create("1.2.826.0.1.3680043.9.7.5", creation(**{"00400253": None})),  # no PPS ID
            create("1.2.826.0.1.3680043.9.7.6", creation(**{"00400252": _text("CS", "COMPLETED")})),
            create(uid, creation()),
            create(uid, creation()),  # twice
            n_set(uid, {"00080060": _text("CS", "MR")}),  # fixed at creation
            n_set(uid, {"00400252": _text("CS", "COMPLETED")}),  # no end date/time
            n_set(uid, {"00400252": _text("CS", "FINISHED")}),
            n_set("1.2.826.0.1.3680043.9.7.99", {"00400254": _text("LO", "x")}),  # unknown step
            n_set(uid, {"00400252": _text("CS", "COMPLETED"), **END}),  # still served
        ])
        rows = index_rows(node, "SELECT sop_instance_uid, status FROM mpps ORDER BY pk")
    results = result["results"]
    assert [r["status"] for r in results] == [0x0120, 0x0106, 0x0000, 0x0111, 0x0106, 0x0121, 0x0106, 0x0112, 0x0000]
    assert "Performed Procedure Step ID" in results[0]["comment"] and 0x00080060 in results[4]["tags"]
    assert rows == [(uid, "COMPLETED")]


async def test_steps_survive_a_restart(tmp_path):
    uid = "1.2.826.0.1.3680043.9.7.8"
    async with running_node(tmp_path) as node:
        assert [r["status"] for r in (await pynetdicom_n(node, tmp_path, [create(uid, creation())]))["results"]] == [0]
    async with running_node(tmp_path) as node:
        result = await pynetdicom_n(node, tmp_path, [n_set(uid, {"00400252": _text("CS", "COMPLETED"), **END})])
    assert [r["status"] for r in result["results"]] == [0]
