"""Bad DICOMweb input against a real node: each is the right 4xx with a problem+json
body, nothing is half-stored (no file, no index row, no temp file left), and the node
goes on serving."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio
from dicom_samples import SeriesSpec, write_series
from pydicom.data import get_testdata_file

from node.nodes import counts, running_node
from triopacs.storage.files import TEMP_SUFFIX
from triopacs.web.dicomweb.multipart import closing, part_head
from web.client import get, request

BOUNDARY = "hostile-boundary"
STOW = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'}


def problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/problem+json", response.headers["content-type"]
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    return body


def multipart(*parts: bytes, close: bool = True) -> bytes:
    data = b"".join(part_head(BOUNDARY, "application/dicom") + p + b"\r\n" for p in parts)
    return data + (closing(BOUNDARY) if close else b"")


def leftovers(node) -> list[str]:
    """Temp files (partial instances) left in the data directory."""
    return [str(p) for p in Path(node.config.node.data_dir).rglob(f"*{TEMP_SUFFIX}")]


async def test_bad_input_gets_4xx_problems_and_nothing_is_half_stored(tmp_path):
    write_series(tmp_path / "in", SeriesSpec(count=1, modality="MR"))
    good = next((tmp_path / "in").rglob("*.dcm")).read_bytes()  # 128 KiB
    small = Path(get_testdata_file("CT_small.dcm")).read_bytes()  # 39 KiB
    async with running_node(tmp_path, max_part_bytes=64 * 1024) as node:
        post = lambda data, headers=STOW, path="/dicom-web/studies": request(node, "POST", path, content=data, headers=headers)  # noqa: E731

        # A body that is no multipart message, and one cut before its closing boundary.
        problem(await post(b"this is not multipart at all"), 400)
        problem(await post(multipart(small)[: len(small) // 2]), 400)
        problem(await post(multipart(small, close=False)), 400)
        # Not multipart/related of application/dicom; a boundary missing.
        problem(await post(good, headers={"Content-Type": "application/dicom"}), 415)
        problem(await post(multipart(good), headers={"Content-Type": "multipart/related; type=\"application/dicom\""}), 400)
        # A part that is no DICOM: nothing stored, 409, the PS3.18 response inside the problem.
        body = problem(await post(multipart(b"\x00" * 200 + b"hello")), 409)
        [failed] = body["store_response"]["00081198"]["Value"]
        assert failed["00081197"]["Value"] == [0xC000]
        # A part larger than [dicomweb] max_part_bytes (the test node's: 64 KiB; an MR is 128 KiB).
        problem(await post(multipart(good)), 413)
        assert (await counts(node)).instances == 0 and leftovers(node) == []

        # The same body cut short on the wire: the client goes away mid-part.
        payload = multipart(b"\x00" * 128 + b"DICM" + b"\x02\x00" * 3000)
        stream = await trio.open_tcp_stream(node.http.host, node.http.port)
        head = (f"POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nContent-Type: {STOW['Content-Type']}\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n").encode()
        await stream.send_all(head + payload[: len(payload) // 2])
        await stream.aclose()

        # Retrieval of what is not there, with bad UIDs, or in a type the node does not make.
        problem(await get(node, "/dicom-web/studies/1.2.3.4"), 404)
        problem(await get(node, "/dicom-web/studies/1.2.3.4/metadata"), 404)
        problem(await get(node, "/dicom-web/studies/1.2.3.4/series/1.2.3.5/instances/1.2.3.6/frames/1"), 404)
        problem(await get(node, "/dicom-web/studies/not..a.uid"), 400)
        problem(await get(node, "/dicom-web/studies/1.2.3.4/series", params={"StudyDate": "yesterday"}), 400)
        problem(await get(node, "/dicom-web/studies", params={"NoSuchKeyword": "x"}), 400)
        problem(await get(node, "/dicom-web/studies", params={"limit": "-1"}), 400)
        problem(await get(node, "/dicom-web/studies", headers={"Accept": "application/xml"}), 406)
        problem(await get(node, "/dicom-web/nowhere"), 404)

        # Nothing of all that was kept; the node still stores and answers.
        assert (await counts(node)).instances == 0 and leftovers(node) == []
        assert (await get(node, "/dicom-web/studies")).status_code == 204
        assert (await post(multipart(small))).status_code == 200
        assert len((await get(node, "/dicom-web/studies")).json()) == 1
        assert (await counts(node)).instances == 1 and leftovers(node) == []


async def test_unsupported_accept_and_a_mismatched_study(tmp_path):
    series = write_series(tmp_path / "in", SeriesSpec(count=2, modality="MR"))
    files = sorted((tmp_path / "in").rglob("*.dcm"))
    async with running_node(tmp_path) as node:
        stow = await request(node, "POST", f"/dicom-web/studies/{series.study_instance_uid}",
                             content=multipart(files[0].read_bytes()), headers=STOW)
        assert stow.status_code == 200, stow.text
        wrong = await request(node, "POST", "/dicom-web/studies/1.2.3.4", content=multipart(files[1].read_bytes()), headers=STOW)
        body = problem(wrong, 409)
        assert body["store_response"]["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]
        asked = await request(node, "POST", "/dicom-web/studies/1.2.3.4", content=multipart(files[1].read_bytes()),
                              headers={**STOW, "Accept": "application/dicom+json"})
        assert asked.status_code == 409 and asked.headers["content-type"] == "application/dicom+json"
        assert (await counts(node)).instances == 1
        study = f"/dicom-web/studies/{series.study_instance_uid}"
        problem(await get(node, study, headers={"Accept": "image/png"}), 406)
        problem(await get(node, study, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.3'}), 406)
        problem(await get(node, f"{study}/metadata", headers={"Accept": "application/dicom+xml"}), 406)
        ok = await get(node, study, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
        assert ok.status_code == 200 and ok.content.count(b"DICM") == 1


async def test_a_file_gone_from_its_tier_fails_visibly_and_the_rest_still_serves(tmp_path):
    write_series(tmp_path / "in", SeriesSpec(count=3, modality="MR"))
    files = sorted((tmp_path / "in").rglob("*.dcm"))
    async with running_node(tmp_path) as node:
        stored = await request(node, "POST", "/dicom-web/studies", content=multipart(*(f.read_bytes() for f in files)), headers=STOW)
        assert stored.status_code == 200
        study_url = stored.json()["00081190"]["Value"][0]
        study = study_url.rsplit("/", 1)[1]
        sorted(Path(node.config.node.data_dir, "files").rglob("*.dcm"))[1].unlink()  # behind the index's back

        # As stored, the answer has a Content-Length: an instance that cannot be read
        # cuts it short, which the client sees (rather than a silently shorter study).
        def fetch() -> str:
            accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
            try:
                with httpx.Client(timeout=30) as client:
                    client.get(f"http://{node.http.host}:{node.http.port}/dicom-web/studies/{study}", headers={"Accept": accept})
            except httpx.HTTPError as error:
                return type(error).__name__
            return "complete"

        assert await trio.to_thread.run_sync(fetch) != "complete"
        metadata = await get(node, f"/dicom-web/studies/{study}/metadata")
        assert metadata.status_code == 200 and len(metadata.json()) == 2  # the others
        assert (await get(node, "/dicom-web/studies")).status_code == 200
