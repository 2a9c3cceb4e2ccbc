"""Index attributes read from stored Part 10 files: values, level JSON, charsets, refusals."""

import hashlib
import json
import math

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, MRImageStorage

from triopacs.storage.attributes import InstanceRecord, extract_record
from triopacs.storage.dicom_json import character_set_of, dataset_json, python_encodings
from triopacs.storage.errors import (
    STATUS_CANNOT_UNDERSTAND,
    STATUS_DATASET_DOES_NOT_MATCH_SOP_CLASS,
    InvalidDataset,
)
from triopacs.storage.levels import Level, stored_level

# Several tests build deliberately invalid values; pydicom warns about each as it writes.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom.*")

STUDY = "1.2.826.0.1.3680043.8.498.10"
SERIES = "1.2.826.0.1.3680043.8.498.10.1"
SOP = "1.2.826.0.1.3680043.8.498.10.1.1"


def make_dataset(**attributes):
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = SOP
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = SERIES
    ds.PatientID = "PID-1"
    ds.PatientName = "Doe^John"
    ds.StudyDate = "20240105"
    ds.StudyTime = "101500"
    ds.Modality = "CT"
    ds.SeriesNumber = "3"
    ds.InstanceNumber = "12"
    for keyword, value in attributes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def write(ds, path, transfer_syntax=ExplicitVRLittleEndian):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", CTImageStorage)
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", SOP)
    meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path


def extract(path, **kwargs):
    data = path.read_bytes() if hasattr(path, "read_bytes") else open(path, "rb").read()
    return extract_record(path, file_size=len(data), sha256=hashlib.sha256(data).hexdigest(), **kwargs)


def levels_of(record: InstanceRecord):
    return {
        Level.PATIENT: json.loads(record.patient_json),
        Level.STUDY: json.loads(record.study_json),
        Level.SERIES: json.loads(record.series_json),
        Level.IMAGE: json.loads(record.instance_json),
    }


def test_ct_sample_gives_the_keys_of_every_level():
    path = get_testdata_file("CT_small.dcm")
    record = extract(path)
    ds = pydicom.dcmread(path)
    assert record.patient_id == ds.PatientID
    assert record.patient_name == str(ds.PatientName)
    assert record.patient_birth_date == ds.PatientBirthDate
    assert record.patient_sex == ds.PatientSex
    assert record.study_instance_uid == ds.StudyInstanceUID
    assert record.study_date == ds.StudyDate
    assert record.study_time == ds.StudyTime
    assert record.accession_number == ds.AccessionNumber
    assert record.study_id == ds.StudyID
    assert record.series_instance_uid == ds.SeriesInstanceUID
    assert record.modality == "CT"
    assert record.series_number == int(ds.SeriesNumber)
    assert record.sop_instance_uid == ds.SOPInstanceUID
    assert record.sop_class_uid == ds.SOPClassUID
    assert record.instance_number == int(ds.InstanceNumber)
    assert record.specific_character_set == "ISO_IR 100"
    assert record.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    assert record.file_path == path
    assert record.file_size == len(open(path, "rb").read())


def test_level_text_kept_from_the_last_image_follows_every_change(tmp_path):
    # The patient, study and series JSON of one image is reused for the next when the
    # attributes are the same; each change at a level must still show in its text.
    first = extract(write(make_dataset(), tmp_path / "1.dcm"))
    same = extract(write(make_dataset(SOPInstanceUID=SOP + ".2", InstanceNumber="13"), tmp_path / "2.dcm"))
    assert (same.patient_json, same.study_json, same.series_json) == (
        first.patient_json, first.study_json, first.series_json,
    )
    changed = extract(write(
        make_dataset(SOPInstanceUID=SOP + ".3", PatientName="Roe^Jane", StudyTime="101501", SeriesNumber="4"),
        tmp_path / "3.dcm",
    ))
    levels = levels_of(changed)
    assert levels[Level.PATIENT]["00100010"]["Value"] == [{"Alphabetic": "Roe^Jane"}]
    assert levels[Level.STUDY]["00080030"]["Value"] == ["101501"]
    assert levels[Level.SERIES]["00200011"]["Value"] == [4]
    back = extract(write(make_dataset(SOPInstanceUID=SOP + ".4"), tmp_path / "4.dcm"))
    assert (back.patient_json, back.study_json, back.series_json) == (
        first.patient_json, first.study_json, first.series_json,
    )


def test_each_attribute_lands_on_its_level_and_bulk_private_meta_do_not():
    record = extract(get_testdata_file("CT_small.dcm"))
    levels = levels_of(record)
    assert "00100010" in levels[Level.PATIENT]  # PatientName
    assert "00101010" in levels[Level.STUDY]  # PatientAge: Patient Study module
    assert "00080020" in levels[Level.STUDY]  # StudyDate
    assert "00080060" in levels[Level.SERIES]  # Modality
    assert "00080070" in levels[Level.SERIES]  # Manufacturer: equipment kept with the series
    assert "00080008" in levels[Level.IMAGE]  # ImageType
    for level, attributes in levels.items():
        for tag_hex in attributes:
            tag = int(tag_hex, 16)
            assert stored_level(tag) is level
            assert not (tag >> 16) & 1, "private attributes are not indexed"
            assert tag >> 16 != 0x0002 and tag != 0x00080005
            assert tag != 0x7FE00010
    assert "00101002" in levels[Level.PATIENT]  # a sequence: OtherPatientIDsSequence
    assert len(levels[Level.PATIENT]["00101002"]["Value"]) == 2


@pytest.mark.parametrize(
    "charset, name, description",
    [
        ("ISO_IR 100", "Müller^Jürgen", "Épaule gauche"),
        ("ISO_IR 192", "山田^太郎", "Ελληνικά καὶ русский"),
        ("ISO_IR 144", "Иванов^Иван", "Исследование"),
        (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう", "Study"),
        ("GB18030", "王^小东", "乗 in GB18030 ends with byte 0x5C"),
    ],
)
def test_non_ascii_values_are_decoded_with_their_character_set(tmp_path, charset, name, description):
    ds = make_dataset(SpecificCharacterSet=charset, PatientName=name, StudyDescription=description)
    record = extract(write(ds, tmp_path / "x.dcm"))
    assert record.patient_name == name
    assert record.study_description == description
    stored = charset if isinstance(charset, str) else "\\".join(charset)
    assert record.specific_character_set == stored
    patient = json.loads(record.patient_json)
    groups = name.split("=")
    expected = {"Alphabetic": groups[0]}
    if len(groups) > 1:
        expected.update(Ideographic=groups[1], Phonetic=groups[2])
    assert patient["00100010"] == {"vr": "PN", "Value": [expected]}


def test_implicit_vr_files_get_their_vr_from_the_dictionary(tmp_path):
    ds = make_dataset(SOPClassUID=MRImageStorage, ImageType=["ORIGINAL", "PRIMARY"], SliceThickness="1.25")
    record = extract(write(ds, tmp_path / "x.dcm", ImplicitVRLittleEndian))
    instance = json.loads(record.instance_json)
    assert instance["00080008"] == {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY"]}
    assert instance["00180050"] == {"vr": "DS", "Value": [1.25]}
    assert record.transfer_syntax_uid == ImplicitVRLittleEndian


def test_malformed_optional_values_are_dropped_not_fatal(tmp_path):
    ds = make_dataset(InstanceNumber="12", SliceThickness="1.5")
    path = write(ds, tmp_path / "x.dcm")
    # Patch the bytes: pydicom refuses to build such values, but peers do send them.
    data = path.read_bytes()
    data = data.replace(b"IS\x02\x0012", b"IS\x06\x00twelve").replace(b"DS\x04\x001.5 ", b"DS\x06\x00thick ")
    path.write_bytes(data)
    record = extract(path)
    assert record.instance_number is None
    assert "00180050" not in json.loads(record.instance_json)
    assert "00200013" not in json.loads(record.instance_json)


@pytest.mark.parametrize(
    "changes, status, words",
    [
        ({"SOPInstanceUID": None}, STATUS_DATASET_DOES_NOT_MATCH_SOP_CLASS, "missing SOP Instance UID"),
        ({"SOPClassUID": None}, STATUS_DATASET_DOES_NOT_MATCH_SOP_CLASS, "missing SOP Class UID"),
        ({"StudyInstanceUID": None}, STATUS_DATASET_DOES_NOT_MATCH_SOP_CLASS, "missing Study Instance UID"),
        ({"SeriesInstanceUID": None}, STATUS_DATASET_DOES_NOT_MATCH_SOP_CLASS, "missing Series Instance UID"),
        ({"StudyInstanceUID": "1.2.abc"}, STATUS_DATASET_DOES_NOT_MATCH_SOP_CLASS, "invalid Study Instance UID"),
        ({"SeriesInstanceUID": "../../etc"}, STATUS_DATASET_DOES_NOT_MATCH_SOP_CLASS, "invalid Series Instance UID"),
        ({"SOPInstanceUID": "1." + "9" * 80}, STATUS_DATASET_DOES_NOT_MATCH_SOP_CLASS, "invalid SOP Instance UID"),
    ],
)
def test_datasets_without_usable_uids_are_refused(tmp_path, changes, status, words):
    path = write(make_dataset(), tmp_path / "x.dcm")
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)
    with pytest.raises(InvalidDataset) as caught:
        extract(path, expected_sop_class_uid=None if "SOPClassUID" in changes else CTImageStorage,
                expected_sop_instance_uid=SOP if "SOPInstanceUID" not in changes else None)
    assert caught.value.status == status
    assert words in caught.value.reason
    assert len(caught.value.comment) <= 64 and "\\" not in caught.value.comment


def test_sop_class_must_be_the_one_the_command_named(tmp_path):
    path = write(make_dataset(), tmp_path / "x.dcm")
    with pytest.raises(InvalidDataset) as caught:
        extract(path, expected_sop_class_uid=MRImageStorage)
    assert caught.value.status == STATUS_DATASET_DOES_NOT_MATCH_SOP_CLASS
    assert len(caught.value.comment) <= 64


def test_sop_instance_must_be_the_one_the_command_named(tmp_path):
    path = write(make_dataset(), tmp_path / "x.dcm")
    with pytest.raises(InvalidDataset):
        extract(path, expected_sop_instance_uid="1.2.3")


def test_file_meta_stands_in_for_the_command_when_not_given():
    # rtdose.dcm's meta names another SOP instance than its dataset: a mismatch we catch.
    with pytest.raises(InvalidDataset, match="SOP Instance UID"):
        extract(get_testdata_file("rtdose.dcm"))


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff"])
def test_unparseable_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.dcm"
    path.write_bytes(content)
    with pytest.raises(InvalidDataset) as caught:
        extract(path)
    assert caught.value.status in (STATUS_CANNOT_UNDERSTAND, STATUS_DATASET_DOES_NOT_MATCH_SOP_CLASS)


# -- the lean JSON agrees with pydicom's own -----------------------------------------------------

EQUIVALENCE_SAMPLES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",
    "rtplan.dcm",
    "test-SR.dcm",
    "reportsi.dcm",
    "waveform_ecg.dcm",
    "examples_overlay.dcm",
]


def _comparable(attr):
    """One JSON attribute reduced to what both encoders must agree on: values stripped,
    empty strings as null, numbers as floats, no binary, no private or charset tags."""
    if attr is None or "InlineBinary" in attr or "BulkDataURI" in attr:
        return None
    values = attr.get("Value") or []
    if attr["vr"] == "SQ":
        items = [_comparable_dataset(item) for item in values]
        return ("SQ", items)
    out = []
    for value in values:
        if isinstance(value, str):
            value = value.strip(" \x00") or None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        out.append(value)
    if all(v is None for v in out):
        out = []
    return (attr["vr"], out)


def _comparable_dataset(attributes):
    result = {}
    for tag_hex, attr in attributes.items():
        tag = int(tag_hex, 16)
        if (tag >> 16) & 1 or tag == 0x00080005:
            continue
        value = _comparable(attr)
        if value is not None:
            result[tag_hex] = value
    return result


@pytest.mark.parametrize("name", EQUIVALENCE_SAMPLES)
def test_lean_json_matches_pydicom_to_json_dict(name):
    path = get_testdata_file(name)
    ours_ds = pydicom.dcmread(path, stop_before_pixels=True)
    ours = _comparable_dataset(dataset_json(ours_ds, python_encodings(character_set_of(ours_ds))))
    reference = _comparable_dataset(pydicom.dcmread(path, stop_before_pixels=True).to_json_dict())
    for tag_hex, value in ours.items():
        assert value == reference[tag_hex], tag_hex
    missing = set(reference) - set(ours)
    # Only binary attributes (pydicom inlines small ones) may be missing from ours.
    for tag_hex in missing:
        assert reference[tag_hex][0] in ("OB", "OW", "OF", "OD", "OL", "UN", "US or SS", "SQ"), tag_hex


def test_huge_sequences_are_not_indexed():
    # Per-frame functional groups and the like are bulk in all but name.
    ds = make_dataset()
    item = Dataset()
    item.CodeValue = "X" * 1000
    ds.ReferencedImageSequence = [item] * 100
    attributes = dataset_json(ds, python_encodings(""))
    assert "00081140" not in attributes
    ds.ReferencedImageSequence = [item]
    assert "00081140" in dataset_json(ds, python_encodings(""))


def test_non_finite_floats_are_dropped():
    ds = make_dataset()
    ds.add_new(0x00189087, "FD", math.nan)  # DiffusionBValue
    assert "00189087" not in dataset_json(ds, python_encodings(""))
