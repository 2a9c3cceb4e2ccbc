"""triopacs's MPPS SCU (client n_create / n_set) against pynetdicom as the MPPS SCP, run
as a process of its own: create a step, update it, complete it; a later N-SET gets the
SCP's refusal. The SCP prints what it received, and the test checks that."""

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import trio
from pydicom.dataset import Dataset

from triopacs import connect
from triopacs.protocol.catalog import MODALITY_PERFORMED_PROCEDURE_STEP as MPPS
from triopacs.protocol.negotiation import ProposedContext

from .nodes import LOOPBACK
from .test_node_commitment import LineReader

SCP = Path(__file__).with_name("pynetdicom_mpps_scp.py")
UID = "1.2.826.0.1.3680043.9.7.40"


def creation() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName, ds.PatientID = "Müller^Jürgen", "PAT3"
    ds.Modality, ds.PerformedStationAETitle, ds.PerformedProcedureStepID = "CT", "MODALITY", "PPS40"
    ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime = "20261203", "101500"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepEndDate = ds.PerformedProcedureStepEndTime = None
    ref = Dataset()
    ref.StudyInstanceUID, ref.ScheduledProcedureStepID = "1.2.826.0.1.3680043.9.8.3", "SPS3"
    ds.ScheduledStepAttributesSequence = [ref]
    return ds


def change(**values) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


async def test_create_set_and_complete_on_a_pynetdicom_mpps_scp():
    argv = [sys.executable, str(SCP), "MPPSSCP", "4"]
    contexts = [ProposedContext(abstract_syntax=MPPS)]
    async with trio.open_nursery() as nursery:
        process = await nursery.start(partial(trio.run_process, argv, stdout=subprocess.PIPE, check=False))
        lines = LineReader(process.stdout)
        port = json.loads(await lines.next())["port"]
        async with connect(LOOPBACK, port, called_ae_title="MPPSSCP", calling_ae_title="TRIOMOD", contexts=contexts) as association:
            created = await association.n_create(MPPS, creation(), sop_instance_uid=UID)
            described = await association.n_set(MPPS, UID, change(PerformedProcedureStepDescription="Head CT"))
            completed = await association.n_set(MPPS, UID, change(
                PerformedProcedureStepStatus="COMPLETED",
                PerformedProcedureStepEndDate="20261203", PerformedProcedureStepEndTime="103000",
            ))
            late = await association.n_set(MPPS, UID, change(PerformedProcedureStepDescription="too late"))
        received = [json.loads(await lines.next()) for _ in range(4)]
        await process.wait()
    assert created.ok and created.sop_instance_uid == UID
    assert described.ok and completed.ok
    assert not late.ok and late.status == 0x0110
    assert [(r["op"], r["instance"], r["status"], r["calling_ae"]) for r in received] == [
        ("create", UID, 0, "TRIOMOD"), ("set", UID, 0, "TRIOMOD"), ("set", UID, 0, "TRIOMOD"), ("set", UID, 0x0110, "TRIOMOD"),
    ]
    first = received[0]["dataset"]
    assert first["00100010"]["Value"] == [{"Alphabetic": "Müller^Jürgen"}]
    assert first["00400252"]["Value"] == ["IN PROGRESS"] and first["00400253"]["Value"] == ["PPS40"]
    assert first["00400270"]["Value"][0]["00400009"]["Value"] == ["SPS3"]
    assert received[2]["dataset"]["00400252"]["Value"] == ["COMPLETED"]
    assert received[2]["dataset"]["00400251"]["Value"] == ["103000"]
