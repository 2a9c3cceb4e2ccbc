"""[dicomweb] settings (prefix, CORS, max_results) and what QIDO-RS adds to C-FIND:
includefield, limit/offset with their Warning, fuzzymatching's Warning, tags as well as
keywords, 204, the capabilities."""

from __future__ import annotations

from dicom_samples import write_population
from peers import storescu

from node.nodes import peer, running_node
from web.client import get, request

ORIGIN = "https://viewer.example.org"


async def test_prefix_cors_limits_and_search_parameters(tmp_path):
    write_population(tmp_path / "in", images_per_series=1)  # 2 patients x 2 studies x 2 series
    async with running_node(tmp_path, prefix="/dw", cors_origins=(ORIGIN,), max_results=3) as node:
        (await storescu(peer(node), [tmp_path / "in"])).check(expected=8)
        assert (await get(node, "/dicom-web/studies")).status_code == 404  # moved to /dw

        studies = await get(node, "/dw/studies", headers={"Origin": ORIGIN})
        assert studies.status_code == 200 and studies.headers["access-control-allow-origin"] == ORIGIN
        assert len(studies.json()) == 3 and "more matches" in studies.headers["warning"]  # 4 match, max_results 3
        assert all(s["00081190"]["Value"][0].endswith(f"/dw/studies/{s['0020000D']['Value'][0]}") for s in studies.json())
        preflight = await request(node, "OPTIONS", "/dw/studies", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 200 and "POST" in preflight.headers["access-control-allow-methods"]
        elsewhere = await get(node, "/dw/studies", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in elsewhere.headers

        page = (await get(node, "/dw/studies", params={"limit": "2", "offset": "1"})).json()
        everything = (await get(node, "/dw/studies", params={"limit": "3"})).json()
        assert [s["0020000D"] for s in page] == [s["0020000D"] for s in everything[1:3]]
        by_tag = (await get(node, "/dw/studies", params={"00100020": "TRIO0002", "includefield": "00081030,StudyID"})).json()
        assert {s["00100020"]["Value"][0] for s in by_tag} == {"TRIO0002"} and len(by_tag) == 2
        assert all("00081030" in s and "00200010" in s for s in by_tag)
        fuzzy = await get(node, "/dw/studies", params={"PatientName": "roe^richard", "fuzzymatching": "true"})
        assert len(fuzzy.json()) == 2 and "fuzzymatching parameter is not supported" in fuzzy.headers["warning"]
        all_fields = (await get(node, "/dw/instances", params={"PatientID": "TRIO0001", "includefield": "all", "limit": "1"})).json()
        assert "00280010" in all_fields[0] and "00180050" in all_fields[0]  # Rows, Slice Thickness: every stored attribute
        series = (await get(node, "/dw/series", params={"Modality": "MR", "PatientID": "TRIO0001"})).json()
        assert len(series) == 2 and all(s["00080060"]["Value"] == ["MR"] for s in series)
        assert (await get(node, "/dw/studies", params={"StudyDate": "19000101-19001231"})).status_code == 204

        capabilities = (await get(node, "/dw/capabilities")).json()
        assert capabilities["base"].endswith("/dw")
        permissions = {r["name"]: r["permission"] for r in capabilities["resources"]}
        assert permissions["search-studies"] == "query" and permissions["store"] == "store"
        assert permissions["retrieve-frames"] == "retrieve" and permissions["capabilities"] is None
        options = await request(node, "OPTIONS", "/dw/")
        assert options.status_code == 200 and options.json()["services"] == ["QIDO-RS", "WADO-RS", "STOW-RS"]
