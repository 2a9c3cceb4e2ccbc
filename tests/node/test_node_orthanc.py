"""Orthanc <-> node, driven through Orthanc's REST API: Orthanc stores into the node
(C-STORE), queries it (C-FIND) and retrieves from it (C-MOVE back to Orthanc), a study
or a whole patient (a Study Root C-MOVE at PATIENT level, which the node accepts)."""

import contextlib
import urllib.error

import pydicom
import pytest
import structlog
from dicom_samples import write_population
from peers import storescu
from peers.dicom_servers import RemoteAE as PeerAE
from peers.dicom_servers import orthanc

from triopacs import connect
from triopacs.actors.node.ae_registry import RegisterAE
from triopacs.client.contexts import storage_contexts_for

from .nodes import AE_TITLE, LOOPBACK, counts, remote, running_node, stored_files

NODE = "peer0"  # Orthanc's name for the node: the first of its DicomModalities


@contextlib.asynccontextmanager
async def node_and_orthanc(tmp_path, **settings):
    """A node, and an Orthanc that has it as modality `peer0` (and that the node may move to)."""
    async with running_node(tmp_path, **settings) as node:
        async with orthanc(known_peers=[PeerAE(AE_TITLE, node.address.port), PeerAE("STORESCU", 104)], parent_dir=tmp_path) as peer:
            await node.ref("aes").ask(RegisterAE(entry=remote(peer.ae_title, peer.port)))
            yield node, peer


def population(tmp_path):
    return write_population(tmp_path / "population", patients=(("TRIO0001", "DOE^JANE"), ("TRIO0002", "ROE^RICHARD")), images_per_series=1)


async def test_orthanc_stores_a_study_into_the_node_and_finds_it_there(tmp_path):
    generated = population(tmp_path)
    study_uid = generated[0].study_instance_uid
    study = [s for s in generated if s.study_instance_uid == study_uid]
    async with node_and_orthanc(tmp_path) as (node, peer):
        (await storescu(peer, [tmp_path / "population"])).check(expected=8)
        (orthanc_study,) = [s["ID"] for s in await peer.rest_get("/studies?expand") if s["MainDicomTags"]["StudyInstanceUID"] == study_uid]
        # C-STORE from Orthanc to the node, synchronously
        await peer.rest("POST", f"/modalities/{NODE}/store", {"Resources": [orthanc_study], "Synchronous": True})
        totals = await counts(node)
        kept = {path.stem: pydicom.dcmread(path) for path in stored_files(node)}
        # C-FIND from Orthanc to the node, at study and at series level
        studies = await orthanc_query(peer, "Study", {"PatientID": "TRIO0001", "StudyInstanceUID": "", "ModalitiesInStudy": ""})
        series = await orthanc_query(peer, "Series", {"StudyInstanceUID": study_uid, "SeriesInstanceUID": "", "Modality": ""})
    assert (totals.studies, totals.series, totals.instances) == (1, 2, 2)
    sent = {uid: pydicom.dcmread(path) for s in study for uid, path in zip(s.sop_instance_uids, s.paths)}
    assert sorted(kept) == sorted(sent) and all(kept[uid] == sent[uid] for uid in sent)
    # The node holds one study of TRIO0001 (Orthanc sent just that one).
    assert [(a["0020,000d"], a["0008,0061"]) for a in studies] in ([(study_uid, "CT\\MR")], [(study_uid, "MR\\CT")])
    assert sorted((a["0020,000e"], a["0008,0060"]) for a in series) == sorted((s.series_instance_uid, s.spec.modality) for s in study)


async def test_orthanc_retrieves_a_study_from_the_node(tmp_path):
    generated = population(tmp_path)
    study_uid = generated[2].study_instance_uid  # TRIO0002's first study
    files = [path for series in generated for path in series.paths]
    async with node_and_orthanc(tmp_path) as (node, peer):
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(files)) as association:
            assert all([(await association.store(path)).ok for path in files])
        assert await peer.instance_count() == 0
        query = await peer.rest("POST", f"/modalities/{NODE}/query", {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}})
        # C-MOVE from Orthanc to the node, the node C-STOREs to Orthanc (registered above)
        await peer.rest("POST", f"/queries/{query['ID']}/retrieve", {"TargetAet": peer.ae_title, "Synchronous": True})
        arrived = await peer.rest("GET", "/instances?expand")
    expected = {uid for s in generated if s.study_instance_uid == study_uid for uid in s.sop_instance_uids}
    assert {instance["MainDicomTags"]["SOPInstanceUID"] for instance in arrived} == expected


async def load(node, generated) -> None:
    files = [path for series in generated for path in series.paths]
    async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(files)) as association:
        assert all([(await association.store(path)).ok for path in files])


async def move_patient(peer, patient_id: str) -> None:
    """Orthanc's patient move: a Study Root C-MOVE with QueryRetrieveLevel PATIENT."""
    await peer.rest("POST", f"/modalities/{NODE}/move", {
        "Level": "Patient", "Resources": [{"PatientID": patient_id}], "TargetAet": peer.ae_title, "Synchronous": True,
    })


async def test_orthanc_moves_a_whole_patient_from_the_node(tmp_path):
    generated = population(tmp_path)
    async with node_and_orthanc(tmp_path) as (node, peer):
        await load(node, generated)
        with structlog.testing.capture_logs() as logs:
            await move_patient(peer, "TRIO0002")
        arrived = await peer.rest("GET", "/instances?expand")
    expected = {uid for s in generated if s.spec.patient_id == "TRIO0002" for uid in s.sop_instance_uids}
    assert {instance["MainDicomTags"]["SOPInstanceUID"] for instance in arrived} == expected
    assert "Study Root move at PATIENT level served as Patient Root ([query] patient_level_in_study_root)" in [
        entry["event"] for entry in logs
    ]


async def test_without_the_leniency_the_patient_move_is_refused_and_the_reason_logged(tmp_path):
    generated = population(tmp_path)
    async with node_and_orthanc(tmp_path, patient_level_in_study_root=False) as (node, peer):
        await load(node, generated)
        with structlog.testing.capture_logs() as logs:
            with pytest.raises(urllib.error.HTTPError):  # Orthanc answers 500 to the refusal
                await move_patient(peer, "TRIO0002")
        assert await peer.instance_count() == 0
    refusals = [entry for entry in logs if entry["event"] == "move refused"]
    assert [(entry["status"], entry["reason"]) for entry in refusals] == [("0xa900", "level PATIENT is not in the study-root model")]


async def orthanc_query(peer, level: str, query: dict) -> list[dict[str, str]]:
    """Run a C-FIND from Orthanc to the node; each answer as {"gggg,eeee": value}."""
    created = await peer.rest("POST", f"/modalities/{NODE}/query", {"Level": level, "Query": query})
    answers = await peer.rest("GET", f"/queries/{created['ID']}/answers")
    results = []
    for index in answers:
        content = await peer.rest("GET", f"/queries/{created['ID']}/answers/{index}/content")
        results.append({tag: entry.get("Value", "") for tag, entry in content.items()})
    return results
