"""The peer fixtures work, against each other (no triopacs node involved).

Every test talks to real processes on 127.0.0.1 and runs under an overall deadline.
A missing program fails the test with a message pointing at tests/run.sh.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pydicom
import pytest
import trio

import dicom_samples
import peers
from peers import DicomPeer, OrthancPeer, RemoteAE
from peers.process import free_ports as real_free_ports

DEADLINE = 60  # seconds for any one test here


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dicom_samples.SampleFile]]:
    folder = tmp_path_factory.mktemp("mixed")
    return folder, dicom_samples.build_mixed_folder(folder)


def _received_uids(files: list[Path]) -> dict[str, str]:
    """SOP Instance UID -> transfer syntax UID of each received file."""
    received = {}
    for path in files:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        received[str(dataset.SOPInstanceUID)] = str(dataset.file_meta.TransferSyntaxUID)
    return received


# ---------------------------------------------------------------- test data


def test_mixed_folder_has_unique_instances_and_many_encodings(mixed_folder):
    _, samples = mixed_folder
    assert len({sample.sop_instance_uid for sample in samples}) == len(samples)
    assert len({sample.sop_class_uid for sample in samples}) >= 10
    assert len({sample.transfer_syntax_uid for sample in samples}) >= 9
    assert set(dicom_samples.MIXED_SAMPLES).isdisjoint(dicom_samples.EXCLUDED_SAMPLES)


def test_generated_ct_series_is_realistic(tmp_path):
    series = dicom_samples.write_series(
        tmp_path, dicom_samples.SeriesSpec(count=4, patient_name="ÉMILE^ZOLA", patient_id="P9")
    )
    assert len(set(series.sop_instance_uids)) == 4
    sizes = {path.stat().st_size for path in series.paths}
    assert all(512 * 1024 < size < 516 * 1024 for size in sizes)
    last = pydicom.dcmread(series.paths[-1])
    assert (last.Rows, last.Columns, last.BitsAllocated) == (512, 512, 16)
    assert len(last.PixelData) == 512 * 512 * 2
    assert str(last.PatientName) == "ÉMILE^ZOLA"
    assert last.SOPInstanceUID == last.file_meta.MediaStorageSOPInstanceUID == series.sop_instance_uids[-1]
    assert last.InstanceNumber == 4 and float(last.SliceLocation) == -15.0
    assert last.StudyInstanceUID == series.study_instance_uid
    assert series.study_instance_uid.startswith("2.25.")


def test_population_is_known_in_advance(tmp_path):
    population = dicom_samples.write_population(tmp_path)
    assert len(population) == 2 * 2 * 2
    assert {s.spec.study_date for s in population if s.spec.patient_id == "TRIO0002"} == {
        "20240131",
        "20240201",
    }
    assert len({s.study_instance_uid for s in population}) == 4


# ---------------------------------------------------------------- parsing DCMTK output


FINDSCU_LOG = """\
I: Requesting Association
I: Association Accepted (Max Send PDV: 16372)
I: Sending Find Request (MsgID 1)
I: ---------------------------
I: Find Response: 1 (Pending)
I: 
I: # Dicom-Data-Set
I: # Used TransferSyntax: Little Endian Explicit
I: (0008,0020) DA (no value available)                     #   0, 0 StudyDate
I: (0008,0052) CS [STUDY ]                                 #   6, 1 QueryRetrieveLevel
I: (0008,1110) SQ (Sequence with explicit length #=1)      #  20, 1 ReferencedStudySequence
I:   (fffe,e000) na (Item with explicit length #=1)          #  12, 1 Item
I:     (0008,1150) UI [1.2.3]                                #   6, 1 ReferencedSOPClassUID
I:   (fffe,e00d) na (ItemDelimitationItem for re-encoding)   #   0, 0 ItemDelimitationItem
I: (0010,0010) PN [DOE^JANE\\ROE^R ]                        #  16, 2 PatientName
I: (0020,000d) UI [1.2.840.5 ]                             #  10, 1 StudyInstanceUID
I: 
I: ---------------------------
I: Find Response: 2 (Pending)
I: 
I: # Dicom-Data-Set
I: # Used TransferSyntax: Little Endian Explicit
I: (0020,000d) UI [1.2.840.6]                              #  10, 1 StudyInstanceUID
I: 
I: Received Final Find Response (Success)
I: Releasing Association
"""


def _tool(stderr: str, returncode: int = 0) -> peers.ToolResult:
    return peers.ToolResult(["findscu"], returncode, "", stderr)


def test_findscu_parser_reads_responses_and_final_status():
    result = peers.parse_findscu_output(_tool(FINDSCU_LOG))
    assert result.ok and result.final_status == "Success"
    assert result.responses[0] == {
        "StudyDate": "",
        "QueryRetrieveLevel": "STUDY",
        "ReferencedStudySequence": "(Sequence)",
        "PatientName": "DOE^JANE\\ROE^R",
        "StudyInstanceUID": "1.2.840.5",
    }
    assert result.values("StudyInstanceUID") == ["1.2.840.5", "1.2.840.6"]


def test_findscu_parser_catches_an_abort_despite_exit_status_zero():
    log = "I: Sending Find Request (MsgID 1)\nE: Find Failed, query keys:\nE: 0006:0317 Peer aborted Association (or never connected)\nI: Peer Aborted Association\n"
    result = peers.parse_findscu_output(_tool(log, returncode=0))
    assert not result.ok and result.final_status is None
    with pytest.raises(peers.PeerError, match="Peer aborted"):
        result.check()


# ---------------------------------------------------------------- process handling


async def test_missing_program_fails_with_a_pointer_to_run_sh():
    with pytest.raises(peers.ToolMissing, match="tests/run.sh"):
        async with peers.serve("nothing", lambda ports, workdir: ["/nonexistent/triopacs-peer"]):
            pass


async def test_port_taken_by_a_stranger_is_retried_with_another(tmp_path, monkeypatch):
    stranger = socket.socket()
    stranger.bind(("127.0.0.1", 0))
    stranger.listen()
    taken = stranger.getsockname()[1]
    offered = iter([[taken]])
    monkeypatch.setattr(
        peers.process, "free_ports", lambda count: next(offered, None) or real_free_ports(count)
    )
    with trio.fail_after(DEADLINE), stranger:
        async with peers.storescp(parent_dir=tmp_path) as scp:
            assert scp.port != taken
            assert scp.port in peers.ports_listened_by(scp.pid)
            (await peers.echoscu(scp)).check()


async def test_peer_is_reaped_and_cleaned_up_when_the_test_is_cancelled(tmp_path):
    seen: list[DicomPeer] = []
    with trio.move_on_after(DEADLINE) as scope:
        async with peers.storescp(parent_dir=tmp_path) as scp:
            seen.append(scp)
            scope.cancel()
            await trio.sleep_forever()
    (scp,) = seen
    assert scp.server.process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(scp.pid, 0)
    assert not scp.server.workdir.exists()


async def test_early_exit_reports_the_process_output(tmp_path):
    with pytest.raises(peers.PeerError, match="exited during start-up") as failure:
        async with peers.serve(
            "bad-storescp",
            lambda ports, workdir: [peers.dcmtk_program("storescp"), "--no-such-option"],
            parent_dir=tmp_path,
        ):
            pass
    assert "no-such-option" in str(failure.value)


# ---------------------------------------------------------------- DCMTK <-> DCMTK, Orthanc


async def test_echoscu_to_storescp(storescp_peer: DicomPeer):
    with trio.fail_after(DEADLINE):
        result = (await peers.echoscu(storescp_peer)).check()
    assert "Received Echo Response (Success)" in result.output


async def test_storescu_sends_the_mixed_folder_to_storescp(storescp_peer: DicomPeer, mixed_folder):
    folder, samples = mixed_folder
    with trio.fail_after(DEADLINE):
        (await peers.storescu(storescp_peer, [folder])).check(expected=len(samples))
    received = _received_uids(storescp_peer.stored_files())
    # Every instance arrived in its own transfer syntax (nothing was converted).
    assert received == {s.sop_instance_uid: s.transfer_syntax_uid for s in samples}


async def test_storescu_to_orthanc_then_findscu(orthanc_peer: OrthancPeer, mixed_folder):
    folder, samples = mixed_folder
    with trio.fail_after(DEADLINE):
        (await peers.storescu(orthanc_peer, [folder])).check(expected=len(samples))
        assert await orthanc_peer.instance_count() == len(samples)
        studies = await orthanc_peer.rest_get("/studies")
        assert len(studies) == len({s.study_instance_uid for s in samples})

        found = (
            await peers.findscu(
                orthanc_peer, {"PatientID": "", "PatientName": "", "StudyInstanceUID": ""}
            )
        ).check()
        assert sorted(found.values("StudyInstanceUID")) == sorted(
            {s.study_instance_uid for s in samples}
        )
        ct = next(s for s in samples if s.source == "CT_small.dcm")
        series = (
            await peers.findscu(
                orthanc_peer,
                {"StudyInstanceUID": ct.study_instance_uid, "SeriesInstanceUID": "", "Modality": ""},
                level="SERIES",
            )
        ).check()
        assert series.responses[0]["Modality"] == "CT"
        assert series.values("SeriesInstanceUID") == [ct.series_instance_uid]


async def test_orthanc_aborts_queries_from_unknown_aes(orthanc_peer: OrthancPeer):
    with trio.fail_after(DEADLINE):
        result = await peers.findscu(orthanc_peer, ["PatientName"], calling_ae="STRANGER")
    assert result.tool.returncode == 0  # findscu's exit status says nothing...
    assert not result.ok  # ...its log does


async def test_orthanc_moves_a_study_to_storescp(tmp_path, mixed_folder):
    folder, samples = mixed_folder
    ct = next(s for s in samples if s.source == "CT_small.dcm")
    with trio.fail_after(DEADLINE):
        async with peers.storescp("DEST", parent_dir=tmp_path) as destination:
            known = [destination.as_remote(), RemoteAE("STORESCU", 104), RemoteAE("MOVESCU", 104)]
            async with peers.orthanc(known_peers=known, parent_dir=tmp_path) as archive:
                (await peers.storescu(archive, [folder])).check(expected=len(samples))
                moved = await peers.movescu(
                    archive, {"StudyInstanceUID": ct.study_instance_uid}, destination_ae="DEST"
                )
                moved.check()
            assert set(_received_uids(destination.stored_files())) == {ct.sop_instance_uid}


# ---------------------------------------------------------------- dcmqrscp


async def test_dcmqrscp_find_move_and_get(tmp_path):
    samples = dicom_samples.build_mixed_folder(tmp_path / "plain", uncompressed_only=True)
    series = dicom_samples.write_series(
        tmp_path / "ct", dicom_samples.SeriesSpec(count=3, patient_id="QR001", patient_name="QR^TEST")
    )
    with trio.fail_after(DEADLINE):
        async with peers.storescp("DEST", parent_dir=tmp_path) as destination:
            async with peers.dcmqrscp(
                known_peers=[destination.as_remote()], parent_dir=tmp_path
            ) as archive:
                (await peers.storescu(archive, [tmp_path / "plain", tmp_path / "ct"])).check(
                    expected=len(samples) + 3
                )
                studies = (await peers.findscu(archive, {"PatientID": "QR001", "StudyInstanceUID": ""})).check()
                assert studies.values("StudyInstanceUID") == [series.study_instance_uid]
                # dcmqrscp is strict: a SERIES query must carry the study UID.
                in_study = (
                    await peers.findscu(
                        archive,
                        {"StudyInstanceUID": series.study_instance_uid, "SeriesInstanceUID": ""},
                        level="SERIES",
                    )
                ).check()
                assert in_study.values("SeriesInstanceUID") == [series.series_instance_uid]

                study = {"StudyInstanceUID": series.study_instance_uid}
                (await peers.movescu(archive, study, destination_ae="DEST")).check()
                got = (
                    await peers.getscu(archive, study, received_dir=tmp_path / "got")
                ).check()
            assert set(_received_uids(destination.stored_files())) == set(series.sop_instance_uids)
            assert set(_received_uids(got.received_files())) == set(series.sop_instance_uids)


# ---------------------------------------------------------------- pynetdicom


def _pynetdicom_scu_session(peer: DicomPeer, files: list[Path], patient_id: str) -> dict[str, object]:
    """Echo, store and find against `peer` with pynetdicom as the SCU (blocking)."""
    from pynetdicom import AE, StoragePresentationContexts
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

    ae = AE(ae_title="PYSCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    for context in StoragePresentationContexts[:100]:
        ae.add_requested_context(context.abstract_syntax)
    association = ae.associate(peers.LOOPBACK, peer.port, ae_title=peer.ae_title)
    assert association.is_established, "pynetdicom SCU could not associate"
    try:
        echo = association.send_c_echo()
        stores = [association.send_c_store(pydicom.dcmread(path)) for path in files]
        query = pydicom.Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.PatientID = patient_id
        query.StudyInstanceUID = ""
        query.ModalitiesInStudy = ""
        found = [
            identifier
            for status, identifier in association.send_c_find(
                query, StudyRootQueryRetrieveInformationModelFind
            )
            if status and status.Status == 0xFF00
        ]
    finally:
        association.release()
    return {
        "echo": echo.Status,
        "stores": [status.Status for status in stores],
        "found": [(str(i.StudyInstanceUID), str(i.ModalitiesInStudy)) for i in found],
    }


async def test_pynetdicom_scu_against_the_pynetdicom_scp(pynetdicom_peer: DicomPeer, tmp_path):
    series = dicom_samples.write_series(
        tmp_path, dicom_samples.SeriesSpec(count=3, modality="MR", patient_id="PYN1")
    )
    with trio.fail_after(DEADLINE):
        outcome = await trio.to_thread.run_sync(
            _pynetdicom_scu_session, pynetdicom_peer, list(series.paths), "PYN1"
        )
    assert outcome == {
        "echo": 0,
        "stores": [0, 0, 0],
        "found": [(series.study_instance_uid, "MR")],
    }
    assert len(pynetdicom_peer.stored_files()) == 3


async def test_dcmtk_tools_against_the_pynetdicom_scp(tmp_path, mixed_folder):
    folder, samples = mixed_folder
    with trio.fail_after(DEADLINE):
        async with peers.storescp("DEST", parent_dir=tmp_path) as destination:
            async with peers.pynetdicom_scp(
                move_destinations=[destination.as_remote()], parent_dir=tmp_path
            ) as archive:
                (await peers.echoscu(archive)).check()
                (await peers.storescu(archive, [folder])).check(expected=len(samples))
                ct = next(s for s in samples if s.source == "CT_small.dcm")
                found = (await peers.findscu(archive, {"PatientID": ct.patient_id, "StudyInstanceUID": ""})).check()
                assert found.values("StudyInstanceUID") == [ct.study_instance_uid]
                study = {"StudyInstanceUID": ct.study_instance_uid}
                (await peers.movescu(archive, study, destination_ae="DEST")).check()
                got = (await peers.getscu(archive, study, received_dir=tmp_path / "got")).check()
            assert set(_received_uids(destination.stored_files())) == {ct.sop_instance_uid}
            assert set(_received_uids(got.received_files())) == {ct.sop_instance_uid}


# ---------------------------------------------------------------- object stores


def _s3_round_trip(endpoint: peers.S3Endpoint) -> tuple[bytes, list[str]]:
    import boto3

    s3 = boto3.client("s3", **endpoint.client_kwargs())
    s3.create_bucket(Bucket="triopacs-test")
    s3.put_object(Bucket="triopacs-test", Key="studies/1.2.3/a.dcm", Body=b"DICM" * 1000)
    body = s3.get_object(Bucket="triopacs-test", Key="studies/1.2.3/a.dcm")["Body"].read()
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="triopacs-test")["Contents"]]
    return body, keys


async def test_moto_s3_bucket_put_get(s3_endpoint: peers.S3Endpoint):
    with trio.fail_after(DEADLINE):
        body, keys = await trio.to_thread.run_sync(_s3_round_trip, s3_endpoint)
    assert body == b"DICM" * 1000
    assert keys == ["studies/1.2.3/a.dcm"]


def _azure_round_trip(endpoint: peers.AzuriteEndpoint, payload: bytes) -> tuple[bytes, list[str]]:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(endpoint.connection_string)
    container = service.create_container("triopacs-test")
    container.upload_blob("studies/1.2.3/a.dcm", payload)
    body = container.download_blob("studies/1.2.3/a.dcm").readall()
    return body, [blob.name for blob in container.list_blobs()]


async def test_azurite_container_upload_download(azurite_endpoint: peers.AzuriteEndpoint):
    payload = os.urandom(3 * 1024 * 1024)  # more than one block
    with trio.fail_after(DEADLINE):
        body, names = await trio.to_thread.run_sync(_azure_round_trip, azurite_endpoint, payload)
    assert body == payload
    assert names == ["studies/1.2.3/a.dcm"]

