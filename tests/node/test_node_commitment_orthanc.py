"""Storage commitment with Orthanc as the requestor: Orthanc's REST API
(`/modalities/{id}/storage-commitment`) asks the node to commit instances (N-ACTION);
the node checks them and reports (N-EVENT-REPORT) to Orthanc, whose
`/storage-commitment/{transaction}` then shows the outcome."""

import pydicom
import trio
from peers import storescu

from triopacs.actors.node.dimse_n_events import StorageCommitmentReported

from .nodes import peer
from .test_node_orthanc import NODE, node_and_orthanc, population

UNKNOWN = "1.2.826.0.1.3680043.9.7.99"


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
