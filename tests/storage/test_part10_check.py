"""The structure check of a Part 10 file before it is sent: pydicom's samples pass but for
the three that are broken on purpose or by accident, a file cut inside an element fails,
and a large value is stepped over, not read."""

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from triopacs.storage.errors import InvalidPart10File
from triopacs.storage.part10 import locate_dataset
from triopacs.storage.part10_check import Truncated, check_dataset_structure

SAMPLES = Path(get_testdata_file("CT_small.dcm")).parent
BROKEN = {
    "MR_truncated.dcm": "the dataset ends inside (7FE0,0010) (at byte 9296): 62 of its 8192 bytes are missing",
    "rtplan_truncated.dcm": "the dataset ends inside (300A,012C) (at byte 1829): 21 of its 50 bytes are missing",
    # Could not be sent in P-DATA, whose fragments are even.
    "nested_priv_SQ.dcm": "the dataset has an odd length (115 bytes)",
}


def part10_samples():
    for path in sorted(SAMPLES.glob("*.dcm")):
        try:
            yield path, locate_dataset(path)
        except InvalidPart10File:
            continue  # no file meta: not what this check is for


def test_pydicom_samples_pass_but_the_broken_ones():
    problems = {}
    for path, stored in part10_samples():
        try:
            check_dataset_structure(stored)
        except InvalidPart10File as error:
            problems[path.name] = str(error)
    assert problems == BROKEN
    assert len(list(part10_samples())) > 60


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm", "MR_small_RLE.dcm", "rtdose.dcm", "liver_1frame.dcm"])
def test_every_cut_of_a_file_fails(tmp_path, name):
    whole = Path(get_testdata_file(name)).read_bytes()
    stored = locate_dataset(get_testdata_file(name))
    # image_dfl.dcm's deflate stream ends 8 bytes before the file: bytes nobody reads.
    end_of_data = len(whole) - (8 if name == "image_dfl.dcm" else 0)
    cut = tmp_path / name
    # Cuts inside the last element (a cut between two elements leaves a whole, shorter dataset).
    for end in range(end_of_data - 60, end_of_data):
        cut.write_bytes(whole[:end])
        with pytest.raises(Truncated):
            check_dataset_structure(locate_dataset(cut))
    cut.write_bytes(whole[:end_of_data])
    check_dataset_structure(locate_dataset(cut))


def test_a_large_value_is_skipped_not_read(tmp_path, monkeypatch):
    """A 64 MiB pixel data element costs a seek: the file is read for its headers only."""
    import pydicom

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelData = bytes(64 * 1024 * 1024)
    ds.Rows, ds.Columns = 4096, 8192
    path = tmp_path / "large.dcm"
    ds.save_as(path)
    read = []
    real_open = open

    def counting_open(*args, **kwargs):
        file = real_open(*args, **kwargs)
        real_read = file.read
        file.read = lambda size=-1: read.append(size) or real_read(size)
        return file

    monkeypatch.setattr("builtins.open", counting_open)
    check_dataset_structure(locate_dataset(path))
    assert sum(read) < 1024 * 1024
