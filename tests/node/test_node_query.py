"""DCMTK findscu -> node: C-FIND at every level of Patient Root and Study Root.

Each case runs against a node holding a known population (tests/dicom_samples.py
write_population: 2 patients x 2 studies x 2 series (CT, MR) x 2 images) plus two
patients whose names need a character set: one in ISO_IR 100 (Latin-1), one in
ISO_IR 192 (UTF-8).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import structlog
from dicom_samples import GeneratedSeries, SeriesSpec, new_uid, write_population, write_series
from peers import findscu, getscu, parse_findscu_output
from peers.dcmtk import run_dcmtk

from triopacs import connect
from triopacs.client.contexts import storage_contexts_for

from .nodes import AE_TITLE, LOOPBACK, peer, running_node

LATIN1_NAME = "Müller^Jürgen"
UTF8_NAME = "山田^太郎"


@dataclass
class Archive:
    node: object
    population: list[GeneratedSeries]
    latin1: GeneratedSeries
    utf8: GeneratedSeries

    @property
    def everything(self) -> list[GeneratedSeries]:
        return [*self.population, self.latin1, self.utf8]

    def studies(self, patient_id: str | None = None) -> list[str]:
        seen = {s.study_instance_uid: s for s in self.everything if patient_id in (None, s.spec.patient_id)}
        return sorted(seen)


@pytest.fixture
async def archive(tmp_path):
    folder = tmp_path / "population"
    population = write_population(folder)
    latin1 = write_series(
        folder,
        SeriesSpec(count=1, modality="MR", patient_id="LATIN1", patient_name=LATIN1_NAME,
                   specific_character_set="ISO_IR 100", study_instance_uid=new_uid(), accession_number="L1"),
    )
    utf8 = write_series(
        folder,
        SeriesSpec(count=1, modality="MR", patient_id="UTF8", patient_name=UTF8_NAME,
                   specific_character_set="ISO_IR 192", study_instance_uid=new_uid(), accession_number="U1"),
    )
    files = [path for series in [*population, latin1, utf8] for path in series.paths]
    async with running_node(tmp_path) as node:
        # Loaded with the triopacs client (fast, in-process): storescu is covered elsewhere.
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(files)) as association:
            assert all([(await association.store(path)).ok for path in files])
        yield Archive(node, population, latin1, utf8)


def first(archive: Archive) -> GeneratedSeries:
    return archive.population[0]  # patient TRIO0001, study 1 (2024-01-01), CT series


@dataclass(frozen=True)
class Case:
    model: str  # "patient" or "study" (findscu -P / -S)
    level: str
    keys: Callable[[Archive], dict[str, str]]
    expect: Callable[[Archive, list[dict[str, str]]], None]


def _one_patient(archive, responses):
    assert responses == [
        {"QueryRetrieveLevel": "PATIENT", "PatientID": "TRIO0001", "PatientName": "DOE^JANE",
         "NumberOfPatientRelatedStudies": "2", "SpecificCharacterSet": "ISO_IR 100", "RetrieveAETitle": AE_TITLE}
    ]


def _patient_ids(*expected):
    def check(archive, responses):
        assert sorted(r["PatientID"] for r in responses) == sorted(expected)

    return check


def _studies_of_first_patient(archive, responses):
    assert sorted(r["StudyInstanceUID"] for r in responses) == archive.studies("TRIO0001")
    for response in responses:
        assert response["PatientID"] == "TRIO0001"
        assert response["NumberOfStudyRelatedSeries"] == "2"
        assert response["NumberOfStudyRelatedInstances"] == "4"
        assert response["ModalitiesInStudy"] in ("CT\\MR", "MR\\CT")


def _series_of_first_study(archive, responses):
    study = first(archive).study_instance_uid
    expected = sorted((s.series_instance_uid, s.spec.modality) for s in archive.population if s.study_instance_uid == study)
    assert sorted((r["SeriesInstanceUID"], r["Modality"]) for r in responses) == expected
    assert [r["NumberOfSeriesRelatedInstances"] for r in responses] == ["2", "2"]
    assert {r["StudyInstanceUID"] for r in responses} == {study}


def _images_of_first_series(archive, responses):
    assert sorted(r["SOPInstanceUID"] for r in responses) == sorted(first(archive).sop_instance_uids)
    assert sorted(r["InstanceNumber"] for r in responses) == ["1", "2"]
    # findscu prints a UID it knows by name ("UI =CTImageStorage"), which the dump parser
    # in tests/peers leaves empty; the test below reads the printed name instead.
    assert {r["SOPClassUID"] for r in responses} <= {"", first(archive).sop_class_uid}


def _studies_dated(low: str, high: str):
    def check(archive, responses):
        expected = sorted({s.study_instance_uid for s in archive.everything if low <= s.spec.study_date <= high})
        assert len(expected) == 4  # 2024-01-01, 01-02, 01-15 (x2: the charset patients), not 01-31
        assert sorted(r["StudyInstanceUID"] for r in responses) == expected
        assert all(low <= r["StudyDate"] <= high for r in responses)

    return check


def _dates(*expected):
    def check(archive, responses):
        assert sorted(r["StudyDate"] for r in responses) == sorted(expected)

    return check


def _listed_studies(archive, responses):
    assert sorted(r["StudyInstanceUID"] for r in responses) == sorted([archive.latin1.study_instance_uid, archive.utf8.study_instance_uid])


def _all_studies(archive, responses):
    assert sorted(r["StudyInstanceUID"] for r in responses) == archive.studies()
    assert len(responses) == 6


def _accessions(*expected):
    def check(archive, responses):
        assert sorted(r["AccessionNumber"] for r in responses) == sorted(expected)

    return check


def _mr_series_of_first_study(archive, responses):
    study = first(archive).study_instance_uid
    (mr,) = [s for s in archive.population if s.study_instance_uid == study and s.spec.modality == "MR"]
    assert [(r["SeriesInstanceUID"], r["Modality"], r["SeriesNumber"]) for r in responses] == [(mr.series_instance_uid, "MR", "2")]


def _nothing(archive, responses):
    assert responses == []


CASES = {
    # Patient Root, all four levels
    "patient/PATIENT single value + computed": Case(
        "patient", "PATIENT", lambda a: {"PatientID": "TRIO0001", "PatientName": "", "NumberOfPatientRelatedStudies": ""}, _one_patient),
    "patient/PATIENT wildcards * and ?": Case(
        "patient", "PATIENT", lambda a: {"PatientName": "?OE^*", "PatientID": ""}, _patient_ids("TRIO0001", "TRIO0002")),
    "patient/PATIENT wildcard on a Latin-1 name": Case(
        "patient", "PATIENT", lambda a: {"PatientName": "M*", "PatientID": ""}, _patient_ids("LATIN1")),
    "patient/PATIENT no match": Case(
        "patient", "PATIENT", lambda a: {"PatientID": "NOBODY"}, _nothing),
    "patient/STUDY computed keys": Case(
        "patient", "STUDY",
        lambda a: {"PatientID": "TRIO0001", "StudyInstanceUID": "", "NumberOfStudyRelatedSeries": "",
                   "NumberOfStudyRelatedInstances": "", "ModalitiesInStudy": ""},
        _studies_of_first_patient),
    "patient/SERIES computed keys": Case(
        "patient", "SERIES",
        lambda a: {"PatientID": "TRIO0001", "StudyInstanceUID": first(a).study_instance_uid, "SeriesInstanceUID": "",
                   "Modality": "", "NumberOfSeriesRelatedInstances": ""},
        _series_of_first_study),
    "patient/IMAGE": Case(
        "patient", "IMAGE",
        lambda a: {"PatientID": "TRIO0001", "StudyInstanceUID": first(a).study_instance_uid,
                   "SeriesInstanceUID": first(a).series_instance_uid, "SOPInstanceUID": "", "InstanceNumber": "", "SOPClassUID": ""},
        _images_of_first_series),
    # Study Root, its three levels
    "study/STUDY date range": Case(
        "study", "STUDY", lambda a: {"StudyDate": "20240101-20240130", "StudyInstanceUID": ""}, _studies_dated("20240101", "20240130")),
    "study/STUDY open date range, from": Case(
        "study", "STUDY", lambda a: {"StudyDate": "20240131-", "StudyInstanceUID": ""}, _dates("20240131", "20240201")),
    "study/STUDY open date range, until": Case(
        "study", "STUDY", lambda a: {"StudyDate": "-20240101", "StudyInstanceUID": ""}, _dates("20240101")),
    "study/STUDY UID list": Case(
        "study", "STUDY", lambda a: {"StudyInstanceUID": f"{a.latin1.study_instance_uid}\\{a.utf8.study_instance_uid}"}, _listed_studies),
    "study/STUDY universal": Case(
        "study", "STUDY", lambda a: {"StudyInstanceUID": "", "PatientName": "", "StudyDate": ""}, _all_studies),
    "study/STUDY wildcard ?": Case(
        "study", "STUDY", lambda a: {"AccessionNumber": "ACC1?", "StudyInstanceUID": ""}, _accessions("ACC11", "ACC12")),
    "study/SERIES single value": Case(
        "study", "SERIES",
        lambda a: {"StudyInstanceUID": first(a).study_instance_uid, "Modality": "MR", "SeriesInstanceUID": "", "SeriesNumber": ""},
        _mr_series_of_first_study),
    "study/IMAGE": Case(
        "study", "IMAGE",
        lambda a: {"StudyInstanceUID": first(a).study_instance_uid, "SeriesInstanceUID": first(a).series_instance_uid,
                   "SOPInstanceUID": "", "InstanceNumber": "", "SOPClassUID": ""},
        _images_of_first_series),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_findscu(archive, case):
    result = await findscu(peer(archive.node), case.keys(archive), level=case.level, model=case.model)
    result.check()  # final status Success, no error lines
    assert all(r.get("QueryRetrieveLevel") == case.level for r in result.responses)
    case.expect(archive, result.responses)
    if "SOPClassUID" in case.keys(archive):  # CT images: the class findscu names
        assert result.tool.output.count("(0008,0016) UI =CTImageStorage") == len(result.responses) == 2


async def extracted_responses(archive: Archive, keys: dict[str, str], workdir: Path) -> list[pydicom.Dataset]:
    """findscu -X writes each response as rsp0001.dcm, ... (read back with pydicom, which
    decodes text by the response's SpecificCharacterSet: what findscu prints does not)."""
    workdir.mkdir()
    args = ["-v", "-S", "-X", "-aet", "FINDSCU", "-aec", AE_TITLE, "-k", "QueryRetrieveLevel=STUDY"]
    for key, value in keys.items():
        args += ["-k", f"{key}={value}" if value else key]
    result = await run_dcmtk("findscu", *args, LOOPBACK, str(archive.node.address.port), cwd=workdir, timeout=30)
    result.check()
    assert "Received Final Find Response (Success)" in result.output, result.describe()
    return [pydicom.dcmread(path) for path in sorted(workdir.glob("rsp*.dcm"))]


@pytest.mark.parametrize(
    ("patient_id", "charset", "name", "encoded"),
    [("LATIN1", "ISO_IR 100", LATIN1_NAME, LATIN1_NAME.encode("latin-1")),
     ("UTF8", "ISO_IR 192", UTF8_NAME, UTF8_NAME.encode("utf-8"))],
    ids=["ISO_IR 100", "ISO_IR 192"],
)
async def test_findscu_responses_keep_the_specific_character_set(archive, tmp_path, patient_id, charset, name, encoded):
    (response,) = await extracted_responses(
        archive, {"PatientID": patient_id, "PatientName": "", "StudyInstanceUID": ""}, tmp_path / "responses"
    )
    assert response.SpecificCharacterSet == charset
    assert str(response.PatientName) == name
    # and the bytes on the wire are in that character set, not re-encoded
    assert response["PatientName"].value.original_string.rstrip(b" ") == encoded


@pytest.mark.parametrize(
    ("pattern", "patient_id", "name"),
    [("Mü*", "LATIN1", LATIN1_NAME), ("山田*", "UTF8", UTF8_NAME), ("*^太郎", "UTF8", UTF8_NAME)],
)
async def test_findscu_matches_non_ascii_names_across_character_sets(archive, tmp_path, pattern, patient_id, name):
    # The query is in UTF-8 (ISO_IR 192); the Latin-1 patient must match all the same:
    # names are compared as text, not as bytes.
    responses = await extracted_responses(
        archive, {"SpecificCharacterSet": "ISO_IR 192", "PatientName": pattern, "PatientID": ""}, tmp_path / "responses"
    )
    assert [(str(r.PatientID), str(r.PatientName)) for r in responses] == [(patient_id, name)]


def texts_series(count: int, text_bytes: int) -> list[pydicom.Dataset]:
    """`count` small MR instances of one series, each carrying `text_bytes` of TextValue (UT)."""
    study, series = new_uid(), new_uid()
    datasets = []
    for number in range(1, count + 1):
        ds = pydicom.Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.SOPInstanceUID = new_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID, ds.PatientName, ds.Modality, ds.InstanceNumber = "BIG", "BIG^TEXT", "MR", number
        ds.TextValue = f"{number:08d}" * (text_bytes // 8)
        datasets.append(ds)
    return datasets


async def test_findscu_cancel_ends_in_cancel_and_the_node_goes_on(tmp_path):
    # 24 matches of 1 MB each: more than the loopback socket buffers hold, so when
    # findscu sends C-CANCEL after the first response the node is still sending, and
    # must stop early with Cancel (FE00). Small responses would all be gone by then.
    datasets = texts_series(24, 1 << 20)
    keys = ["-k", "QueryRetrieveLevel=IMAGE", "-k", f"StudyInstanceUID={datasets[0].StudyInstanceUID}",
            "-k", f"SeriesInstanceUID={datasets[0].SeriesInstanceUID}", "-k", "SOPInstanceUID", "-k", "TextValue"]
    async with running_node(tmp_path) as node:
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(datasets[:1])) as association:
            assert all([(await association.store(ds)).ok for ds in datasets])
        result = await run_dcmtk(
            "findscu", "-v", "-S", "--cancel", "1", "-aet", "FINDSCU", "-aec", AE_TITLE, *keys,
            LOOPBACK, str(node.address.port), timeout=60,
        )
        parsed = parse_findscu_output(result)
        assert parsed.final_status == "Cancel: MatchingTerminatedDueToCancelRequest", result.describe()
        assert 1 <= len(parsed.responses) < 24
        # the node still answers, and the same query runs to the end without --cancel
        again = await findscu(peer(node), {"StudyInstanceUID": datasets[0].StudyInstanceUID, "SeriesInstanceUID": datasets[0].SeriesInstanceUID, "SOPInstanceUID": ""}, level="IMAGE")
    assert len(again.check().responses) == 24


async def test_refused_queries_and_retrieves_are_logged_with_their_reason(archive, tmp_path):
    # A relational C-FIND (SERIES without its study) and a C-GET that names no series.
    with structlog.testing.capture_logs() as logs:
        find = await findscu(peer(archive.node), {"SeriesInstanceUID": "", "Modality": "MR"}, level="SERIES")
        get = await getscu(peer(archive.node), {"StudyInstanceUID": first(archive).study_instance_uid}, level="SERIES", received_dir=tmp_path / "got")
    assert find.final_status == "Error: DataSetDoesNotMatchSOPClass", find.tool.output  # A900
    assert get.final_status is not None and "DataSetDoesNotMatchSOPClass" in get.final_status, get.tool.output
    refused = [(entry["event"], entry["status"], entry["reason"]) for entry in logs if entry["event"].endswith("refused")]
    assert refused == [
        ("query refused", "0xa900", "relational queries are not supported: SERIES level needs a single StudyInstanceUID"),
        ("get refused", "0xa900", "a SERIES retrieve needs SeriesInstanceUID"),
    ]
