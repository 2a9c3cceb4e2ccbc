"""Time matching (TM) side by side: the node, DCMTK dcmqrscp and Orthanc hold the same six
studies, one Study Time each, and answer the same findscu queries. The node answers as
dcmqrscp does; Orthanc compares the text, which differs only where lengths differ.

The rule (docs/conformance.md, storage/matching.py): a time is the moment it writes, a
left-out part being zero; a single value matches that moment, a range the moments from
its low end to its high end, both included. `120000` is not `120000.123`, and `10-11`
ends at 11:00:00, where DCMTK ends it too.
"""

import pytest
from dicom_samples import SeriesSpec, uid_from, write_series
from peers import findscu
from peers.dicom_servers import RemoteAE, dcmqrscp, orthanc

from triopacs import connect
from triopacs.client.contexts import storage_contexts_for

from .nodes import AE_TITLE, LOOPBACK, peer, running_node

STUDY_TIMES = ["100000", "110000", "111111", "120000", "120000.123", "223000"]

# query -> the stored times it matches
EXPECTED = {
    "120000": {"120000"},
    "10-11": {"100000", "110000"},
    "2230": {"223000"},  # PS3.4 C.2.2.2.1.3: "2230" matches "223000"
    "-11": {"100000", "110000"},
    "1100-1112": {"110000", "111111"},
    "12-": {"120000", "120000.123", "223000"},
}


@pytest.fixture
def studies(tmp_path):
    return [
        write_series(
            tmp_path / "studies",
            SeriesSpec(count=1, modality="CT", patient_id="TIMES", study_time=time, study_instance_uid=uid_from("tm", time)),
        )
        for time in STUDY_TIMES
    ]


async def store(address, files) -> None:
    async with connect(LOOPBACK, address.port, called_ae_title=address.ae_title, contexts=storage_contexts_for(files)) as association:
        assert all([(await association.store(path)).ok for path in files])


async def answers(address, query: str) -> set[str]:
    result = await findscu(address, {"PatientID": "TIMES", "StudyTime": query, "StudyInstanceUID": ""}, level="STUDY")
    result.check()
    return {value.rstrip() for value in result.values("StudyTime")}


async def test_time_matching_against_dcmqrscp_and_orthanc(tmp_path, studies):
    files = [path for series in studies for path in series.paths]
    found = {}
    async with running_node(tmp_path) as node:
        async with dcmqrscp(parent_dir=tmp_path) as qr, orthanc(known_peers=[RemoteAE("FINDSCU", 104)], parent_dir=tmp_path) as orth:
            for name, address in (("node", peer(node)), ("dcmqrscp", qr), ("orthanc", orth)):
                await store(address, files)
                found[name] = {query: await answers(address, query) for query in EXPECTED}
    assert found["node"] == EXPECTED
    assert found["dcmqrscp"] == EXPECTED  # DCMTK compares the moments too
    # The cases that showed the difference: no peer matches them.
    for name in found:
        assert "120000.123" not in found[name]["120000"], name
        assert "111111" not in found[name]["10-11"], name
    # Orthanc compares the text as written, so a shorter key differs from a longer
    # stored value where the moments are the same; where the lengths agree, so do we.
    assert found["orthanc"]["2230"] == set() and found["orthanc"]["10-11"] == {"100000"}
    assert all(found["orthanc"][query] == EXPECTED[query] for query in ("120000", "1100-1112", "12-"))
