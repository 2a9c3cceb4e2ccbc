"""Orthanc with its DICOMweb plugin against a real node, both ways: Orthanc queries the
node, retrieves a study from it and STOWs a study to it (the node configured as one of
its DICOMweb servers); then, holding the same data, the node's QIDO-RS answers are
compared with Orthanc's own DICOMweb server's for a dozen queries. One Orthanc for
the module."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import httpx
import pytest
import trio
from dicom_samples import SeriesSpec, write_series
from peers import storescu
from peers.dicom_servers import OrthancPeer, orthanc

from dicomweb.support import dicomweb_url
from node.nodes import counts, peer, running_node

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
pytestmark = pytest.mark.skipif(not PLUGIN.exists(), reason="Debian package orthanc-dicomweb is not installed")

# Compared where both servers answer them (Orthanc leaves out what it does not index).
COMPARED = ("0020000D", "0020000E", "00080018", "00100010", "00100020", "00080020", "00080050", "00080060", "00200011")


async def orthanc_post(orthanc: OrthancPeer, path: str, data: bytes, content_type: str = "application/json"):
    def call():
        request = urllib.request.Request(orthanc.rest_url + path, data=data, method="POST", headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    return await trio.to_thread.run_sync(call)


def query_string(params: dict[str, str]) -> str:
    """The same query text for both servers (httpx would write * as %2A, which Orthanc 1.10 matches literally)."""
    return "&".join(f"{name}={urllib.parse.quote(text, safe='*^')}" for name, text in params.items())


async def qido(base: str, path: str, params: dict[str, str]) -> list[dict]:
    def call():
        response = httpx.get(f"{base}{path}?{query_string(params)}", headers={"Accept": "application/dicom+json"}, timeout=30)
        assert response.status_code in (200, 204), response.text
        return response.json() if response.status_code == 200 and response.content else []

    return await trio.to_thread.run_sync(call)


async def test_orthanc_queries_retrieves_and_stows_and_both_qido_servers_agree(tmp_path):
    a1 = write_series(tmp_path / "a", SeriesSpec(count=3, modality="MR", patient_id="P1", patient_name="DOE^JANE",
                                                 study_date="20240115", accession_number="ACC1", study_description="HEAD"))
    a2 = write_series(tmp_path / "a", SeriesSpec(count=2, modality="CT", patient_id="P1", patient_name="DOE^JANE",
                                                 study_instance_uid=a1.study_instance_uid, series_number=2, study_date="20240115",
                                                 accession_number="ACC1", study_description="HEAD"))
    b = write_series(tmp_path / "b", SeriesSpec(count=2, modality="CT", patient_id="P2", patient_name="ROE^RICHARD",
                                                study_date="20230301", accession_number="ACC2", study_description="CHEST"))
    async with running_node(tmp_path) as node:
        (await storescu(peer(node), [tmp_path / "a"])).check(expected=5)
        config = {
            "Plugins": [str(PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Servers": {"triopacs": [dicomweb_url(node) + "/"]}},
        }
        async with orthanc("ORTHANCDW", config_overrides=config, parent_dir=tmp_path) as server:
            # Orthanc queries the node (its DICOMweb client: QIDO-RS).
            found = await server.rest("POST", "/dicom-web/servers/triopacs/qido", {"Uri": "/studies", "Arguments": {"PatientID": "P1"}})
            # (Orthanc hands the answer on in its own JSON: {"Value": "text", "Name": ...} per tag.)
            assert [s["0020000D"]["Value"] for s in found] == [a1.study_instance_uid]
            # ... retrieves study A from it (WADO-RS) ...
            await server.rest("POST", "/dicom-web/servers/triopacs/retrieve", {"Resources": [{"Study": a1.study_instance_uid}]})
            assert await server.instance_count() == 5
            # ... and STOWs study B, first uploaded to Orthanc, to the node.
            for path in sorted((tmp_path / "b").rglob("*.dcm")):
                await orthanc_post(server, "/instances", path.read_bytes(), "application/dicom")
            orthanc_study_b = await _orthanc_study(server, b.study_instance_uid)
            before = (await counts(node)).instances
            await server.rest("POST", "/dicom-web/servers/triopacs/stow", {"Resources": [orthanc_study_b]})
            assert (await counts(node)).instances == before + 2

            # Both hold A and B now: their QIDO-RS answers should agree.
            queries = [
                ("/studies", {}),
                ("/studies", {"PatientName": "DOE*"}),
                ("/studies", {"PatientName": "roe^richard"}),
                ("/studies", {"PatientID": "P2"}),
                ("/studies", {"StudyDate": "20230101-20231231"}),
                ("/studies", {"StudyDate": "20240115"}),
                ("/studies", {"AccessionNumber": "ACC1"}),
                ("/studies", {"StudyInstanceUID": f"{a1.study_instance_uid},{b.study_instance_uid}"}),
                ("/studies", {"00100020": "P*"}),
                (f"/studies/{a1.study_instance_uid}/series", {}),
                (f"/studies/{a1.study_instance_uid}/series", {"Modality": "CT"}),
                ("/series", {"Modality": "MR"}),
                (f"/studies/{a1.study_instance_uid}/series/{a2.series_instance_uid}/instances", {}),
                ("/instances", {"PatientID": "P2"}),
            ]
            for path, params in queries:
                ours = await qido(dicomweb_url(node), path, params)
                theirs = await qido(f"{server.rest_url}/dicom-web", path, params)
                assert _compared(ours) == _compared(theirs), (path, params)
                assert ours, (path, params)  # every query above matches something


async def _orthanc_study(server: OrthancPeer, study_uid: str) -> str:
    [found] = await server.rest("POST", "/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}})
    return found


def _compared(matches: list[dict]) -> list[dict]:
    rows = [{tag: m[tag].get("Value") for tag in COMPARED if tag in m and m[tag].get("Value")} for m in matches]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))
