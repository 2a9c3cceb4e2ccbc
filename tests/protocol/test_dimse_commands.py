"""Command sets: byte fixtures, round trips for every message class, malformed input."""

import struct

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triopacs.protocol import commands as c
from triopacs.protocol.uid import is_valid_uid
from triopacs.protocol import elements as el
from triopacs.protocol.errors import LocalProtocolError, RemoteProtocolError

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
CT_SMALL_INSTANCE = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"

# What DCMTK 3.6.7's tools put on the wire (captured from echoscu, storescu -xi with
# pydicom's CT_small.dcm, findscu -S and movescu -S -aem DEST, each with message ID 1).
DCMTK_C_ECHO_RQ = bytes.fromhex(
    "0000000004000000380000000000020012000000312e322e3834302e31303030382e312e3100"
    "000000010200000030000000100102000000010000000008020000000101"
)
DCMTK_C_STORE_RQ = bytes.fromhex(
    "000000000400000082000000000002001a000000312e322e3834302e31303030382e352e312e342e31"
    "2e312e3200000000010200000001000000100102000000010000000007020000000000000000080200"
    "000001000000001030000000312e332e362e312e342e312e353936322e312e312e312e312e312e3230"
    "3034303131393037323733302e313233323200"
)
DCMTK_C_FIND_RQ = bytes.fromhex(
    "00000000040000004c000000000002001c000000312e322e3834302e31303030382e352e312e342e31"
    "2e322e322e310000000001020000002000000010010200000001000000000702000000000000000008"
    "020000000100"
)
DCMTK_C_MOVE_RQ = bytes.fromhex(
    "000000000400000058000000000002001c000000312e322e3834302e31303030382e352e312e342e31"
    "2e322e322e32000000000102000000210000001001020000000100000000060400000044455354000000"
    "0702000000000000000008020000000100"
)


def test_dcmtk_c_echo_rq_matches_ours_byte_for_byte():
    ours = c.CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION)
    assert ours.encode() == DCMTK_C_ECHO_RQ
    assert c.decode(DCMTK_C_ECHO_RQ) == ours


def test_dcmtk_c_store_rq_matches_ours_byte_for_byte():
    ours = c.CStoreRQ(
        message_id=1,
        affected_sop_class_uid=CT_IMAGE_STORAGE,
        affected_sop_instance_uid=CT_SMALL_INSTANCE,
        priority=c.Priority.MEDIUM,
    )
    assert ours.encode() == DCMTK_C_STORE_RQ
    assert c.decode(DCMTK_C_STORE_RQ) == ours
    assert ours.has_dataset


def test_dcmtk_c_find_and_c_move_rq_match_ours():
    find = c.CFindRQ(message_id=1, affected_sop_class_uid=STUDY_ROOT_FIND)
    move = c.CMoveRQ(message_id=1, affected_sop_class_uid=STUDY_ROOT_MOVE, move_destination="DEST")
    assert find.encode() == DCMTK_C_FIND_RQ
    assert move.encode() == DCMTK_C_MOVE_RQ
    assert c.decode(DCMTK_C_FIND_RQ) == find
    assert c.decode(DCMTK_C_MOVE_RQ) == move


def test_c_echo_rsp_layout_by_hand():
    """PS3.7 9.3.5.2, laid out element by element: tag (LE), 4-byte length (LE), value."""
    expected = b"".join(
        [
            struct.pack("<HHLL", 0x0000, 0x0000, 4, 18 + 10 + 10 + 10 + 10),  # group length
            struct.pack("<HHL", 0x0000, 0x0002, 18) + b"1.2.840.10008.1.1\x00",  # UI, NUL pad
            struct.pack("<HHLH", 0x0000, 0x0100, 2, 0x8030),  # Command Field
            struct.pack("<HHLH", 0x0000, 0x0120, 2, 7),  # Message ID Being Responded To
            struct.pack("<HHLH", 0x0000, 0x0800, 2, 0x0101),  # no data set
            struct.pack("<HHLH", 0x0000, 0x0900, 2, 0x0000),  # Status
        ]
    )
    # the group length counts the header bytes of the elements after it, too
    expected = struct.pack("<HHLL", 0, 0, 4, len(expected) - 12) + expected[12:]
    rsp = c.CEchoRSP(message_id_being_responded_to=7, status=0, affected_sop_class_uid=VERIFICATION)
    assert rsp.encode() == expected


def test_text_and_at_padding_by_hand():
    rsp = c.CStoreRSP(
        message_id_being_responded_to=1,
        status=0xC000,
        offending_element=(0x00100020,),
        error_comment="odd",  # 3 characters: padded with one space
    )
    encoded = rsp.encode()
    assert struct.pack("<HHL", 0, 0x0901, 4) + struct.pack("<HH", 0x0010, 0x0020) in encoded
    assert struct.pack("<HHL", 0, 0x0902, 4) + b"odd " in encoded
    assert c.decode(encoded).error_comment == "odd"


# --- every message class round-trips ---------------------------------------------------

_PRINTABLE = "".join(chr(i) for i in range(0x20, 0x7F) if chr(i) != "\\")


def _text(max_size: int):
    return st.text(_PRINTABLE, min_size=1, max_size=max_size).map(str.strip).filter(bool)


_BY_VR = {
    el.VR.UI: st.from_regex(r"[0-9.]{1,64}", fullmatch=True),
    el.VR.US: st.integers(0, 0xFFFF),
    el.VR.AE: _text(16),
    el.VR.LO: _text(64),
    el.VR.AT: st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=6).map(tuple),
}


def message_strategy(cls):
    kwargs = {}
    for field in attrs.fields(cls):
        if field.name == "has_dataset":
            kwargs[field.name] = st.booleans()
            continue
        tag, vr, required = field.metadata[c._SPEC]
        value = st.sampled_from(c.Priority) if tag == el.PRIORITY else _BY_VR[vr]
        kwargs[field.name] = value if required else st.none() | value
    return st.builds(cls, **kwargs)


ALL_MESSAGES = st.sampled_from(sorted(c.MESSAGE_TYPES.values(), key=lambda t: t.__name__)).flatmap(
    message_strategy
)


def test_every_dimse_message_is_registered():
    names = {cls.__name__ for cls in c.MESSAGE_TYPES.values()}
    services = ["CEcho", "CStore", "CFind", "CGet", "CMove"]
    services += ["NEventReport", "NGet", "NSet", "NAction", "NCreate", "NDelete"]
    assert names == {s + kind for s in services for kind in ("RQ", "RSP")} | {"CCancelRQ"}
    for cls in c.MESSAGE_TYPES.values():
        if cls.__name__.endswith("RQ") and cls is not c.CCancelRQ:
            assert cls.response_type.__name__ == cls.__name__[:-2] + "RSP"


@pytest.mark.parametrize("cls", sorted(c.MESSAGE_TYPES.values(), key=lambda t: t.__name__))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(cls, data):
    message = data.draw(message_strategy(cls))
    encoded = message.encode()
    assert len(encoded) % 2 == 0
    decoded = c.decode(encoded)
    assert decoded == message
    assert type(decoded) is cls
    assert decoded.encode() == encoded
    assert c.decode(memoryview(bytearray(encoded))) == message  # any bytes-like input


def test_dataset_flag_follows_the_rules():
    assert c.CStoreRQ.has_dataset and c.CFindRQ.has_dataset
    assert not c.CEchoRQ.has_dataset and not c.CStoreRSP.has_dataset
    # N-requests the receiver answers rather than aborts: decoded either way, the rule kept
    assert c.NSetRQ.dataset_expected is c.DatasetRule.REQUIRED and c.NDeleteRQ.dataset_expected is c.DatasetRule.FORBIDDEN
    assert c.NSetRQ(message_id=1, requested_sop_class_uid="1.2", requested_sop_instance_uid="1.3").has_dataset
    assert not c.NDeleteRQ(message_id=1, requested_sop_class_uid="1.2", requested_sop_instance_uid="1.3").has_dataset
    assert c.CFindRSP(message_id_being_responded_to=1, status=0xFF00, has_dataset=True).has_dataset
    assert not c.CFindRSP(message_id_being_responded_to=1, status=0).has_dataset


# --- local misuse ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, tag",
    [
        (lambda: c.CEchoRQ(message_id=-1, affected_sop_class_uid=VERIFICATION), "(0000,0110)"),
        (lambda: c.CEchoRQ(message_id=1, affected_sop_class_uid="1.2" * 30), "(0000,0002)"),
        (lambda: c.CEchoRQ(message_id=1, affected_sop_class_uid="1.2.x"), "(0000,0002)"),
        (lambda: c.CEchoRQ(message_id=1, affected_sop_class_uid=""), "(0000,0002)"),
        (lambda: c.CEchoRQ(message_id=1, affected_sop_class_uid=None), "(0000,0002)"),
        (
            lambda: c.CMoveRQ(message_id=1, affected_sop_class_uid="1.2", move_destination="X" * 17),
            "(0000,0600)",
        ),
        (
            lambda: c.CStoreRQ(
                message_id=1, affected_sop_class_uid="1.2", affected_sop_instance_uid="1.3", priority=3
            ),
            "(0000,0700)",
        ),
        (
            lambda: c.NGetRQ(
                message_id=1,
                requested_sop_class_uid="1.2",
                requested_sop_instance_uid="1.3",
                attribute_identifier_list=(),
            ),
            "(0000,1005)",
        ),
    ],
)
def test_bad_values_are_local_errors_naming_the_tag(make, tag):
    with pytest.raises(LocalProtocolError, match=tag.replace("(", r"\(").replace(")", r"\)")):
        make()


@pytest.mark.parametrize(
    "comment, sent",
    [
        ("é", "?"),
        ("UID 1.2\x00\x1b\n3 refused", "UID 1.2???3 refused"),
        ("a\\b", "a?b"),
        ("x" * 100, "x" * 64),
        ("  ", None),
    ],
)
def test_error_comments_are_made_to_fit_lo(comment, sent):
    """Whatever a failure says becomes a valid Error Comment, so answering never fails."""
    rsp = c.CStoreRSP(message_id_being_responded_to=1, status=0xA900, error_comment=comment)
    assert rsp.error_comment == sent
    assert c.decode(rsp.encode()).error_comment == sent


def test_text_fields_are_stripped_of_padding_spaces():
    rq = c.CMoveRQ(message_id=1, affected_sop_class_uid="1.2", move_destination=" DEST ")
    assert rq.move_destination == "DEST"


# --- malformed input from the peer -----------------------------------------------------


def _element(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def _us(tag: int, value: int) -> bytes:
    return _element(tag, struct.pack("<H", value))


def _command(*elements: bytes, group_length: bool = True) -> bytes:
    body = b"".join(elements)
    return (_element(0, struct.pack("<L", len(body))) if group_length else b"") + body


def _echo_elements(**override: bytes) -> list[bytes]:
    parts = {
        el.AFFECTED_SOP_CLASS_UID: _element(el.AFFECTED_SOP_CLASS_UID, b"1.2.840.10008.1.1\x00"),
        el.COMMAND_FIELD: _us(el.COMMAND_FIELD, 0x0030),
        el.MESSAGE_ID: _us(el.MESSAGE_ID, 5),
        el.COMMAND_DATA_SET_TYPE: _us(el.COMMAND_DATA_SET_TYPE, 0x0101),
    }
    for tag_name, raw in override.items():
        parts[getattr(el, tag_name)] = raw
    return [raw for _, raw in sorted(parts.items()) if raw]


def test_well_formed_hand_built_echo_decodes():
    assert c.decode(_command(*_echo_elements())) == c.CEchoRQ(
        message_id=5, affected_sop_class_uid=VERIFICATION
    )


def test_unknown_elements_are_ignored_and_group_length_may_be_absent():
    extra = [
        _element(0x00000001, struct.pack("<L", 99)),  # retired Length to End
        _element(0x00005010, b"x\x00"),  # retired Message Set ID
        _element(0x00000200, b"ABC "),  # retired Initiator
    ]
    decoded = c.decode(_command(*_echo_elements(), *extra, group_length=False))
    assert decoded == c.CEchoRQ(message_id=5, affected_sop_class_uid=VERIFICATION)
    with_other_group = _command(*_echo_elements()) + _element(0x00080018, b"1.2\x00")
    assert isinstance(c.decode(with_other_group), c.CEchoRQ)


@pytest.mark.parametrize(
    "raw, kept",
    [
        (b"9" * 66, "9" * 66),
        (b"1.2.abc/..", "1.2.abc/.."),
        (b"1.\xff", "1.\\xff"),
        (b"1.2\x1b\n3", "1.2\\x1b\\n3"),
    ],
)
def test_a_uid_breaking_the_grammar_is_decoded_as_printable_text(raw, kept):
    """Not an abort: the association answers such a request with a status (tests/node)."""
    uid = _element(el.AFFECTED_SOP_CLASS_UID, raw + b"\x00" * (len(raw) % 2))
    decoded = c.decode(_command(*_echo_elements(AFFECTED_SOP_CLASS_UID=uid)))
    assert decoded.affected_sop_class_uid == kept
    assert kept.isprintable()


def test_uid_padded_with_space_is_tolerated():
    uid = _element(el.AFFECTED_SOP_CLASS_UID, b"1.2.840.10008.1.1 ")
    assert c.decode(_command(*_echo_elements(AFFECTED_SOP_CLASS_UID=uid))).affected_sop_class_uid == (
        VERIFICATION
    )


@pytest.mark.parametrize(
    "data, tag_or_text",
    [
        (_command(*_echo_elements(MESSAGE_ID=b"")), "(0000,0110)"),  # missing
        (_command(*_echo_elements(COMMAND_FIELD=b"")), "(0000,0100)"),
        (_command(*_echo_elements(COMMAND_DATA_SET_TYPE=b"")), "(0000,0800)"),
        (_command(*_echo_elements(AFFECTED_SOP_CLASS_UID=b"")), "(0000,0002)"),
        (
            _command(*_echo_elements(AFFECTED_SOP_CLASS_UID=_element(el.AFFECTED_SOP_CLASS_UID, b""))),
            "(0000,0002)",
        ),
        (
            _command(*_echo_elements(MESSAGE_ID=_element(el.MESSAGE_ID, b"\x01\x00\x00\x00"))),
            "(0000,0110)",
        ),
        (_command(*_echo_elements(COMMAND_FIELD=_us(el.COMMAND_FIELD, 0x0031))), "(0000,0100)"),
        (
            _command(*_echo_elements(COMMAND_DATA_SET_TYPE=_us(el.COMMAND_DATA_SET_TYPE, 0x0001))),
            "(0000,0800)",
        ),
        (_element(0, struct.pack("<L", 3)) + b"".join(_echo_elements()), "(0000,0000)"),
        (_element(0, b"\x00\x00") + b"".join(_echo_elements()), "(0000,0000)"),
        (_command(*_echo_elements(), _us(el.MESSAGE_ID, 6)), "appears twice"),
        (_command(*_echo_elements())[:-1], "runs past the end"),
        (_command(*_echo_elements()) + b"\x00\x00", "stray bytes"),
        (struct.pack("<HHL", 0, 0x0002, 0xFFFFFFFF) + b"".join(_echo_elements()), "undefined length"),
        (b"", "(0000,0100)"),
    ],
)
def test_malformed_command_sets_name_the_problem(data, tag_or_text):
    with pytest.raises(RemoteProtocolError) as info:
        c.decode(data)
    assert tag_or_text in str(info.value)


def test_store_rq_without_data_set_and_bad_priority_are_rejected():
    store = c.CStoreRQ(message_id=1, affected_sop_class_uid="1.2", affected_sop_instance_uid="1.3")
    encoded = store.encode()
    no_dataset = encoded.replace(_us(el.COMMAND_DATA_SET_TYPE, 0x0001), _us(el.COMMAND_DATA_SET_TYPE, 0x0101))
    with pytest.raises(RemoteProtocolError, match=r"\(0000,0800\).*requires a data set"):
        c.decode(no_dataset)
    bad_priority = encoded.replace(_us(el.PRIORITY, 0), _us(el.PRIORITY, 7))
    with pytest.raises(RemoteProtocolError, match=r"\(0000,0700\) Priority: 7 is not"):
        c.decode(bad_priority)


def test_any_data_set_type_but_null_means_present():
    rsp = c.CFindRSP(message_id_being_responded_to=1, status=0xFF00, has_dataset=True).encode()
    legacy = rsp.replace(_us(el.COMMAND_DATA_SET_TYPE, 0x0001), _us(el.COMMAND_DATA_SET_TYPE, 0x0102))
    assert c.decode(legacy).has_dataset


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_remote_protocol_error(data):
    try:
        message = c.decode(data)
    except RemoteProtocolError:
        return
    assert isinstance(message, c.DimseMessage)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=ALL_MESSAGES, data=st.data())
def test_mutated_command_sets_raise_only_remote_protocol_error(message, data):
    encoded = bytearray(message.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        position = data.draw(st.integers(0, max(len(encoded) - 1, 0)))
        if kind == "flip" and encoded:
            encoded[position] = data.draw(st.integers(0, 255))
        elif kind == "truncate":
            del encoded[position:]
        elif kind == "insert":
            encoded[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        elif encoded:
            del encoded[position : position + data.draw(st.integers(1, 8))]
    try:
        decoded = c.decode(bytes(encoded))
    except RemoteProtocolError:
        return
    assert isinstance(decoded, c.DimseMessage)
    uids = [getattr(decoded, f"{kind}_sop_{what}_uid", None) for kind in ("affected", "requested") for what in ("class", "instance")]
    if any(uid is not None and not is_valid_uid(uid) for uid in uids) or c.missing_required(decoded):
        return  # kept as text, or left None, for the association to refuse with a status
    # Whatever else decodes passes the constructor's checks too and round-trips.
    assert attrs.evolve(decoded) == decoded
    assert c.decode(decoded.encode()) == decoded


def test_message_ids_wrap_within_the_us_range():
    """Message IDs are US: after 65535 comes 1 again (never 0, never 65536)."""
    assert [c.next_message_id(last) for last in (0, 1, 65534, 65535)] == [1, 2, 65535, 1]


def test_the_65536th_sub_operation_of_a_c_get_gets_message_id_1():
    from triopacs.actors.node.services.base import Session

    session = Session(
        association_id="a1", link=None, negotiated=None, calling_ae_title="X", called_ae_title="Y",
        peer="127.0.0.1:1", ctx=type("Ctx", (), {"log": None})(), settings=None,
    )
    ids = [session.next_message_id() for _ in range(65537)]
    assert ids[:2] == [1, 2] and ids[65534] == 65535 and ids[65535] == 1 and ids[65536] == 2
    assert all(1 <= i <= 0xFFFF for i in ids)
