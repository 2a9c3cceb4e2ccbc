"""pynetdicom as SCU -> node: echo, store, find, move (to a DCMTK storescp), get.

pynetdicom runs in a subprocess (tests/node/pynetdicom_scu.py), one operation per run:
a real separate peer process, its threads and blocking sockets kept out of the test's
Trio loop, and a hung run killed by the deadline instead of hanging the test.
"""

import json
from pathlib import Path

import pydicom
import pytest
import trio
from dicom_samples import SeriesSpec, build_mixed_folder, new_uid, write_series
from peers import storescp

from triopacs import connect
from triopacs.client.contexts import storage_contexts_for

from .nodes import AE_TITLE, LOOPBACK, counts, dataset_bytes, remote, run_peer_script, running_node, stored_files

SCRIPT = Path(__file__).with_name("pynetdicom_scu.py")
SUCCESS, PENDING = 0x0000, 0xFF00


async def pynetdicom(node, operation: str, *args: str, timeout: float = 60) -> dict:
    return await run_peer_script(SCRIPT, str(node.address.port), AE_TITLE, operation, *args, timeout=timeout)


@pytest.fixture
def study(tmp_path):
    uid = new_uid()
    return [
        write_series(tmp_path / "source", SeriesSpec(count=2, modality="CT", patient_id="PYN1", study_instance_uid=uid)),
        write_series(tmp_path / "source", SeriesSpec(count=2, modality="MR", patient_id="PYN1", study_instance_uid=uid, series_number=2)),
    ]


async def load(node, study) -> None:
    files = [path for series in study for path in series.paths]
    async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(files)) as association:
        assert all([(await association.store(path)).ok for path in files])


async def test_pynetdicom_echo(tmp_path):
    async with running_node(tmp_path) as node:
        result = await pynetdicom(node, "echo")
    assert result["statuses"] == [SUCCESS]


async def test_pynetdicom_store(tmp_path, study):
    # Generated CT and MR, plus samples in compressed syntaxes pynetdicom sends as they are.
    samples = build_mixed_folder(tmp_path / "mixed", names=["CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm"])
    files = [*(p for series in study for p in series.paths), *(s.path for s in samples)]
    async with running_node(tmp_path) as node:
        result = await pynetdicom(node, "store", *map(str, files))
        totals = await counts(node)
        stored = {path.stem: path for path in stored_files(node)}
    assert result["statuses"] == [SUCCESS] * 7
    assert totals.instances == 7
    for path in files:
        source = pydicom.dcmread(path)
        kept = stored[str(source.SOPInstanceUID)]
        assert dataset_bytes(kept)[0] == source.file_meta.TransferSyntaxUID
        assert pydicom.dcmread(kept) == source


async def test_pynetdicom_find(tmp_path, study):
    async with running_node(tmp_path) as node:
        await load(node, study)
        studies = await pynetdicom(node, "find", "--level", "STUDY", "PatientID=PYN1", "StudyInstanceUID=", "ModalitiesInStudy=", "NumberOfStudyRelatedInstances=")
        series = await pynetdicom(node, "find", "--level", "SERIES", f"StudyInstanceUID={study[0].study_instance_uid}", "SeriesInstanceUID=", "Modality=MR")
        patients = await pynetdicom(node, "find", "--model", "patient", "--level", "PATIENT", "PatientID=PYN*", "PatientName=")
    assert studies["statuses"] == [PENDING, SUCCESS]
    (match,) = studies["matches"]
    assert match["StudyInstanceUID"] == study[0].study_instance_uid
    assert match["ModalitiesInStudy"] in ("['CT', 'MR']", "['MR', 'CT']")
    assert match["NumberOfStudyRelatedInstances"] == "4"
    assert [(m["SeriesInstanceUID"], m["Modality"]) for m in series["matches"]] == [(study[1].series_instance_uid, "MR")]
    assert [(m["PatientID"], m["PatientName"]) for m in patients["matches"]] == [("PYN1", "DOE^JANE")]


async def test_pynetdicom_move_to_a_storescp(tmp_path, study):
    async with storescp(extra_args=["+B"], parent_dir=tmp_path) as destination:
        async with running_node(tmp_path, remote=[remote(destination.ae_title, destination.port)]) as node:
            await load(node, study)
            kept = {path.stem: dataset_bytes(path) for path in stored_files(node)}
            result = await pynetdicom(node, "move", "--destination", destination.ae_title, f"StudyInstanceUID={study[0].study_instance_uid}")
        arrived = [dataset_bytes(path) for path in destination.stored_files()]
    assert result["statuses"] == [PENDING] * 4 + [SUCCESS]
    assert result["counts"] == {"Remaining": None, "Completed": 4, "Failed": 0, "Warning": 0}
    assert sorted(arrived) == sorted(kept.values())


async def test_pynetdicom_get(tmp_path, study):
    into = tmp_path / "got"
    into.mkdir()
    async with running_node(tmp_path) as node:
        await load(node, study)
        result = await pynetdicom(node, "get", "--level", "SERIES", "--into", str(into),
                                  f"StudyInstanceUID={study[1].study_instance_uid}", f"SeriesInstanceUID={study[1].series_instance_uid}")
    assert result["statuses"] == [PENDING, PENDING, SUCCESS]
    assert result["counts"] == {"Remaining": None, "Completed": 2, "Failed": 0, "Warning": 0}
    assert sorted(result["received"]) == sorted(study[1].sop_instance_uids)
    for path in study[1].paths:
        source = pydicom.dcmread(path)
        assert pydicom.dcmread(into / f"{source.SOPInstanceUID}.dcm") == source
