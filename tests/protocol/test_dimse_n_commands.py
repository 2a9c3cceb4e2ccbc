"""DIMSE-N command sets: layout by hand, round trips, and what a peer gets wrong.

A request that lacks a UID or type ID PS3.7 requires, or carries a data set where none
belongs (or none where one must), is decoded rather than refused, so the association
answers it with a status; anything else malformed is a RemoteProtocolError.
"""

import struct

import pytest

from triopacs.protocol import commands as c
from triopacs.protocol import elements as el
from triopacs.protocol.errors import LocalProtocolError, RemoteProtocolError

MPPS = "1.2.840.10008.3.1.2.3.3"
COMMITMENT = "1.2.840.10008.1.20.1"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
STEP = "1.2.826.0.1.3680043.9.1"


def _element(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def _us(tag: int, value: int) -> bytes:
    return _element(tag, struct.pack("<H", value))


def _uid(tag: int, uid: str) -> bytes:
    raw = uid.encode()
    return _element(tag, raw + b"\x00" * (len(raw) % 2))


def _command(*elements: bytes) -> bytes:
    body = b"".join(sorted(elements, key=lambda e: struct.unpack("<HH", e[:4])[::-1]))
    return _element(0, struct.pack("<L", len(body))) + body


def test_n_action_rq_layout_by_hand():
    """PS3.7 10.3.4: Requested SOP Class, Command Field 0x0130, Message ID, data set
    present, Requested SOP Instance, Action Type ID - in tag order."""
    expected = _command(
        _uid(el.REQUESTED_SOP_CLASS_UID, COMMITMENT),
        _us(el.COMMAND_FIELD, 0x0130),
        _us(el.MESSAGE_ID, 7),
        _us(el.COMMAND_DATA_SET_TYPE, 0x0001),
        _uid(el.REQUESTED_SOP_INSTANCE_UID, COMMITMENT_INSTANCE),
        _us(el.ACTION_TYPE_ID, 1),
    )
    ours = c.NActionRQ(
        message_id=7,
        requested_sop_class_uid=COMMITMENT,
        requested_sop_instance_uid=COMMITMENT_INSTANCE,
        action_type_id=1,
        has_dataset=True,
    )
    assert ours.encode() == expected
    assert c.decode(expected) == ours


N_MESSAGES = [
    c.NCreateRQ(message_id=1, affected_sop_class_uid=MPPS, affected_sop_instance_uid=STEP, has_dataset=True),
    c.NCreateRQ(message_id=2, affected_sop_class_uid=MPPS, has_dataset=True),  # the SCP picks the UID
    c.NCreateRSP(message_id_being_responded_to=1, status=0, affected_sop_class_uid=MPPS, affected_sop_instance_uid=STEP),
    c.NSetRQ(message_id=3, requested_sop_class_uid=MPPS, requested_sop_instance_uid=STEP),
    c.NSetRSP(message_id_being_responded_to=3, status=0x0110, error_id=0xA710, error_comment="final"),
    c.NGetRQ(message_id=4, requested_sop_class_uid=MPPS, requested_sop_instance_uid=STEP,
             attribute_identifier_list=(0x00400252, 0x00400255)),
    c.NGetRSP(message_id_being_responded_to=4, status=0, has_dataset=True),
    c.NActionRSP(message_id_being_responded_to=7, status=0, action_type_id=1,
                 affected_sop_class_uid=COMMITMENT, affected_sop_instance_uid=COMMITMENT_INSTANCE),
    c.NEventReportRQ(message_id=8, affected_sop_class_uid=COMMITMENT, affected_sop_instance_uid=COMMITMENT_INSTANCE,
                     event_type_id=2, has_dataset=True),
    c.NEventReportRSP(message_id_being_responded_to=8, status=0, event_type_id=2),
    c.NDeleteRQ(message_id=9, requested_sop_class_uid=MPPS, requested_sop_instance_uid=STEP),
    c.NDeleteRSP(message_id_being_responded_to=9, status=0x0112),
]


@pytest.mark.parametrize("message", N_MESSAGES, ids=lambda m: type(m).__name__)
def test_n_messages_round_trip(message):
    assert c.decode(message.encode()) == message
    assert c.missing_required(message) == ()
    assert c.dataset_out_of_place(message) is None


def test_n_set_carries_its_modification_list_and_n_get_n_delete_none():
    assert c.NSetRQ(message_id=1, requested_sop_class_uid=MPPS, requested_sop_instance_uid=STEP).has_dataset
    assert not c.NGetRQ(message_id=1, requested_sop_class_uid=MPPS, requested_sop_instance_uid=STEP).has_dataset
    assert not c.NDeleteRQ(message_id=1, requested_sop_class_uid=MPPS, requested_sop_instance_uid=STEP).has_dataset


def _without(message: c.DimseMessage, tag: int) -> bytes:
    """The message's command set with one element left out (group length recomputed)."""
    elements, _ = el.split_elements(message.encode())
    kept = [_element(t, raw) for t, raw in elements.items() if t not in (tag, el.COMMAND_GROUP_LENGTH)]
    return _command(*kept)


@pytest.mark.parametrize(
    "message, tag, field",
    [
        (N_MESSAGES[0], el.AFFECTED_SOP_CLASS_UID, "affected_sop_class_uid"),
        (N_MESSAGES[3], el.REQUESTED_SOP_INSTANCE_UID, "requested_sop_instance_uid"),
        (N_MESSAGES[3], el.REQUESTED_SOP_CLASS_UID, "requested_sop_class_uid"),
        (N_MESSAGES[5], el.REQUESTED_SOP_INSTANCE_UID, "requested_sop_instance_uid"),
        (N_MESSAGES[8], el.EVENT_TYPE_ID, "event_type_id"),
        (N_MESSAGES[8], el.AFFECTED_SOP_INSTANCE_UID, "affected_sop_instance_uid"),
        (N_MESSAGES[10], el.REQUESTED_SOP_CLASS_UID, "requested_sop_class_uid"),
    ],
)
def test_a_request_lacking_a_uid_or_type_decodes_and_names_it(message, tag, field):
    decoded = c.decode(_without(message, tag))
    assert type(decoded) is type(message)
    assert getattr(decoded, field) is None
    assert c.missing_required(decoded) == (field,)


def test_an_n_action_without_action_type_decodes_and_names_it():
    action = c.NActionRQ(message_id=7, requested_sop_class_uid=COMMITMENT,
                         requested_sop_instance_uid=COMMITMENT_INSTANCE, action_type_id=1, has_dataset=True)
    decoded = c.decode(_without(action, el.ACTION_TYPE_ID))
    assert c.missing_required(decoded) == ("action_type_id",)


def test_an_n_create_without_instance_uid_is_fine():
    decoded = c.decode(_without(N_MESSAGES[0], el.AFFECTED_SOP_INSTANCE_UID))
    assert decoded.affected_sop_instance_uid is None and c.missing_required(decoded) == ()


def test_building_a_request_without_its_uid_is_a_local_error():
    with pytest.raises(LocalProtocolError, match=r"\(0000,1001\)"):
        c.NSetRQ(message_id=1, requested_sop_class_uid=MPPS, requested_sop_instance_uid=None)
    with pytest.raises(LocalProtocolError, match=r"\(0000,1008\)"):
        c.NActionRQ(message_id=1, requested_sop_class_uid=COMMITMENT,
                    requested_sop_instance_uid=COMMITMENT_INSTANCE, action_type_id=None)


def _data_set_type(message: c.DimseMessage, value: int) -> bytes:
    encoded = message.encode()
    old = _us(el.COMMAND_DATA_SET_TYPE, 0x0001 if message.has_dataset else 0x0101)
    assert old in encoded
    return encoded.replace(old, _us(el.COMMAND_DATA_SET_TYPE, value))


def test_a_data_set_where_none_belongs_decodes_and_says_so():
    n_get = c.decode(_data_set_type(N_MESSAGES[5], 0x0001))
    n_delete = c.decode(_data_set_type(N_MESSAGES[10], 0x0001))
    n_set = c.decode(_data_set_type(N_MESSAGES[3], 0x0101))
    assert "NGetRQ carries no data set" == c.dataset_out_of_place(n_get)
    assert "NDeleteRQ carries no data set" == c.dataset_out_of_place(n_delete)
    assert "NSetRQ needs a data set" == c.dataset_out_of_place(n_set)


@pytest.mark.parametrize("message", N_MESSAGES, ids=lambda m: type(m).__name__)
def test_truncated_n_command_sets_are_remote_errors(message):
    encoded = message.encode()
    for end in range(len(encoded)):
        try:
            decoded = c.decode(encoded[:end])
        except RemoteProtocolError:
            continue
        # A cut exactly between elements, past the group length check: not possible,
        # since the group length then disagrees.
        pytest.fail(f"{end} bytes decoded as {decoded!r}")


@pytest.mark.parametrize(
    "bad, text",
    [
        (_us(el.ACTION_TYPE_ID, 1)[:-1] + b"", "runs past the end"),
        (_element(el.ACTION_TYPE_ID, b"\x01\x00\x00\x00"), "(0000,1008)"),  # US of 4 bytes
        (_element(el.ACTION_TYPE_ID, b"\x01"), "(0000,1008)"),  # US of 1 byte
    ],
)
def test_bad_type_ids_are_remote_errors(bad, text):
    action = c.NActionRQ(message_id=7, requested_sop_class_uid=COMMITMENT,
                         requested_sop_instance_uid=COMMITMENT_INSTANCE, action_type_id=1, has_dataset=True)
    body = _without(action, el.ACTION_TYPE_ID)[12:]  # drop the group length element
    data = _element(0, struct.pack("<L", len(body) + len(bad))) + body + bad
    with pytest.raises(RemoteProtocolError) as info:
        c.decode(data)
    assert text in str(info.value)


def test_an_unknown_n_command_field_is_a_remote_error():
    data = N_MESSAGES[3].encode().replace(_us(el.COMMAND_FIELD, 0x0120), _us(el.COMMAND_FIELD, 0x0160))
    with pytest.raises(RemoteProtocolError, match="0x0160 is no DIMSE message"):
        c.decode(data)
