"""The MPPS state rules (storage/mpps.py) and their persistence (storage/mpps_db.py),
on plain dictionaries and a real SQLite file: no event loop, no network."""

import pytest

from triopacs.protocol.status import MPPS_MAY_NO_LONGER_BE_UPDATED, Status
from triopacs.storage import mpps_db
from triopacs.storage.index_db import open_index
from triopacs.storage.mpps import StepStatus, apply_set, check_creation
from triopacs.storage.sql import in_transaction


def _text(vr: str, value: str) -> dict:
    return {"vr": vr, "Value": [value]}


def creation(**override) -> dict:
    attributes = {
        "00400270": {"vr": "SQ", "Value": [{"0020000D": _text("UI", "1.2.3.4"), "00400009": _text("SH", "SPS1")}]},
        "00400253": _text("SH", "PPS1"),
        "00400241": _text("AE", "MODALITY"),
        "00400244": _text("DA", "20261203"),
        "00400245": _text("TM", "101500"),
        "00400252": _text("CS", "IN PROGRESS"),
        "00080060": _text("CS", "CT"),
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
    }
    for key, value in override.items():
        if value is None:
            attributes.pop(key)
        else:
            attributes[key] = value
    return attributes


def test_a_complete_creation_is_accepted():
    assert check_creation(creation()) is None


@pytest.mark.parametrize(
    "override, status, tag",
    [
        ({"00400253": None}, Status.MISSING_ATTRIBUTE, 0x00400253),
        ({"00080060": None}, Status.MISSING_ATTRIBUTE, 0x00080060),
        ({"00400244": {"vr": "DA"}}, Status.MISSING_ATTRIBUTE_VALUE, 0x00400244),
        ({"00400252": _text("CS", "COMPLETED")}, Status.INVALID_ATTRIBUTE_VALUE, 0x00400252),
        ({"00400252": _text("CS", "PAUSED")}, Status.INVALID_ATTRIBUTE_VALUE, 0x00400252),
        ({"00400270": {"vr": "SQ", "Value": [{}]}}, Status.MISSING_ATTRIBUTE_VALUE, 0x00400270),
    ],
)
def test_a_bad_creation_is_refused_with_the_attribute(override, status, tag):
    refusal = check_creation(creation(**override))
    assert refusal is not None and refusal.status == status and tag in refusal.tags


def test_in_progress_may_be_updated_and_stays_in_progress():
    update = apply_set(creation(), StepStatus.IN_PROGRESS, {"00400254": _text("LO", "Head CT")})
    assert update.status is StepStatus.IN_PROGRESS and update.transition is None
    assert update.attributes["00400254"] == _text("LO", "Head CT")


@pytest.mark.parametrize("final", [StepStatus.COMPLETED, StepStatus.DISCONTINUED])
def test_in_progress_reaches_a_final_status_with_its_end(final):
    changes = {"00400252": _text("CS", final.value), "00400250": _text("DA", "20261203"), "00400251": _text("TM", "103000")}
    update = apply_set(creation(), StepStatus.IN_PROGRESS, changes)
    assert update.status is final and update.transition is final


def test_a_final_status_needs_the_end_date_and_time():
    refusal = apply_set(creation(), StepStatus.IN_PROGRESS, {"00400252": _text("CS", "COMPLETED")})
    assert refusal.status == Status.MISSING_ATTRIBUTE_VALUE and set(refusal.tags) == {0x00400250, 0x00400251}


@pytest.mark.parametrize("final", [StepStatus.COMPLETED, StepStatus.DISCONTINUED])
def test_a_final_step_may_no_longer_be_updated(final):
    refusal = apply_set(creation(), final, {"00400254": _text("LO", "late")})
    assert refusal.status == Status.PROCESSING_FAILURE and refusal.error_id == MPPS_MAY_NO_LONGER_BE_UPDATED == 0xA710


def test_attributes_fixed_at_creation_are_refused_on_set():
    refusal = apply_set(creation(), StepStatus.IN_PROGRESS, {"00080060": _text("CS", "MR"), "00400254": _text("LO", "x")})
    assert refusal.status == Status.INVALID_ATTRIBUTE_VALUE and refusal.tags == (0x00080060,)


def test_an_unknown_status_is_refused():
    refusal = apply_set(creation(), StepStatus.IN_PROGRESS, {"00400252": _text("CS", "DONE")})
    assert refusal.status == Status.INVALID_ATTRIBUTE_VALUE and refusal.tags == (0x00400252,)


@pytest.fixture
def index(tmp_path):
    connection = open_index(str(tmp_path / "index.sqlite"))
    yield connection
    connection.close()


def _create(connection, uid, attributes):
    return in_transaction(
        connection, lambda c: mpps_db.create_step(c, uid, attributes, specific_character_set="", creator_ae_title="MOD", now=1.0)
    )


def _update(connection, uid, changes):
    return in_transaction(connection, lambda c: mpps_db.update_step(c, uid, changes, specific_character_set="", now=2.0))


def test_steps_persist_through_create_set_complete(index, tmp_path):
    _create(index, "1.2.9", creation())
    _update(index, "1.2.9", {"00400254": _text("LO", "Head CT")})
    done = _update(index, "1.2.9", {"00400252": _text("CS", "COMPLETED"), "00400250": _text("DA", "20261203"),
                                    "00400251": _text("TM", "103000")})
    assert done.status is StepStatus.COMPLETED
    reopened = open_index(str(tmp_path / "index.sqlite"))
    step = mpps_db.get_step(reopened, "1.2.9")
    reopened.close()
    assert step.status is StepStatus.COMPLETED and step.attributes["00400254"] == _text("LO", "Head CT")
    assert step.creator_ae_title == "MOD"


def test_a_refused_set_changes_nothing(index):
    _create(index, "1.2.9", creation())
    with pytest.raises(mpps_db.StepRefused) as refused:
        _update(index, "1.2.9", {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Other^Name"}]}})
    assert refused.value.refusal.status == Status.INVALID_ATTRIBUTE_VALUE
    assert mpps_db.get_step(index, "1.2.9").attributes["00100010"]["Value"][0]["Alphabetic"] == "Doe^Jane"


def test_a_second_creation_and_an_unknown_step_are_refused(index):
    _create(index, "1.2.9", creation())
    with pytest.raises(mpps_db.StepRefused) as duplicate:
        _create(index, "1.2.9", creation())
    assert duplicate.value.refusal.status == Status.DUPLICATE_SOP_INSTANCE
    with pytest.raises(mpps_db.StepRefused) as unknown:
        _update(index, "1.2.10", {"00400254": _text("LO", "x")})
    assert unknown.value.refusal.status == Status.NO_SUCH_SOP_INSTANCE
