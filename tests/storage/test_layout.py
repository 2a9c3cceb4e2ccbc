"""Where instances go on disk, and that no UID can steer a path out of the root."""

import datetime as dt
from pathlib import Path

import pytest

from triopacs.storage.errors import InvalidUID, UnsafePath
from triopacs.storage.layout import (
    Layout,
    confined,
    date_layout_path,
    instance_path,
    parse_study_date,
    uid_layout_path,
)

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.1.2"
SOP = "1.2.826.0.1.3680043.8.498.1.2.3"
TODAY = dt.date(2024, 2, 29)

HOSTILE_UIDS = [
    "",
    "..",
    ".",
    "../../etc/passwd",
    "1.2/../../x",
    "1.2\\..\\x",
    "/etc/passwd",
    "1.2.3\x00",
    "1..2",
    "1.2.",
    ".1.2",
    "01.2",
    "1.2.3 ",
    "1.2.3a",
    "1." + "2" * 70,
    None,
    12345,
]


def test_uid_layout_nests_study_series_instance(tmp_path):
    path = uid_layout_path(tmp_path, study_uid=STUDY, series_uid=SERIES, sop_instance_uid=SOP)
    assert path == tmp_path / STUDY / SERIES / f"{SOP}.dcm"


def test_date_layout_uses_the_study_date(tmp_path):
    path = date_layout_path(tmp_path, sop_instance_uid=SOP, study_date="20230105", today=TODAY)
    assert path == tmp_path / "2023" / "01" / "05" / f"{SOP}.dcm"


@pytest.mark.parametrize("study_date", [None, "", "2023", "20231399", "20230230", "abcdefgh", "2023-01-05"])
def test_date_layout_falls_back_to_today_without_a_real_study_date(tmp_path, study_date):
    path = date_layout_path(tmp_path, sop_instance_uid=SOP, study_date=study_date, today=TODAY)
    assert path == tmp_path / "2024" / "02" / "29" / f"{SOP}.dcm"


def test_old_style_study_date_is_understood():
    assert parse_study_date("2023.01.05") == dt.date(2023, 1, 5)


@pytest.mark.parametrize("layout", list(Layout))
def test_instance_path_dispatches_on_layout(tmp_path, layout):
    path = instance_path(
        tmp_path, layout, study_uid=STUDY, series_uid=SERIES, sop_instance_uid=SOP, study_date="20230105", today=TODAY
    )
    assert path.name == f"{SOP}.dcm"
    assert path.is_relative_to(tmp_path)
    assert (STUDY in path.parts) == (layout is Layout.UID)


@pytest.mark.parametrize("bad", HOSTILE_UIDS)
@pytest.mark.parametrize("attribute", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
@pytest.mark.parametrize("layout", list(Layout))
def test_every_malformed_uid_is_refused_before_it_becomes_a_path(tmp_path, bad, attribute, layout):
    uids = {"StudyInstanceUID": STUDY, "SeriesInstanceUID": SERIES, "SOPInstanceUID": SOP}
    uids[attribute] = bad
    with pytest.raises(InvalidUID) as caught:
        instance_path(
            tmp_path,
            layout,
            study_uid=uids["StudyInstanceUID"],
            series_uid=uids["SeriesInstanceUID"],
            sop_instance_uid=uids["SOPInstanceUID"],
            study_date="20230105",
            today=TODAY,
        )
    assert caught.value.attribute == attribute
    assert attribute in caught.value.comment
    assert len(caught.value.comment) <= 64
    assert list(tmp_path.iterdir()) == []  # nothing touched the disk


@pytest.mark.parametrize("relative", ["..", "../x", "a/../../x", ".", "a/.."])
def test_confined_refuses_anything_not_strictly_under_root(tmp_path, relative):
    with pytest.raises(UnsafePath):
        confined(tmp_path, Path(relative))


def test_confined_refuses_absolute_paths(tmp_path):
    with pytest.raises(UnsafePath):
        confined(tmp_path, Path("/etc/passwd"))


def test_confined_accepts_a_path_below_root(tmp_path):
    assert confined(tmp_path, Path("a/b/../c.dcm")) == tmp_path / "a" / "c.dcm"


def test_a_root_with_dotdot_still_confines_lexically(tmp_path):
    root = tmp_path / "x" / ".." / "store"
    path = uid_layout_path(root, study_uid=STUDY, series_uid=SERIES, sop_instance_uid=SOP)
    assert path == tmp_path / "store" / STUDY / SERIES / f"{SOP}.dcm"
