"""The lean header walker gives what pydicom gives, and hands over to pydicom when unsure."""

import hashlib
import os
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from triopacs.storage import attributes
from triopacs.storage.attributes import extract_record, record_from_dataset
from triopacs.storage.dicom_json import character_set_of_elements, elements_json, python_encodings
from triopacs.storage.dicom_walk import Truncated, WalkError, walk_dataset
from triopacs.storage.errors import InvalidDataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ROOT = "1.2.826.0.1.3680043.8.498.55"


def sample_files():
    # The files bundled with pydicom (get_testdata_files would also try to download more).
    bundled = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(str(path) for path in bundled.glob("*.dcm"))


def readable_by_pydicom(path):
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:
        return None


def indexable(path) -> bool:
    ds = readable_by_pydicom(path)
    return ds is not None and "SOPInstanceUID" in ds and "file_meta" in dir(ds)


INDEXABLE = [path for path in sample_files() if indexable(path)]
NOT_INDEXABLE = [path for path in sample_files() if not indexable(path)]


@pytest.mark.parametrize("path", NOT_INDEXABLE, ids=os.path.basename)
def test_samples_without_file_meta_or_sop_instance_are_refused(path):
    with pytest.raises(InvalidDataset):
        extract_record(path, file_size=0, sha256="")


@pytest.mark.parametrize("path", INDEXABLE, ids=os.path.basename)
def test_walker_and_pydicom_paths_give_the_same_record(path):
    ds = readable_by_pydicom(path)
    fast = attributes._read_header(path)
    if fast is None:
        return  # big endian, deflated or malformed: pydicom's path is the only path
    meta, elements = fast
    charset = character_set_of_elements(elements)
    assert charset == attributes.character_set_of(ds)
    walked = elements_json(elements, python_encodings(charset))
    reference = attributes.dataset_json(ds, python_encodings(charset))
    assert walked == reference
    assert meta.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID


def write(ds, path, syntax=ExplicitVRLittleEndian):
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    return dict(file_size=len(data), sha256=hashlib.sha256(data).hexdigest())


def base_dataset():
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = f"{ROOT}.1.1.1"
    ds.StudyInstanceUID = f"{ROOT}.1"
    ds.SeriesInstanceUID = f"{ROOT}.1.1"
    ds.PatientID = "W1"
    ds.PatientName = "Walker^Test"
    return ds


def nested_codes():
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator = "IN", "99"
    outer = Dataset()
    outer.CodeValue, outer.CodingSchemeDesignator = "OUT", "99"
    outer.ConceptNameCodeSequence = [inner]
    return [outer, outer]


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("undefined_lengths", [False, True])
def test_nested_sequences_of_either_length_and_private_data(tmp_path, syntax, undefined_lengths):
    ds = base_dataset()
    ds.ProcedureCodeSequence = nested_codes()
    ds.add_new(0x00091010, "LO", "Vendor")
    ds.add_new(0x00090010, "LO", "ACME")
    block = Dataset()
    block.add_new(0x00091001, "LO", "private in private")
    ds.add_new(0x00091011, "SQ", [block])
    if undefined_lengths:
        ds.ProcedureCodeSequence.is_undefined_length = True
        for item in ds.ProcedureCodeSequence:
            item.is_undefined_length_sequence_item = True
            item.ConceptNameCodeSequence.is_undefined_length = True
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.PixelRepresentation = 2, 2, 16, 1
    ds.SmallestImagePixelValue = -5  # "US or SS": signed because PixelRepresentation is 1
    ds.PixelData = b"\x00" * 8
    facts = write(ds, tmp_path / "x.dcm", syntax)
    fast = attributes._read_header(tmp_path / "x.dcm")
    assert fast is not None
    walked = elements_json(fast[1], python_encodings(""))
    assert walked["00081032"]["Value"][0]["00080100"] == {"vr": "SH", "Value": ["OUT"]}
    assert walked["00081032"]["Value"][1]["0040A043"]["Value"][0]["00080100"] == {"vr": "SH", "Value": ["IN"]}
    assert walked["00280106"] == {"vr": "SS", "Value": [-5]}
    assert not any(int(tag, 16) >> 16 & 1 for tag in walked)
    record = extract_record(tmp_path / "x.dcm", **facts)
    reference = record_from_dataset(
        pydicom.dcmread(tmp_path / "x.dcm", stop_before_pixels=True),
        transfer_syntax_uid=syntax, file_path=os.fspath(tmp_path / "x.dcm"), **facts,
    )
    assert record == reference


def test_encapsulated_icon_is_stepped_over(tmp_path):
    ds = base_dataset()
    icon = Dataset()
    icon.Rows = icon.Columns = 1
    icon.PixelData = encapsulate([b"\xff\xd8fake-jpeg\xff\xd9"])
    icon["PixelData"].VR = "OB"
    icon["PixelData"].is_undefined_length = True
    ds.IconImageSequence = [icon]
    ds.ImageComments = "after the icon"
    facts = write(ds, tmp_path / "x.dcm", JPEGBaseline8Bit)
    assert attributes._read_header(tmp_path / "x.dcm") is not None
    record = extract_record(tmp_path / "x.dcm", **facts)
    assert '"after the icon"' in record.instance_json


def test_headers_longer_than_the_first_read_are_read_further(tmp_path):
    ds = base_dataset()
    ds.add_new(0x60003000, "OW", b"\x00" * (200 * 1024))  # overlay data before the pixels
    ds.ImageComments = "beyond the overlay"  # (0020,4000) sorts before group 6000...
    ds.add_new(0x60000010, "US", 16)
    ds.add_new(0x70050010, "LO", "private after")  # ...so something after the overlay too
    ds.add_new(0x7FD00010, "LO", "z")  # unknown public tag: dropped quietly
    facts = write(ds, tmp_path / "x.dcm")
    assert attributes._read_header(tmp_path / "x.dcm") is not None
    record = extract_record(tmp_path / "x.dcm", **facts)
    assert "60000010" in record.instance_json and "beyond the overlay" in record.instance_json


def test_truncated_buffers_say_so():
    with open(get_testdata_file("CT_small.dcm"), "rb") as file:
        meta, offset = attributes.read_file_meta(file)
        file.seek(offset)
        data = file.read()
    assert walk_dataset(data, 0, implicit=False, complete=True)
    with pytest.raises(Truncated):
        walk_dataset(data[:1000], 0, implicit=False, complete=False)
    with pytest.raises(Truncated):
        walk_dataset(data[:1001], 0, implicit=False, complete=True)


def test_garbage_makes_the_walker_give_up_not_guess():
    with pytest.raises(WalkError):
        walk_dataset(b"\x08\x00\x10\x00\x01\x02\x04\x00abcd", 0, implicit=False, complete=True)


def test_a_file_only_pydicom_can_read_still_gets_indexed(tmp_path):
    # Implicit VR bytes under an explicit VR transfer syntax: the walker gives up, pydicom copes.
    path = get_testdata_file("SC_rgb_jpeg.dcm")
    assert attributes._read_header(path) is None
    data = open(path, "rb").read()
    record = extract_record(path, file_size=len(data), sha256="x")
    assert record.sop_instance_uid == pydicom.dcmread(path).SOPInstanceUID


def test_a_truncated_file_is_refused(tmp_path):
    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:700])
    with pytest.raises(InvalidDataset):
        extract_record(path, file_size=700, sha256="x")


def test_remembered_values_depend_on_the_character_set_and_pixel_sign():
    name = "Müller^Jörg".encode("utf-8")
    utf8 = elements_json([(0x00100010, "PN", name)], python_encodings("ISO_IR 192"))
    latin1 = elements_json([(0x00100010, "PN", name)], python_encodings("ISO_IR 100"))
    assert utf8["00100010"]["Value"] == [{"Alphabetic": "Müller^Jörg"}]
    assert latin1["00100010"]["Value"] == [{"Alphabetic": "MÃ¼ller^JÃ¶rg"}]
    # Smallest Image Pixel Value (US or SS) reads by Pixel Representation.
    value = b"\xff\xff"
    unsigned = elements_json([(0x00280106, "US or SS", value)], [])
    signed = elements_json([(0x00280103, "US", b"\x01\x00"), (0x00280106, "US or SS", value)], [])
    assert unsigned["00280106"]["Value"] == [65535] and signed["00280106"]["Value"] == [-1]


def test_remembered_values_stay_within_their_documented_size():
    # Every value below is new (a stream of new images' UIDs and descriptions): the memo
    # of converted values must stop at its bound (4.1 MB with the largest values it keeps).
    import tracemalloc

    from triopacs.storage.dicom_json import MEMO_ENTRIES, MEMO_VALUE_SIZE, forget_remembered_values

    latin1 = python_encodings("ISO_IR 100")
    forget_remembered_values()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for n in range(3 * MEMO_ENTRIES):
            text = f"{n:08d}".encode().ljust(MEMO_VALUE_SIZE, b"x")
            converted = elements_json([(0x0008103E, "LO", text[:64]), (0x00204000, "LT", text)], latin1)
        held = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
        forget_remembered_values()
    assert converted["00204000"]["Value"] == [text.decode()]
    assert 1e6 < held < 4.5e6  # it does remember, within its bound
