"""Modality Worklist C-FIND SCP: items added through the index actor's typed messages,
queried by DCMTK `findscu -W` and by triopacs's own SCU on a running node; every query
answered is published as WorklistQueried; a completed MPPS marks its item done."""

import datetime
from pathlib import Path

from peers import findscu
from pydicom.dataset import Dataset

from triopacs import connect
from triopacs.actors.node.dimse_n_events import WorklistQueried
from triopacs.actors.node.index_dimse_n import AddWorklistItems, ListWorklistItems
from triopacs.protocol.catalog import MODALITY_WORKLIST_FIND
from triopacs.protocol.negotiation import ProposedContext
from triopacs.storage.worklist import item_from_dataset

from .nodes import AE_TITLE, LOOPBACK, index_rows, peer, run_peer_script, running_node
from .test_node_mpps import END, _text, create, creation, n_set, pynetdicom_n

TOMORROW = (datetime.date.today() + datetime.timedelta(days=1)).strftime("%Y%m%d")


def item(step_id: str, patient: str, name: str, modality: str, station: str, time: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName, ds.PatientID = name, patient
    ds.AccessionNumber = f"ACC{step_id}"
    ds.RequestedProcedureID = f"RP{step_id}"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.9.8.{len(step_id)}{abs(hash(step_id)) % 10**8}"
    step = Dataset()
    step.Modality, step.ScheduledStationAETitle = modality, station
    step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime = TOMORROW, time
    step.ScheduledProcedureStepID = step_id
    step.ScheduledPerformingPhysicianName = "Who^Doctor"
    ds.ScheduledProcedureStepSequence = [step]
    return ds


ITEMS = [
    item("SPS1", "PAT1", "Doe^Jane", "CT", "CT1", "080000"),
    item("SPS2", "PAT2", "Roe^Richard", "MR", "MR1", "093000"),
    item("SPS3", "PAT3", "Müller^Jürgen", "CT", "CT1", "140000"),
]


async def add_items(node) -> None:
    await node.index.ask(AddWorklistItems(items=tuple(item_from_dataset(ds) for ds in ITEMS)))


async def test_findscu_worklist_queries(tmp_path):
    async with running_node(tmp_path) as node:
        await add_items(node)
        with node.subscribe(WorklistQueried) as events:
            everything = await findscu(peer(node), ["PatientName", "PatientID"], level=None, model="worklist")
            by_patient = await findscu(peer(node), {"PatientID": "PAT2", "PatientName": ""}, level=None, model="worklist")
            by_name = await findscu(peer(node), {"PatientName": "Doe*", "PatientID": ""}, level=None, model="worklist")
            queried = await events.receive()
    assert everything.ok and sorted(r["PatientID"] for r in everything.responses) == ["PAT1", "PAT2", "PAT3"]
    assert by_patient.ok and [r["PatientName"] for r in by_patient.responses] == ["Roe^Richard"]
    assert by_name.ok and [r["PatientID"] for r in by_name.responses] == ["PAT1"]
    assert queried.calling_ae_title == "FINDSCU" and len(queried.items) == 3


def query(**step_keys) -> Dataset:
    ds = Dataset()
    ds.PatientID = ""
    ds.PatientName = ""
    step = Dataset()
    for keyword in ("Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
                    "ScheduledProcedureStepStartTime", "ScheduledProcedureStepID"):
        setattr(step, keyword, step_keys.get(keyword, ""))
    ds.ScheduledProcedureStepSequence = [step]
    return ds


async def test_sequence_matching_with_our_scu(tmp_path):
    async with running_node(tmp_path) as node:
        await add_items(node)
        contexts = [ProposedContext(abstract_syntax=MODALITY_WORKLIST_FIND)]
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=contexts) as association:
            async def ids(q: Dataset) -> list[str]:
                found = [ds async for ds in association.find_worklist(q)]
                return sorted(ds.PatientID for ds in found)

            ct = await ids(query(Modality="CT"))
            station = await ids(query(ScheduledStationAETitle="MR1"))
            morning = await ids(query(ScheduledProcedureStepStartDate=TOMORROW, ScheduledProcedureStepStartTime="070000-100000"))
            nothing = await ids(query(ScheduledProcedureStepStartDate="19990101"))
    assert ct == ["PAT1", "PAT3"] and station == ["PAT2"] and morning == ["PAT1", "PAT2"] and nothing == []


async def test_pynetdicom_as_worklist_scu(tmp_path):
    script = Path(__file__).with_name("pynetdicom_scu.py")
    async with running_node(tmp_path) as node:
        await add_items(node)

        async def find(*keys: str) -> dict:
            return await run_peer_script(script, str(node.address.port), AE_TITLE, "find", "--model", "worklist", *keys)

        by_modality = await find("PatientID=", "PatientName=", "ScheduledProcedureStepSequence.Modality=CT",
                                 "ScheduledProcedureStepSequence.ScheduledProcedureStepID=")
        by_name = await find("PatientName=M*", "PatientID=", "ScheduledProcedureStepSequence.ScheduledStationAETitle=")
    assert by_modality["statuses"][-1] == 0 and by_name["statuses"][-1] == 0
    assert sorted(m["PatientID"] for m in by_modality["matches"]) == ["PAT1", "PAT3"]
    steps = sorted(m["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepID"] for m in by_modality["matches"])
    assert steps == ["SPS1", "SPS3"]
    (muller,) = by_name["matches"]
    assert muller["PatientName"] == "Müller^Jürgen"  # ISO_IR 100 text, decoded by pynetdicom
    assert muller["ScheduledProcedureStepSequence"][0]["ScheduledStationAETitle"] == "CT1"


async def test_the_default_contexts_carry_a_worklist_query(tmp_path):
    # connect() without contexts proposes default_contexts(), which include Modality
    # Worklist: a caller need not know to ask for it.
    async with running_node(tmp_path) as node:
        await add_items(node)
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE) as association:
            found = [ds async for ds in association.find_worklist(query(Modality="MR"))]
    assert [ds.PatientID for ds in found] == ["PAT2"]
    assert found[0].ScheduledProcedureStepSequence[0].ScheduledProcedureStepID == "SPS2"


async def test_a_completed_mpps_marks_its_worklist_item_done(tmp_path):
    uid = "1.2.826.0.1.3680043.9.7.20"
    async with running_node(tmp_path) as node:
        await add_items(node)  # SPS1 is what creation() performs
        result = await pynetdicom_n(node, tmp_path, [
            create(uid, creation()), n_set(uid, {"00400252": _text("CS", "COMPLETED"), **END}),
        ])
        status = index_rows(node, "SELECT item_id, status FROM worklist_item ORDER BY item_id")
        listing = await node.index.ask(ListWorklistItems())
    assert [r["status"] for r in result["results"]] == [0, 0]
    assert status[0] == ("SPS1", "done") and status[1][1] == "scheduled"
    assert len(listing.entries) == 3
