"""Status codes: Annex C classes for every 16-bit value, service-specific meanings."""

import pytest

from triopacs.protocol.status import (
    QueryRetrieveStatus,
    Service,
    Status,
    StatusClass,
    StorageStatus,
    describe,
    is_final,
    status_class,
)


@pytest.mark.parametrize(
    "code, expected",
    [
        (0x0000, StatusClass.SUCCESS),
        (0x0001, StatusClass.WARNING),
        (0x0107, StatusClass.WARNING),
        (0x0116, StatusClass.WARNING),
        (0xB000, StatusClass.WARNING),
        (0xB006, StatusClass.WARNING),
        (0xBFFF, StatusClass.WARNING),
        (0x0105, StatusClass.FAILURE),
        (0x0122, StatusClass.FAILURE),
        (0x0213, StatusClass.FAILURE),
        (0xA700, StatusClass.FAILURE),
        (0xA7FF, StatusClass.FAILURE),
        (0xA801, StatusClass.FAILURE),
        (0xA9AB, StatusClass.FAILURE),
        (0xC000, StatusClass.FAILURE),
        (0xCFFF, StatusClass.FAILURE),
        (0xC123, StatusClass.FAILURE),
        (0xFE00, StatusClass.CANCEL),
        (0xFF00, StatusClass.PENDING),
        (0xFF01, StatusClass.PENDING),
    ],
)
def test_annex_c_classes(code, expected):
    assert status_class(code) is expected


def test_every_16_bit_code_has_a_class_and_a_meaning():
    for code in range(0x10000):
        assert isinstance(status_class(code), StatusClass)
    for service in Service:
        for code in (0x0000, 0x0002, 0x7FFF, 0xA7A7, 0xD000, 0xFE01, 0xFFFF):
            assert describe(code, service).meaning


def test_codes_outside_the_table_are_failures_not_successes():
    assert status_class(0x0002) is StatusClass.FAILURE
    assert status_class(0xD000) is StatusClass.FAILURE
    assert "Unknown failure" in describe(0xD000).meaning


@pytest.mark.parametrize("code", [-1, 0x10000])
def test_out_of_range_codes_are_rejected(code):
    with pytest.raises(ValueError):
        status_class(code)


def test_enum_members_carry_their_annex_c_class():
    assert status_class(Status.ATTRIBUTE_LIST_ERROR) is StatusClass.WARNING
    assert status_class(Status.SOP_CLASS_NOT_SUPPORTED) is StatusClass.FAILURE
    assert status_class(StorageStatus.COERCION_OF_DATA_ELEMENTS) is StatusClass.WARNING
    assert status_class(StorageStatus.ELEMENTS_DISCARDED) is StatusClass.WARNING
    assert status_class(StorageStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING) is StatusClass.WARNING
    assert status_class(QueryRetrieveStatus.MOVE_DESTINATION_UNKNOWN) is StatusClass.FAILURE
    assert status_class(QueryRetrieveStatus.PENDING_OPTIONAL_KEYS_UNSUPPORTED) is StatusClass.PENDING
    assert status_class(QueryRetrieveStatus.SUB_OPERATIONS_WITH_FAILURES) is StatusClass.WARNING


def test_the_same_code_means_different_things_per_service():
    assert "coercion" in describe(0xB000, Service.STORAGE).meaning
    assert "sub-operations complete" in describe(0xB000, Service.MOVE).meaning
    assert "sub-operations complete" in describe(0xB000, Service.GET).meaning
    assert describe(0xB000).meaning.startswith("Unknown warning")
    assert "move destination unknown" in describe(0xA801, Service.MOVE).meaning
    assert "Unknown" in describe(0xA801, Service.GET).meaning


def test_storage_ranges():
    assert describe(0xA7FE, Service.STORAGE).meaning == "Refused: out of resources"
    assert describe(0xA905, Service.STORAGE).meaning == "Error: data set does not match SOP Class"
    assert describe(0xC211, Service.STORAGE).meaning == "Error: cannot understand"
    assert describe(0xC211, Service.FIND).meaning == "Failed: unable to process"
    assert describe(0xC211, Service.MOVE).status_class is StatusClass.FAILURE


def test_general_codes_apply_to_every_service():
    assert describe(0x0122, Service.STORAGE).meaning == "Refused: SOP Class not supported"
    assert describe(0x0211).meaning == "Unrecognized operation"
    assert describe(0xFF00, Service.FIND).meaning.startswith("Pending")


def test_is_final():
    assert not is_final(0xFF00) and not is_final(0xFF01)
    assert is_final(0x0000) and is_final(0xFE00) and is_final(0xB000) and is_final(0xC000)
