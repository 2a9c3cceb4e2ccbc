"""The structure check of a Part 10 file before it is sent: pydicom's samples pass but for
the three that are broken on purpose or by accident, and any file cut short fails."""

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from triopacs.storage.errors import InvalidPart10File
from triopacs.storage.part10 import locate_dataset
from triopacs.storage.part10_check import Truncated, check_dataset_structure

SAMPLES = Path(get_testdata_file("CT_small.dcm")).parent
BROKEN = {
    "MR_truncated.dcm": "(7FE0,0010) is 8192 bytes long, 8130 are left",
    "rtplan_truncated.dcm": "(300A,00B0) is 976 bytes long, 711 are left",
    # JPEG baseline in its meta, implicit VR in its dataset: no peer could read it.
    "SC_rgb_jpeg.dcm": "(0008,0008) at byte 356 has no valid VR ('\\x18\\x00'): the dataset is not encoded as its transfer syntax says",
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


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm", "MR_small_RLE.dcm", "rtplan.dcm", "liver_1frame.dcm"])
def test_every_cut_of_a_file_fails(tmp_path, name):
    whole = Path(get_testdata_file(name)).read_bytes()
    stored = locate_dataset(get_testdata_file(name))
    # image_dfl.dcm's deflate stream ends 8 bytes before the file: bytes nobody reads.
    end_of_data = len(whole) - (8 if name == "image_dfl.dcm" else 0)
    cut = tmp_path / name
    step = max(1, (end_of_data - stored.offset) // 97)
    for end in [*range(stored.offset + 1, end_of_data, step), end_of_data - 2]:
        cut.write_bytes(whole[:end])
        with pytest.raises(Truncated):
            check_dataset_structure(locate_dataset(cut))
    cut.write_bytes(whole[:end_of_data])
    check_dataset_structure(locate_dataset(cut))
