"""Storage commitment with Orthanc, both ways. Orthanc as requestor: its REST API
(`/modalities/{id}/storage-commitment`) asks the node to commit instances (N-ACTION);
the node checks them and reports (N-EVENT-REPORT) to Orthanc, whose
`/storage-commitment/{transaction}` then shows the outcome. Orthanc as SCP: triopacs's
client asks it, and its report reaches our report listener."""

import pydicom
import trio
from peers import storescu
from peers.dicom_servers import RemoteAE as PeerAE
from peers.dicom_servers import orthanc

from triopacs import connect
from triopacs.actors.node.dimse_n_events import StorageCommitmentReported
from triopacs.client.commitment import commitment_contexts, request_commitment
from triopacs.client.report_listener import listen_for_reports
from triopacs.storage.commitment import ReferencedInstance

from .nodes import LOOPBACK, peer
from .test_node_orthanc import NODE, node_and_orthanc, population

UNKNOWN = "1.2.826.0.1.3680043.9.7.99"
REQUESTOR = "TRIOSCU"


async def test_orthanc_asks_the_node_for_storage_commitment(tmp_path):
    generated = population(tmp_path)
    files = [path for series in generated[:2] for path in series.paths]
    stored = [(str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in map(pydicom.dcmread, files)]
    asked = [*stored, (stored[0][0], UNKNOWN)]
    async with node_and_orthanc(tmp_path) as (node, orthanc):
        (await storescu(peer(node), files)).check(expected=len(files))
        with node.subscribe(StorageCommitmentReported) as events:
            started = await orthanc.rest("POST", f"/modalities/{NODE}/storage-commitment", {
                "DicomInstances": [{"SOPClassUID": c, "SOPInstanceUID": i} for c, i in asked], "Timeout": 30,
            })
            with trio.fail_after(60):
                reported = await events.receive()
        outcome = await orthanc.rest_get(started["Path"])
    assert reported.requestor_ae_title == orthanc.ae_title and (reported.committed, reported.failed) == (len(stored), 1)
    assert outcome["Status"] == "Failure", outcome
    assert sorted((s["SOPClassUID"], s["SOPInstanceUID"]) for s in outcome["Success"]) == sorted(stored)
    assert [(f["SOPInstanceUID"], f["FailureReason"]) for f in outcome["Failures"]] == [(UNKNOWN, 0x0112)]


async def test_our_requestor_asks_orthanc_for_storage_commitment(tmp_path):
    # triopacs's client as requestor, Orthanc as SCP: Orthanc answers the N-ACTION, then
    # reports on an association of its own to our report listener (its modality).
    generated = population(tmp_path)
    files = [path for series in generated[:2] for path in series.paths]
    stored = [ReferencedInstance(sop_class_uid=str(ds.SOPClassUID), sop_instance_uid=str(ds.SOPInstanceUID))
              for ds in map(pydicom.dcmread, files)]
    unknown = ReferencedInstance(sop_class_uid=stored[0].sop_class_uid, sop_instance_uid=UNKNOWN)
    async with listen_for_reports(ae_title=REQUESTOR) as listener:
        async with orthanc(known_peers=[PeerAE(REQUESTOR, listener.port)], parent_dir=tmp_path) as scp:
            (await storescu(scp, files)).check(expected=len(files))
            async with connect(LOOPBACK, scp.port, called_ae_title=scp.ae_title, calling_ae_title=REQUESTOR,
                               contexts=commitment_contexts()) as association:
                transaction = await request_commitment(association, [*stored, unknown])
            report = await listener.next_report(transaction, timeout=60)
    assert report.event_type_id == 2 and not report.ok
    assert sorted(r.sop_instance_uid for r in report.committed) == sorted(r.sop_instance_uid for r in stored)
    assert [f.sop_instance_uid for f in report.failed] == [UNKNOWN]
