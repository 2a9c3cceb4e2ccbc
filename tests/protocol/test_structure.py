"""The streaming dataset structure check: well-formed datasets pass at any chunking,
every kind of damage is found, and nothing but MalformedDataset ever comes out."""

import io
from pathlib import Path
import struct
import zlib

import pydicom
import pydicom.data
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

from triopacs.protocol.catalog import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
)
from triopacs.protocol.structure import DatasetTruncated, MalformedDataset, StructureChecker, check_dataset, checker_for
from triopacs.storage.errors import InvalidPart10File
from triopacs.storage.part10 import read_file_meta

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"

# pydicom's samples that are damaged on purpose (or by accident), and how.
DAMAGED_SAMPLES = {
    "MR_truncated.dcm": "ends inside",
    "rtplan_truncated.dcm": "ends inside",
    "nested_priv_SQ.dcm": "odd length",
}
TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def part10_samples() -> list[str]:
    """Every sample pydicom ships on disk that is a Part 10 file (no download needed)."""
    names = []
    for path in sorted(TEST_FILES.glob("*.dcm")):
        try:
            read_file_meta(io.BytesIO(path.read_bytes()))
        except InvalidPart10File:
            continue
        names.append(path.name)
    return names


WELL_FORMED_SAMPLES = [name for name in part10_samples() if name not in DAMAGED_SAMPLES]


def sample(name: str) -> tuple[bytes, str]:
    """A pydicom sample's dataset bytes (after the file meta) and transfer syntax."""
    raw = (TEST_FILES / name).read_bytes()
    meta, offset = read_file_meta(io.BytesIO(raw))
    return raw[offset:], meta.transfer_syntax_uid


def encode(ds: Dataset, *, implicit: bool = False, little: bool = True) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, little
    write_dataset(fp, ds)
    return fp.getvalue()


def check_in_chunks(data: bytes, transfer_syntax: str, size: int, **limits) -> StructureChecker:
    checker = checker_for(transfer_syntax, **limits)
    for start in range(0, len(data), size):
        checker.feed(memoryview(data)[start : start + size])
    checker.finish()
    return checker


def nested(depth: int) -> Dataset:
    """A dataset whose Referenced Series Sequence nests `depth` levels deep."""
    inner = Dataset()
    inner.SeriesInstanceUID = "1.2.3"
    for _ in range(depth):
        outer = Dataset()
        outer.ReferencedSeriesSequence = Sequence([inner])
        inner = outer
    return inner


def sequence_dataset() -> Dataset:
    ds = Dataset()
    ds.PatientName = "DOE^JOHN"
    ds.PatientID = "ID1"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator = "T-1", "SRT"
    item.ConceptNameCodeSequence = Sequence([Dataset()])
    ds.AnatomicRegionSequence = Sequence([item, Dataset()])
    ds.StudyDescription = "sequences"
    ds.PixelData = b"\x00\x01" * 16
    ds["PixelData"].VR = "OW"
    return ds


def undefined_length_parts() -> list[bytes]:
    """Explicit VR LE: an undefined-length sequence of an undefined-length item and a
    defined-length item, then encapsulated pixel data with two fragments."""
    def element(group, element, vr, value):
        if vr in (b"OB", b"SQ", b"UN"):
            return struct.pack("<HH2s2xL", group, element, vr, len(value)) + value
        return struct.pack("<HH2sH", group, element, vr, len(value)) + value

    item_a = element(0x0008, 0x0100, b"SH", b"T-1 ") + struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    item_b = element(0x0008, 0x0102, b"SH", b"SRT ")
    sequence = (
        struct.pack("<HH2s2xL", 0x0008, 0x2218, b"SQ", 0xFFFFFFFF)
        + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
        + item_a
        + struct.pack("<HHL", 0xFFFE, 0xE000, len(item_b))
        + item_b
        + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    )
    pixels = (
        struct.pack("<HH2s2xL", 0x7FE0, 0x0010, b"OB", 0xFFFFFFFF)
        + struct.pack("<HHL", 0xFFFE, 0xE000, 0)
        + struct.pack("<HHL", 0xFFFE, 0xE000, 4)
        + b"\xff\xd8\xff\xd9"
        + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    )
    return [element(0x0008, 0x0060, b"CS", b"CT"), sequence, pixels]


def undefined_length_bytes() -> bytes:
    return b"".join(undefined_length_parts())


def element_parts(ds: Dataset, **encoding) -> list[bytes]:
    """A dataset's top-level elements, each encoded on its own."""
    parts = []
    for element in ds:
        single = Dataset()
        single.add(element)
        parts.append(encode(single, **encoding))
    return parts


# ---------------------------------------------------------------- well-formed input


def chunkings() -> list[tuple[str, int]]:
    """Every sample whole, in 4 KiB and in 7-byte chunks; the small ones byte by byte too
    (a walk per byte in Python costs seconds on the large ones)."""
    cases = []
    for name in WELL_FORMED_SAMPLES:
        cases += [(name, 1 << 30), (name, 4096), (name, 7)]
        if (TEST_FILES / name).stat().st_size <= 16 * 1024:
            cases.append((name, 1))
    return cases


@pytest.mark.parametrize("name, chunk", chunkings())
def test_pydicom_samples_pass_at_any_chunking(name, chunk):
    data, transfer_syntax = sample(name)
    checker = check_in_chunks(data, transfer_syntax, chunk)
    if transfer_syntax != DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        assert checker.offset == len(data)


@pytest.mark.parametrize("name", sorted(DAMAGED_SAMPLES))
def test_damaged_pydicom_samples_are_found(name):
    data, transfer_syntax = sample(name)
    with pytest.raises(MalformedDataset, match=DAMAGED_SAMPLES[name]):
        check_in_chunks(data, transfer_syntax, 1 << 30)


@pytest.mark.parametrize(
    "transfer_syntax, implicit, little",
    [
        (EXPLICIT_VR_LITTLE_ENDIAN, False, True),
        (IMPLICIT_VR_LITTLE_ENDIAN, True, True),
        (EXPLICIT_VR_BIG_ENDIAN, False, False),
    ],
)
def test_sequences_in_every_uncompressed_syntax(transfer_syntax, implicit, little):
    data = encode(sequence_dataset(), implicit=implicit, little=little)
    for chunk in (1, 3, len(data)):
        assert check_in_chunks(data, transfer_syntax, chunk).offset == len(data)


def test_undefined_lengths_and_encapsulated_fragments():
    data = undefined_length_bytes()
    for chunk in range(1, 20):
        check_in_chunks(data, JPEG_BASELINE, chunk)


def test_implicit_vr_sent_as_explicit_is_read_as_implicit():
    """What pydicom's SC_rgb_jpeg.dcm is: implicit VR in a JPEG file. Readers detect it
    from the first element; the checker does the same, and says so."""
    data, transfer_syntax = sample("SC_rgb_jpeg.dcm")
    assert transfer_syntax == JPEG_BASELINE
    assert check_in_chunks(data, transfer_syntax, 5).found_implicit
    assert not check_in_chunks(*sample("CT_small.dcm"), 5).found_implicit


def test_deflated_dataset_is_inflated_on_the_way():
    plain = encode(sequence_dataset())
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    deflated = compressor.compress(plain) + compressor.flush()
    assert check_in_chunks(deflated, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, 3).offset == len(plain)
    with pytest.raises(DatasetTruncated, match="ends before its deflate stream does"):
        check_in_chunks(deflated[: len(deflated) // 2], DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, 3)


def test_a_deflate_bomb_is_stopped_at_the_inflation_limit():
    ds = Dataset()
    ds.PixelData = bytes(8 * 1024 * 1024)
    ds["PixelData"].VR = "OB"
    compressor = zlib.compressobj(9, wbits=-zlib.MAX_WBITS)
    bomb = compressor.compress(encode(ds)) + compressor.flush()
    assert len(bomb) < 16 * 1024
    with pytest.raises(MalformedDataset, match="inflates past 1048576 bytes"):
        check_in_chunks(bomb, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, 1 << 20, max_inflated=1 << 20)
    check_in_chunks(bomb, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, 1 << 20, max_inflated=16 << 20)


# ---------------------------------------------------------------- damage


@pytest.mark.parametrize(
    "transfer_syntax, parts",
    [
        (EXPLICIT_VR_LITTLE_ENDIAN, element_parts(sequence_dataset())),
        (IMPLICIT_VR_LITTLE_ENDIAN, element_parts(sequence_dataset(), implicit=True)),
        (EXPLICIT_VR_BIG_ENDIAN, element_parts(sequence_dataset(), little=False)),
        (JPEG_BASELINE, undefined_length_parts()),
    ],
)
def test_every_truncation_is_found(transfer_syntax, parts):
    """Cut at every byte: inside headers, values, items, delimiters - all refused. Only a
    cut between two top-level elements leaves a well-formed (shorter) dataset."""
    data = b"".join(parts)
    boundaries = {sum(len(part) for part in parts[:count]) for count in range(len(parts) + 1)}
    for cut in range(len(data)):
        if cut in boundaries:
            check_in_chunks(data[:cut], transfer_syntax, 5)
            continue
        for chunk in (5, 1 << 20):
            with pytest.raises(MalformedDataset):
                check_in_chunks(data[:cut], transfer_syntax, chunk)


def test_a_length_claiming_more_than_follows():
    data = encode(sequence_dataset())
    # The last element is the pixel data (OW, 4-byte length after 2 reserved bytes).
    head = data[: -32 - 4]
    lying = head + struct.pack("<L", 0xFFFFFFF0) + data[-32:]
    with pytest.raises(MalformedDataset, match="ends inside .7FE0,0010."):
        check_dataset(lying, EXPLICIT_VR_LITTLE_ENDIAN)


@pytest.mark.parametrize(
    "data, problem",
    [
        (struct.pack("<HH2sH", 0x0010, 0x0010, b"PN", 2) + b"AB" + struct.pack("<HH2sH", 0x0010, 0x0020, b"zz", 0), "no valid VR"),
        (struct.pack("<HH2s2xL", 0x0010, 0x1010, b"UT", 0xFFFFFFFF), "undefined length"),
        (struct.pack("<HHL", 0xFFFE, 0xE00D, 0), "unexpected"),
        (
            struct.pack("<HH2s2xL", 0x0008, 0x1115, b"SQ", 8)
            + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0),
            "sequence delimiter inside a sequence of defined length",
        ),
        (
            struct.pack("<HH2s2xL", 0x0008, 0x1115, b"SQ", 8) + struct.pack("<HHL", 0x0008, 0x0100, 0),
            "expected an item",
        ),
        (
            # An item of 8 bytes holding an element of 10.
            struct.pack("<HH2s2xL", 0x0008, 0x1115, b"SQ", 16)
            + struct.pack("<HHL", 0xFFFE, 0xE000, 8)
            + struct.pack("<HH2sH", 0x0008, 0x0100, b"SH", 2)
            + b"AB",
            "past the end of its item",
        ),
        (
            struct.pack("<HH2s2xL", 0x7FE0, 0x0010, b"OB", 0xFFFFFFFF) + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF),
            "fragment of encapsulated pixel data has an undefined length",
        ),
    ],
)
def test_malformed_structures(data, problem):
    with pytest.raises(MalformedDataset, match=problem):
        check_dataset(data, EXPLICIT_VR_LITTLE_ENDIAN)


@pytest.mark.parametrize("implicit", [False, True])
def test_nesting_limit(implicit):
    transfer_syntax = IMPLICIT_VR_LITTLE_ENDIAN if implicit else EXPLICIT_VR_LITTLE_ENDIAN
    check_dataset(encode(nested(8), implicit=implicit), transfer_syntax, max_depth=8)
    with pytest.raises(MalformedDataset, match="nested deeper than 8 levels"):
        check_dataset(encode(nested(9), implicit=implicit), transfer_syntax, max_depth=8)


def test_nesting_far_past_the_limit_costs_no_recursion():
    """100,000 levels of undefined-length sequences and items: refused at the limit,
    without recursion (pydicom itself cannot even write this)."""
    opening = struct.pack("<HH2s2xL", 0x0008, 0x1115, b"SQ", 0xFFFFFFFF) + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
    with pytest.raises(MalformedDataset, match="nested deeper than 64"):
        check_dataset(opening * 100_000, EXPLICIT_VR_LITTLE_ENDIAN)


def test_the_default_limit_is_one_pydicom_can_read():
    """A dataset at the default nesting limit parses with pydicom (which recurses)."""
    data = encode(nested(64))
    check_dataset(data, EXPLICIT_VR_LITTLE_ENDIAN)
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    depth, item = 0, ds
    while "ReferencedSeriesSequence" in item:
        item, depth = item.ReferencedSeriesSequence[0], depth + 1
    assert depth == 64


# ---------------------------------------------------------------- anything at all


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=300), chunk=st.integers(1, 64), syntax=st.sampled_from(
    [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN]
))
def test_random_bytes_pass_or_raise_malformed_only(data, chunk, syntax):
    try:
        check_in_chunks(data, syntax, chunk)
    except MalformedDataset:
        pass


@settings(max_examples=300, deadline=None)
@given(position=st.integers(0, 10_000), value=st.integers(0, 255), chunk=st.integers(1, 4096))
def test_mutated_samples_pass_or_raise_malformed_only(position, value, chunk):
    data, transfer_syntax = sample("CT_small.dcm")
    mutated = bytearray(data[:12_000])
    mutated[position] = value
    try:
        check_in_chunks(bytes(mutated), transfer_syntax, chunk)
    except MalformedDataset:
        pass
