"""Flat datasets written directly are byte for byte what pydicom writes; anything that is
not flat is left to pydicom."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

from triopacs.protocol.datasets import encode_dataset
from triopacs.protocol.flat_datasets import encode_flat

IMPLICIT, EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"

ASCII = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="\\"), max_size=20)
LATIN = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\\\x7f"), max_size=20)
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\\"), max_size=20)


def strings(alphabet, vm=3):
    return st.one_of(alphabet, st.lists(alphabet, min_size=0, max_size=vm))


def ints(low, high):
    return st.one_of(st.integers(low, high), st.lists(st.integers(low, high), max_size=3))


# (keyword, values it may take) for every flat VR
ELEMENTS: dict = {
    "RetrieveAETitle": strings(st.text(alphabet="ABCXYZ_ 0123", max_size=16)),  # AE
    "PatientAge": st.sampled_from(["", "045Y", "003M"]),  # AS
    "ModalitiesInStudy": strings(st.sampled_from(["CT", "MR", "US", "SR"])),  # CS
    "StudyDate": st.sampled_from(["", "20240102", "20240101-20241231"]),  # DA
    "PatientWeight": st.one_of(st.just(""), st.sampled_from(["70.5", "1e3", "80"])),  # DS
    "AcquisitionDateTime": st.sampled_from(["", "20240102101010.123456"]),  # DT
    "NumberOfStudyRelatedInstances": st.one_of(st.just(""), st.integers(0, 10**6)),  # IS
    "StudyDescription": None,  # LO: per character set
    "AdditionalPatientHistory": None,  # LT
    "PatientName": None,  # PN
    "AccessionNumber": None,  # SH
    "InstitutionAddress": None,  # ST
    "StudyTime": st.sampled_from(["", "101010", "101010.5"]),  # TM
    "StudyInstanceUID": st.sampled_from(["", "1.2.3", "1.2.840.10008.5.1.4.1.1.2"]),  # UI (odd and even)
    "RetrieveURL": st.sampled_from(["", "http://node/wado"]),  # UR
    "TextValue": None,  # UT
    "Rows": ints(0, 65535),  # US
    "ReferencePixelX0": ints(-(2**31), 2**31 - 1),  # SL
    "SimpleFrameList": ints(0, 2**32 - 1),  # UL
    "TagAngleSecondAxis": ints(-32768, 32767),  # SS
}
CHARSET_TEXT = {None: ASCII, "ISO_IR 100": LATIN, "ISO_IR 192": ANY_TEXT}


@st.composite
def flat_datasets(draw):
    charset = draw(st.sampled_from(list(CHARSET_TEXT)))
    text = CHARSET_TEXT[charset]
    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    for keyword in draw(st.lists(st.sampled_from(list(ELEMENTS)), unique=True, max_size=len(ELEMENTS))):
        values = ELEMENTS[keyword]
        values = strings(text) if values is None else values
        setattr(ds, keyword, draw(values))
    return ds


def pydicom_bytes(ds: Dataset, implicit: bool) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = implicit
    buffer.is_little_endian = True
    write_dataset(buffer, ds)
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore::UserWarning:pydicom.*")  # over-long values are fine here
@settings(max_examples=400, deadline=None)
@given(ds=flat_datasets(), implicit=st.booleans())
def test_a_flat_dataset_is_written_as_pydicom_writes_it(ds, implicit):
    flat = encode_flat(ds, implicit=implicit)
    assert flat is not None, ds
    assert flat == pydicom_bytes(ds, implicit)
    assert encode_dataset(ds, IMPLICIT if implicit else EXPLICIT) == flat


def test_a_c_find_response_takes_the_direct_way():
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = "Müller^Jürgen=ミュラー^ユルゲン"
    ds.PatientID = "P1"
    ds.StudyInstanceUID = "1.2.3"
    ds.NumberOfStudyRelatedInstances = 12
    ds.ModalitiesInStudy = ["CT", "MR"]
    for implicit in (True, False):
        assert encode_flat(ds, implicit=implicit) == pydicom_bytes(ds, implicit)


def _with(keyword: str, value) -> Dataset:
    ds = Dataset()
    ds.PatientID = "P1"
    setattr(ds, keyword, value)
    return ds


def _two_charsets() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou=山田^太郎"
    return ds


def _latin_without_charset() -> Dataset:
    return _with("PatientName", "Müller")  # no character set: not ours to guess


def _sequence() -> Dataset:
    item = Dataset()
    item.CodeValue = "1"
    return _with("ProcedureCodeSequence", Sequence([item]))


NOT_FLAT = {
    "a sequence": _sequence,
    "binary data": lambda: _with("EncapsulatedDocument", b"%PDF"),
    "an attribute tag": lambda: _with("FrameIncrementPointer", 0x00181063),
    "ISO 2022 code extensions": _two_charsets,
    "non-ASCII text without a character set": _latin_without_charset,
    "a value list too long for a 2-byte length": lambda: _with("StudyDescription", "x" * 70000),
}


@pytest.mark.filterwarnings("ignore::UserWarning:pydicom.*")  # pydicom's own LO -> UN change
@pytest.mark.parametrize("make", NOT_FLAT.values(), ids=NOT_FLAT.keys())
def test_what_is_not_flat_is_left_to_pydicom(make):
    ds = make()
    assert encode_flat(ds, implicit=False) is None
    assert encode_dataset(ds, EXPLICIT) == pydicom_bytes(ds, implicit=False)


def test_long_text_vrs_get_their_four_byte_length_in_explicit_vr():
    ds = _with("TextValue", "x" * 70001)
    data = encode_flat(ds, implicit=False)
    assert data is not None and data == pydicom_bytes(ds, implicit=False)
    tag_and_vr = struct.pack("<HH2s2x", 0x0040, 0xA160, b"UT")
    assert tag_and_vr + struct.pack("<I", 70002) in data


def test_a_decoded_identifier_is_written_back_as_pydicom_writes_it():
    from triopacs.protocol.datasets import decode_dataset

    ds = _with("PatientName", "DOE^J")
    ds.StudyInstanceUID = "1.2.3"
    ds.NumberOfStudyRelatedInstances = "7"
    for syntax, implicit in ((IMPLICIT, True), (EXPLICIT, False)):
        decoded = decode_dataset(encode_dataset(ds, syntax), syntax)
        assert encode_dataset(decoded, syntax) == pydicom_bytes(decoded, implicit) == pydicom_bytes(ds, implicit)
