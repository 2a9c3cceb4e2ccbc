"""C-FIND and C-MOVE/C-GET over a populated index, for both models at every level.

Identifiers go through bytes (implicit VR little endian, as they cross the network) and
are parsed without value conversion, the way the association hands them over; a few
tests also use in-memory pydicom datasets. The storage functions are plain functions of
a sqlite3 connection, called directly (run_on_index).
"""

import io

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import BasicTextSRStorage, CTImageStorage, ComputedRadiographyImageStorage, ExplicitVRLittleEndian, MRImageStorage

from triopacs.storage.attributes import record_from_dataset
from triopacs.storage.errors import QueryError
from triopacs.storage.index_db import DuplicatePolicy, open_index, record_instances
from triopacs.storage.query import (
    InformationModel,
    QueryOptions,
    find_page,
    plan_find,
    plan_retrieve,
    retrieve_items,
)

# Query keys such as "C*" in a CS are valid keys but invalid values: pydicom warns as it encodes.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom.*")

PATIENT_ROOT = InformationModel.PATIENT_ROOT
STUDY_ROOT = InformationModel.STUDY_ROOT
ROOT = "1.2.826.0.1.3680043.8.498.77"


def uid(*parts):
    return ".".join([ROOT, *map(str, parts)])


def code(value, meaning):
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "LOCAL", meaning
    return item


# study -> patient and study attributes; series -> (study, attributes, instances)
PATIENTS = {
    "P1A": dict(PatientID="P1", IssuerOfPatientID="A", PatientName="Doe^John", PatientBirthDate="19700101", PatientSex="M"),
    "P1B": dict(PatientID="P1", IssuerOfPatientID="B", PatientName="Doe^John", PatientBirthDate="19700101", PatientSex="M"),
    "P2": dict(PatientID="P2", PatientName="DOE^JANE", PatientBirthDate="19851224", PatientSex="F"),
    "P3": dict(PatientID="P3", PatientName="Müller^Jürgen", PatientBirthDate="19501231", PatientSex="M"),
    "P5": dict(PatientID="P5", PatientName="Yamada^Tarou=山田^太郎=やまだ^たろう"),
}
CHARSETS = {"P3": "ISO_IR 100", "P5": ["", "ISO 2022 IR 87"]}
STUDIES = {
    1: ("P1A", dict(StudyDate="20230105", StudyTime="101500", AccessionNumber="ACC1", StudyID="1",
                    StudyDescription="CT Head", ReferringPhysicianName="Welby^Marcus")),
    2: ("P1A", dict(StudyDate="20230610", StudyTime="143000", AccessionNumber="ACC2", StudyID="2",
                    StudyDescription="MR Knee", PatientAge="052Y")),
    3: ("P2", dict(StudyDate="20240101", StudyTime="080000", AccessionNumber="ACC3", StudyID="3",
                   StudyDescription="50% off_[promo]", ReferringPhysicianName="welby^marcus")),
    4: ("P3", dict(StudyDate="20221231", StudyTime="235959.5", StudyID="4", StudyDescription="Ärger",
                   ProcedureCodeSequence=[code("CTHD", "CT head"), code("XR1", "X-ray")])),
    5: ("P1B", dict(StudyDate="20230105", StudyTime="090000", AccessionNumber="X5", StudyDescription="Other issuer")),
    6: ("P5", dict(StudyDate="20200202", StudyTime="1200", StudyDescription="Japanese")),
}
SERIES = {  # (study, series): (sop class, attributes, instance count)
    (1, 1): (CTImageStorage, dict(Modality="CT", SeriesNumber="1", SeriesDescription="Axial", SeriesDate="20230105",
                                  SeriesTime="101600", BodyPartExamined="HEAD"), 3),
    (1, 2): (BasicTextSRStorage, dict(Modality="SR", SeriesNumber="2", SeriesDescription="Report"), 1),
    (2, 1): (MRImageStorage, dict(Modality="MR", SeriesNumber="1", SeriesDescription="Sagittal",
                                  SeriesDate="20230610", BodyPartExamined="KNEE"), 2),
    (3, 1): (CTImageStorage, dict(Modality="CT", SeriesNumber="1", SeriesDescription="Chest"), 2),
    (4, 1): (ComputedRadiographyImageStorage, dict(Modality="CR", SeriesNumber="10"), 1),
    (5, 1): (CTImageStorage, dict(Modality="CT", SeriesNumber="1"), 1),
    (6, 1): (CTImageStorage, dict(Modality="OT", SeriesNumber="1"), 1),
}


def instance_record(study, series, number, patient, sop_class, attributes):
    ds = Dataset()
    if patient in CHARSETS:
        ds.SpecificCharacterSet = CHARSETS[patient]
    for keyword, value in {**PATIENTS[patient], **attributes}.items():
        setattr(ds, keyword, value)
    ds.StudyInstanceUID = uid(study)
    ds.SeriesInstanceUID = uid(study, series)
    ds.SOPInstanceUID = uid(study, series, number)
    ds.SOPClassUID = sop_class
    ds.InstanceNumber = str(number)
    ds.AcquisitionDateTime = f"202301051017{number:02d}"
    ds.ImageComments = f"comment {number}"
    return record_from_dataset(
        ds, transfer_syntax_uid=ExplicitVRLittleEndian, file_path=f"/store/{study}/{series}/{number}.dcm",
        file_size=100, sha256="0" * 64,
    )


def population():
    records = []
    for (study, series), (sop_class, series_attributes, count) in SERIES.items():
        patient, study_attributes = STUDIES[study]
        for number in range(1, count + 1):
            records.append(
                instance_record(study, series, number, patient, sop_class, {**study_attributes, **series_attributes})
            )
    return records


def run_on_index(path, body):
    """Open the index at ``path``, run ``body(db)``, close it."""
    db = open_index(path)
    try:
        return body(db)
    finally:
        db.close()


def every_page(db, plan, *, page_size=100, retrieve_ae_title=None):
    """The pages of responses until the matches are exhausted (never an empty page)."""
    cursor = 0
    while cursor is not None:
        page = find_page(db, plan, cursor=cursor, size=page_size, retrieve_ae_title=retrieve_ae_title)
        cursor = page.cursor
        if page.responses:
            yield page.responses


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    path = tmp_path_factory.mktemp("query") / "index.db"
    run_on_index(path, lambda db: record_instances(db, population(), DuplicatePolicy.REJECT))
    return path


@pytest.fixture
def writable_index(tmp_path):
    path = tmp_path / "index.db"
    run_on_index(path, lambda db: record_instances(db, population(), DuplicatePolicy.REJECT))
    return path


def identifier(level, *, raw=True, **keys):
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    if not raw:
        return ds
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, ds)
    return read_dataset(io.BytesIO(fp.getvalue()), True, True)


def find(index, model, level, *, options=QueryOptions(), retrieve_ae_title=None, raw=True, **keys):
    plan = plan_find(identifier(level, raw=raw, **keys), model, options)

    def body(db):
        return [ds for page in every_page(db, plan, retrieve_ae_title=retrieve_ae_title) for ds in page]

    return run_on_index(index, body)


def values(responses, keyword):
    return sorted(str(r.get(keyword, "")) for r in responses)


def studies(responses):
    return sorted(int(r.StudyInstanceUID.rsplit(".", 1)[1]) for r in responses)


# -- PATIENT level (Patient Root) ------------------------------------------------------------------


def test_patient_universal_matching_returns_every_patient(index):
    found = find(index, PATIENT_ROOT, "PATIENT", PatientID="", IssuerOfPatientID="")
    assert sorted((r.PatientID, r.IssuerOfPatientID or "") for r in found) == [
        ("P1", "A"), ("P1", "B"), ("P2", ""), ("P3", ""), ("P5", "")
    ]
    assert all(r.QueryRetrieveLevel == "PATIENT" for r in found)


def test_patient_single_value_and_issuer(index):
    assert len(find(index, PATIENT_ROOT, "PATIENT", PatientID="P1")) == 2
    [only] = find(index, PATIENT_ROOT, "PATIENT", PatientID="P1", IssuerOfPatientID="A")
    assert only.IssuerOfPatientID == "A"
    assert find(index, PATIENT_ROOT, "PATIENT", PatientID="p1") == []  # LO is case sensitive


@pytest.mark.parametrize(
    "pattern, folded, expected",
    [
        ("Doe*", True, ["P1", "P1", "P2"]),
        ("Doe*", False, ["P1", "P1"]),
        ("doe^john", True, ["P1", "P1"]),
        ("doe^john", False, []),
        ("D?E^J*", True, ["P1", "P1", "P2"]),
        ("*^J?NE", True, ["P2"]),
        ("Müller*", True, ["P3"]),
        ("MÜLLER^JÜRGEN", True, ["P3"]),
        ("Yamada*", True, ["P5"]),
        ("*山田*", True, ["P5"]),
        ("*", True, ["P1", "P1", "P2", "P3", "P5"]),
    ],
)
def test_patient_name_wildcards_and_case(index, pattern, folded, expected):
    found = find(
        index, PATIENT_ROOT, "PATIENT", options=QueryOptions(fold_person_names=folded),
        SpecificCharacterSet="ISO_IR 192", PatientName=pattern, PatientID="",
    )
    assert values(found, "PatientID") == expected


@pytest.mark.parametrize(
    "birth_date, expected",
    [
        ("19700101", ["P1", "P1"]),
        ("19700101-19851224", ["P1", "P1", "P2"]),
        ("-19600101", ["P3"]),
        ("19800101-", ["P2"]),
        ('""', ["P5"]),
        ("", ["P1", "P1", "P2", "P3", "P5"]),
    ],
)
def test_patient_birth_date_single_range_empty_universal(index, birth_date, expected):
    found = find(index, PATIENT_ROOT, "PATIENT", PatientBirthDate=birth_date, PatientID="")
    assert values(found, "PatientID") == expected


def test_patient_computed_counts(index):
    [p1a] = find(
        index, PATIENT_ROOT, "PATIENT", PatientID="P1", IssuerOfPatientID="A",
        NumberOfPatientRelatedStudies="", NumberOfPatientRelatedSeries="", NumberOfPatientRelatedInstances="",
    )
    assert (p1a.NumberOfPatientRelatedStudies, p1a.NumberOfPatientRelatedSeries, p1a.NumberOfPatientRelatedInstances) == (2, 3, 6)


def test_patient_level_returns_stored_values_in_their_character_set(index):
    [p3] = find(index, PATIENT_ROOT, "PATIENT", PatientID="P3", PatientName="", PatientSex="")
    assert p3.SpecificCharacterSet == "ISO_IR 100"
    assert str(p3.PatientName) == "Müller^Jürgen" and p3.PatientSex == "M"
    [p5] = find(index, PATIENT_ROOT, "PATIENT", PatientID="P5", PatientName="")
    assert list(p5.SpecificCharacterSet) == ["", "ISO 2022 IR 87"]
    assert p5.PatientName.ideographic == "山田^太郎"
    [p1] = find(index, PATIENT_ROOT, "PATIENT", PatientID="P2", PatientName="", OtherPatientIDs="")
    assert "SpecificCharacterSet" not in p1
    assert "OtherPatientIDs" in p1 and p1.OtherPatientIDs in (None, "")  # unknown key: returned empty


def test_lower_level_keys_must_be_empty(index):
    with pytest.raises(QueryError, match="below the PATIENT level"):
        find(index, PATIENT_ROOT, "PATIENT", PatientID="P1", StudyDate="20230105")
    [found, _] = find(index, PATIENT_ROOT, "PATIENT", PatientID="P1", StudyDate="")
    assert "StudyDate" in found and not found.StudyDate


# -- STUDY level ----------------------------------------------------------------------------------


def test_patient_root_study_level_needs_the_patient_id(index):
    with pytest.raises(QueryError, match="relational") as caught:
        find(index, PATIENT_ROOT, "STUDY", StudyDate="")
    assert caught.value.status == 0xA900 and len(caught.value.comment) <= 64
    with pytest.raises(QueryError, match="relational"):
        find(index, PATIENT_ROOT, "STUDY", PatientID="P*")
    assert studies(find(index, PATIENT_ROOT, "STUDY", PatientID="P1", StudyInstanceUID="")) == [1, 2, 5]
    assert studies(find(index, PATIENT_ROOT, "STUDY", PatientID="P1", IssuerOfPatientID="A", StudyInstanceUID="")) == [1, 2]


@pytest.mark.parametrize(
    "keys, expected",
    [
        (dict(StudyDate="20230105"), [1, 5]),
        (dict(StudyDate="20230101-20231231"), [1, 2, 5]),
        (dict(StudyDate="-20221231"), [4, 6]),
        (dict(StudyDate="20240101-"), [3]),
        (dict(StudyTime="1000-1200"), [1, 6]),
        (dict(StudyTime="1015"), [1]),
        (dict(StudyTime="-0900"), [3, 5]),
        (dict(StudyTime="2359-"), [4]),
        (dict(StudyDate="20230105", StudyTime="1000-"), [1]),
        (dict(AccessionNumber="ACC?"), [1, 2, 3]),
        (dict(AccessionNumber='""'), [4, 6]),
        (dict(StudyID="4"), [4]),
        (dict(StudyDescription="50% off_*"), [3]),
        (dict(StudyDescription="50_ off*"), []),
        (dict(StudyDescription="*[promo]"), [3]),
        (dict(StudyDescription="*[p]romo]"), []),
        (dict(StudyDescription="ärger"), []),
        (dict(StudyDescription="Ärger"), [4]),
        (dict(ReferringPhysicianName="WELBY^MARCUS"), [1, 3]),
        (dict(ModalitiesInStudy="MR"), [2]),
        (dict(ModalitiesInStudy="CT\\MR"), [1, 2, 3, 5]),
        (dict(ModalitiesInStudy="C*"), [1, 3, 4, 5]),
        (dict(SOPClassesInStudy=BasicTextSRStorage), [1]),
        (dict(StudyInstanceUID=f"{uid(1)}\\{uid(3)}\\{uid(99)}"), [1, 3]),
        (dict(PatientName="doe*"), [1, 2, 3, 5]),
        (dict(PatientSex="F"), [3]),
        (dict(PatientAge="052Y"), [2]),  # no column: matched on the stored study JSON
        (dict(PatientAge="05?Y"), []),  # AS takes no wild cards (PS3.4 C.2.2.2.4)
        (dict(PatientID="P1", PatientBirthDate="19700101"), [1, 2, 5]),
    ],
)
def test_study_root_study_level_matching(index, keys, expected):
    found = find(index, STUDY_ROOT, "STUDY", **{"SpecificCharacterSet": "ISO_IR 192", "StudyInstanceUID": "", **keys})
    assert studies(found) == expected


def test_study_level_computed_keys(index):
    found = {
        r.StudyID: r
        for r in find(
            index, STUDY_ROOT, "STUDY", StudyID="", ModalitiesInStudy="", SOPClassesInStudy="",
            NumberOfStudyRelatedSeries="", NumberOfStudyRelatedInstances="",
            NumberOfPatientRelatedStudies="",
        )
        if r.StudyID
    }
    one = found["1"]
    assert list(one.ModalitiesInStudy) == ["CT", "SR"]
    assert sorted(one.SOPClassesInStudy) == sorted([CTImageStorage, BasicTextSRStorage])
    assert (one.NumberOfStudyRelatedSeries, one.NumberOfStudyRelatedInstances) == (2, 4)
    assert one.NumberOfPatientRelatedStudies == 2
    assert found["4"].ModalitiesInStudy == "CR"


def test_study_responses_carry_request_keys_level_and_retrieve_ae(index):
    [found] = find(
        index, STUDY_ROOT, "STUDY", retrieve_ae_title="TRIOPACS", StudyInstanceUID=uid(4),
        PatientName="", StudyDescription="", AccessionNumber="", InstitutionName="",
    )
    assert found.QueryRetrieveLevel == "STUDY"
    assert found.RetrieveAETitle == "TRIOPACS"
    assert found.SpecificCharacterSet == "ISO_IR 100"
    assert found.StudyDescription == "Ärger"
    assert found.AccessionNumber in (None, "")
    assert "InstitutionName" in found  # a series-level key, empty at study level
    assert set(found.keys()) == {
        0x00080005, 0x00080050, 0x00080052, 0x00080054, 0x00080080, 0x00081030, 0x00100010, 0x0020000D
    }


def encode_and_decode(response):
    """What the association does with a response (implicit VR LE), and what the SCU reads."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, response)
    decoded = read_dataset(io.BytesIO(fp.getvalue()), True, True)
    decoded.decode()  # apply its Specific Character Set
    return decoded


@pytest.mark.parametrize("level", ["STUDY", "SERIES", "IMAGE"])
def test_responses_survive_encoding_in_their_character_set(index, level):
    keys = dict(
        StudyInstanceUID="", PatientName="", PatientID="", StudyDescription="", ModalitiesInStudy="",
        NumberOfStudyRelatedInstances="", ProcedureCodeSequence=[], OtherPatientIDsSequence=[],
        StudyTime="", PatientBirthDate="",
    )
    if level != "STUDY":
        keys = dict(StudyInstanceUID=uid(4), PatientName="", SeriesInstanceUID="", SeriesNumber="")
    if level == "IMAGE":
        keys.update(SeriesInstanceUID=uid(4, 1), SOPInstanceUID="", InstanceNumber="", AcquisitionDateTime="")
    found = find(index, STUDY_ROOT, level, **keys)
    assert found
    for response in found:
        decoded = encode_and_decode(response)
        for element in response:
            if element.VR == "SQ":
                assert len(decoded[element.tag].value) == len(element.value)
            else:
                assert str(decoded[element.tag].value or "") == str(element.value or ""), element


def test_sequence_matching_and_return(index):
    def procedure_query(*items):
        return find(index, STUDY_ROOT, "STUDY", StudyInstanceUID="", ProcedureCodeSequence=list(items))

    def item(**keys):
        ds = Dataset()
        for keyword, value in keys.items():
            setattr(ds, keyword, value)
        return ds

    assert studies(procedure_query(item(CodeValue="XR1"))) == [4]
    assert studies(procedure_query(item(CodeValue="XR1", CodingSchemeDesignator="OTHER"))) == []
    assert studies(procedure_query(item(CodeValue="NOPE"))) == []
    assert studies(procedure_query(item(CodeMeaning="CT*"))) == [4]
    universal = procedure_query()
    assert studies(universal) == [1, 2, 3, 4, 5, 6]
    [s4] = [r for r in universal if r.ProcedureCodeSequence]
    assert [c.CodeMeaning for c in s4.ProcedureCodeSequence] == ["CT head", "X-ray"]
    [pruned] = procedure_query(item(CodeValue="", CodingSchemeDesignator="LOCAL"))
    assert [sorted(c.keys()) for c in pruned.ProcedureCodeSequence] == [[0x00080100, 0x00080102]] * 2


def test_study_level_rejects_values_in_series_keys(index):
    with pytest.raises(QueryError, match="Modality is below the STUDY level"):
        find(index, STUDY_ROOT, "STUDY", Modality="CT")
    assert len(find(index, STUDY_ROOT, "STUDY", Modality="", SeriesDescription="")) == 6


# -- SERIES level ---------------------------------------------------------------------------------


def test_series_level_needs_the_study_uid(index):
    with pytest.raises(QueryError, match="StudyInstanceUID"):
        find(index, STUDY_ROOT, "SERIES", Modality="CT")
    with pytest.raises(QueryError, match="PatientID"):
        find(index, PATIENT_ROOT, "SERIES", StudyInstanceUID=uid(1))
    with pytest.raises(QueryError, match="not a valid UID"):
        find(index, STUDY_ROOT, "SERIES", StudyInstanceUID=f"{ROOT}.*")  # no wild cards in UIDs


def series_numbers(responses):
    return sorted(int(r.SeriesNumber) for r in responses)


@pytest.mark.parametrize(
    "keys, expected",
    [
        (dict(), [1, 2]),
        (dict(Modality="CT"), [1]),
        (dict(Modality="CT\\SR"), [1, 2]),
        (dict(SeriesNumber="2"), [2]),
        (dict(SeriesDescription="Ax*"), [1]),
        (dict(SeriesDate="20230101-20230131"), [1]),
        (dict(SeriesTime="1016"), [1]),
        (dict(BodyPartExamined="HEAD"), [1]),
        (dict(SeriesInstanceUID=uid(1, 2)), [2]),
        (dict(StudyDate="20230105"), [1, 2]),  # a key of the level above is matched too
        (dict(StudyDate="19990101"), []),
    ],
)
@pytest.mark.parametrize("model", [STUDY_ROOT, PATIENT_ROOT])
def test_series_level_matching(index, model, keys, expected):
    parent = dict(StudyInstanceUID=uid(1))
    if model is PATIENT_ROOT:
        parent["PatientID"] = "P1"
    found = find(index, model, "SERIES", **{"SeriesNumber": "", **parent, **keys})
    assert series_numbers(found) == expected


def test_series_computed_count_and_study_keys(index):
    found = find(
        index, STUDY_ROOT, "SERIES", StudyInstanceUID=uid(1), SeriesNumber="", NumberOfSeriesRelatedInstances="",
        StudyDescription="", PatientName="",
    )
    counts = {int(r.SeriesNumber): r.NumberOfSeriesRelatedInstances for r in found}
    assert counts == {1: 3, 2: 1}
    assert {r.StudyDescription for r in found} == {"CT Head"}
    assert {str(r.PatientName) for r in found} == {"Doe^John"}


# -- IMAGE level ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys, expected",
    [
        (dict(), [1, 2, 3]),
        (dict(InstanceNumber="2"), [2]),
        (dict(SOPInstanceUID=f"{uid(1, 1, 1)}\\{uid(1, 1, 3)}"), [1, 3]),
        (dict(SOPClassUID=CTImageStorage), [1, 2, 3]),
        (dict(SOPClassUID=MRImageStorage), []),
        (dict(AcquisitionDateTime="20230105101702"), [2]),
        (dict(AcquisitionDateTime="20230105101702-"), [2, 3]),
        (dict(AcquisitionDateTime="-20230105101702"), [1, 2]),
        (dict(AcquisitionDateTime="-202301051017"), []),  # up to 10:17:00.000000, the moment it writes
        (dict(AcquisitionDateTime="20230105111702+0100"), [2]),  # the same moment, an hour east
        (dict(AcquisitionDateTime="20230105101701.5-20230105101702.5"), [2]),
        (dict(ImageComments="comment ?"), [1, 2, 3]),
        (dict(ImageComments="*3"), [3]),
        (dict(Modality="CT"), [1, 2, 3]),
    ],
)
@pytest.mark.parametrize("model", [STUDY_ROOT, PATIENT_ROOT])
def test_image_level_matching(index, model, keys, expected):
    parent = dict(StudyInstanceUID=uid(1), SeriesInstanceUID=uid(1, 1))
    if model is PATIENT_ROOT:
        parent["PatientID"] = "P1"
    found = find(index, model, "IMAGE", **{"InstanceNumber": "", **parent, **keys})
    assert sorted(int(r.InstanceNumber) for r in found) == expected


def test_image_level_needs_every_unique_key_above(index):
    with pytest.raises(QueryError, match="SeriesInstanceUID"):
        find(index, STUDY_ROOT, "IMAGE", StudyInstanceUID=uid(1))
    with pytest.raises(QueryError, match="PatientID"):
        find(index, PATIENT_ROOT, "IMAGE", StudyInstanceUID=uid(1), SeriesInstanceUID=uid(1, 1))


def test_group_lengths_and_private_keys_take_no_part(index):
    ds = identifier("STUDY", raw=False, StudyInstanceUID=uid(1))
    ds.add_new(0x00080000, "UL", 42)
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "LO", "secret")
    plan = plan_find(ds, STUDY_ROOT)
    [found] = run_on_index(index, lambda db: find_page(db, plan)).responses
    assert set(found.keys()) == {0x00080052, 0x0020000D}


def test_in_memory_identifiers_work_like_received_ones(index):
    found = find(
        index, STUDY_ROOT, "STUDY", raw=False, StudyDate="20230101-20231231", PatientName="Doe*", StudyInstanceUID=""
    )
    assert studies(found) == [1, 2, 5]


# -- malformed identifiers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "level, keys, message",
    [
        (None, dict(PatientID="P1"), "missing Query/Retrieve Level"),
        ("FRAME", dict(), "unknown Query/Retrieve Level"),
        ("PATIENT", dict(), "not in the study-root model"),
        ("STUDY", dict(StudyDate="2023-01-05"), "StudyDate"),
        ("STUDY", dict(StudyTime="25"), "StudyTime"),
        ("STUDY", dict(StudyDate="yesterday"), "not a date"),
    ],
)
def test_unprocessable_identifiers(index, level, keys, message):
    ds = identifier(level or "STUDY", **keys)
    if level is None:
        del ds[0x00080052]
    with pytest.raises(QueryError, match=message):
        plan_find(ds, STUDY_ROOT)


def test_numeric_keys_must_be_numbers():
    ds = identifier("SERIES", StudyInstanceUID=uid(1), SeriesNumber="1")
    raw = ds.get_item(0x00200011)
    ds[0x00200011] = raw._replace(value=b"ab", length=2)
    with pytest.raises(QueryError, match="not a number"):
        plan_find(ds, STUDY_ROOT)


def test_model_of_sop_class():
    assert InformationModel.for_sop_class("1.2.840.10008.5.1.4.1.2.1.1") is PATIENT_ROOT
    assert InformationModel.for_sop_class("1.2.840.10008.5.1.4.1.2.2.3") is STUDY_ROOT
    with pytest.raises(QueryError):
        InformationModel.for_sop_class("1.2.840.10008.5.1.4.31")


# -- paging ---------------------------------------------------------------------------------------


def test_pages_walk_every_match_once(index):
    plan = plan_find(identifier("STUDY", StudyInstanceUID=""), STUDY_ROOT)

    def body(db):
        sizes, seen, cursor = [], [], 0
        while cursor is not None:
            page = find_page(db, plan, cursor=cursor, size=4)
            sizes.append(len(page.responses))
            seen.extend(r.StudyInstanceUID for r in page.responses)
            cursor = page.cursor
        return sizes, seen

    sizes, seen = run_on_index(index, body)
    assert sizes == [4, 2]
    assert sorted(seen) == sorted(uid(s) for s in STUDIES)


def test_pages_fill_up_past_rows_the_json_filter_drops(index):
    plan = plan_find(identifier("IMAGE", StudyInstanceUID=uid(1), SeriesInstanceUID=uid(1, 1), ImageComments="*3"), STUDY_ROOT)

    def body(db):
        return [len(page) for page in every_page(db, plan, page_size=1)]

    assert run_on_index(index, body) == [1]


def test_a_finished_cursor_gives_nothing(index):
    plan = plan_find(identifier("STUDY"), STUDY_ROOT)
    page = run_on_index(index, lambda db: find_page(db, plan, cursor=None))
    assert page.responses == [] and page.cursor is None


def test_stores_committed_between_pages_do_not_disturb_the_walk(writable_index):
    plan = plan_find(identifier("STUDY", StudyInstanceUID=""), STUDY_ROOT)
    late = instance_record(7, 1, 1, "P2", CTImageStorage, dict(StudyDate="20240301", Modality="CT"))

    def body(db):
        first = find_page(db, plan, size=3)
        seen = [r.StudyInstanceUID for r in first.responses]
        record_instances(db, [late], DuplicatePolicy.REJECT)
        cursor = first.cursor
        while cursor is not None:
            page = find_page(db, plan, cursor=cursor, size=3)
            seen += [r.StudyInstanceUID for r in page.responses]
            cursor = page.cursor
        return seen

    seen = run_on_index(writable_index, body)
    assert len(seen) == len(set(seen)) == 7 and uid(7) in seen


def test_availability_reflects_the_tier(writable_index):
    def body(db):
        db.execute("UPDATE instance SET tier = 's3', file_path = 's3://b/k' WHERE sop_instance_uid = ?", (uid(2, 1, 1),))
        plan = plan_find(identifier("STUDY", StudyInstanceUID="", InstanceAvailability=""), STUDY_ROOT)
        studies_found = [r for page in every_page(db, plan) for r in page]
        plan = plan_find(
            identifier("IMAGE", StudyInstanceUID=uid(2), SeriesInstanceUID=uid(2, 1), SOPInstanceUID="", InstanceAvailability=""),
            STUDY_ROOT,
        )
        images = [r for page in every_page(db, plan) for r in page]
        return studies_found, images

    studies_found, images = run_on_index(writable_index, body)
    assert {r.StudyInstanceUID: r.InstanceAvailability for r in studies_found}[uid(2)] == "NEARLINE"
    assert {r.StudyInstanceUID: r.InstanceAvailability for r in studies_found}[uid(1)] == "ONLINE"
    assert {r.SOPInstanceUID: r.InstanceAvailability for r in images} == {uid(2, 1, 1): "NEARLINE", uid(2, 1, 2): "ONLINE"}


# -- C-MOVE / C-GET -------------------------------------------------------------------------------


def retrieve(index, model, level, **keys):
    plan = plan_retrieve(identifier(level, **keys), model)
    return [item.sop_instance_uid for item in run_on_index(index, lambda db: retrieve_items(db, plan))]


def test_retrieve_a_study_in_series_and_instance_order(index):
    assert retrieve(index, STUDY_ROOT, "STUDY", StudyInstanceUID=uid(1)) == [
        uid(1, 1, 1), uid(1, 1, 2), uid(1, 1, 3), uid(1, 2, 1)
    ]
    assert len(retrieve(index, STUDY_ROOT, "STUDY", StudyInstanceUID=f"{uid(1)}\\{uid(3)}")) == 6


def test_retrieve_items_carry_what_a_sub_operation_needs(index):
    plan = plan_retrieve(identifier("IMAGE", StudyInstanceUID=uid(2), SeriesInstanceUID=uid(2, 1), SOPInstanceUID=uid(2, 1, 2)), STUDY_ROOT)
    [item] = run_on_index(index, lambda db: retrieve_items(db, plan))
    assert (item.sop_class_uid, item.file_path, item.transfer_syntax_uid, item.tier) == (
        MRImageStorage, "/store/2/1/2.dcm", ExplicitVRLittleEndian, "local"
    )


def test_retrieve_series_and_images(index):
    assert retrieve(index, STUDY_ROOT, "SERIES", StudyInstanceUID=uid(1), SeriesInstanceUID=uid(1, 2)) == [uid(1, 2, 1)]
    assert retrieve(index, STUDY_ROOT, "SERIES", SeriesInstanceUID=uid(1, 2)) == [uid(1, 2, 1)]  # UIDs are unique
    assert retrieve(index, STUDY_ROOT, "SERIES", StudyInstanceUID=uid(2), SeriesInstanceUID=uid(1, 2)) == []
    assert retrieve(
        index, PATIENT_ROOT, "IMAGE", PatientID="P1", StudyInstanceUID=uid(1), SeriesInstanceUID=uid(1, 1),
        SOPInstanceUID=f"{uid(1, 1, 3)}\\{uid(1, 1, 1)}",
    ) == [uid(1, 1, 1), uid(1, 1, 3)]


def test_retrieve_a_patient_by_id_and_issuer(index):
    assert len(retrieve(index, PATIENT_ROOT, "PATIENT", PatientID="P1")) == 7
    assert len(retrieve(index, PATIENT_ROOT, "PATIENT", PatientID="P1", IssuerOfPatientID="A")) == 6


@pytest.mark.parametrize(
    "model, level, keys",
    [
        (STUDY_ROOT, "STUDY", dict()),
        (STUDY_ROOT, "STUDY", dict(StudyInstanceUID="")),
        (STUDY_ROOT, "STUDY", dict(StudyInstanceUID=f"{ROOT}.*")),
        (STUDY_ROOT, "STUDY", dict(StudyInstanceUID="../../etc")),
        (STUDY_ROOT, "SERIES", dict(StudyInstanceUID=uid(1))),
        (PATIENT_ROOT, "PATIENT", dict(PatientID="P*")),
        (STUDY_ROOT, "PATIENT", dict(PatientID="P1")),
    ],
)
def test_retrieve_needs_unique_keys(index, model, level, keys):
    with pytest.raises(QueryError):
        plan_retrieve(identifier(level, **keys), model)
