"""The incremental decoder: any chunking, limits before buffering, precise errors,
hypothesis round-trips for every PDU, and the fuzz invariant (only RemoteProtocolError)."""

import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triopacs.protocol.codes import AbortReason, ContextResult, RejectResult, RejectSource, RejectUserReason
from triopacs.protocol.decoder import PDUDecoder, decode_pdus
from triopacs.protocol.errors import RemoteProtocolError
from triopacs.protocol.items import (
    AsyncOpsWindow,
    ImplementationClassUID,
    ImplementationVersionName,
    MaximumLength,
    PresentationContextAC,
    PresentationContextRQ,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UnknownSubItem,
    UserIdentityAC,
    UserIdentityRQ,
    UserInformation,
)
from triopacs.protocol.pdu import (
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
    PresentationDataValue,
)

INVALID = AbortReason.INVALID_PDU_PARAMETER_VALUE
UNEXPECTED = AbortReason.UNEXPECTED_PDU_PARAMETER

RQ = AAssociateRQ(
    called_ae_title="PACS",
    calling_ae_title="MODALITY 1",
    presentation_contexts=(
        PresentationContextRQ(context_id=1, abstract_syntax="1.2.840.10008.1.1", transfer_syntaxes=("1.2.840.10008.1.2",)),
        PresentationContextRQ(context_id=3, abstract_syntax="1.2.840.10008.5.1.4.1.1.2", transfer_syntaxes=("1.2", "1.3")),
    ),
    user_information=UserInformation(
        maximum_length=MaximumLength(maximum_length=16384),
        implementation_class_uid=ImplementationClassUID(uid="1.2.3.4"),
        async_ops_window=AsyncOpsWindow(max_invoked=2, max_performed=1),
        role_selections=(RoleSelection(sop_class_uid="1.2.840.10008.5.1.4.1.1.2", scu_role=True, scp_role=True),),
        implementation_version_name=ImplementationVersionName(name="TEST 1"),
        extended_negotiations=(SOPClassExtendedNegotiation(sop_class_uid="1.2.5", application_information=b"\x01"),),
        common_extended_negotiations=(
            SOPClassCommonExtendedNegotiation(sop_class_uid="1.2.6", service_class_uid="1.2.7", related_general_sop_classes=("1.8", "1.9")),
        ),
        user_identity=UserIdentityRQ(identity_type=2, positive_response_requested=True, primary_field=b"me", secondary_field=b"pw"),
        unknown=(UnknownSubItem(item_type=0xA0, data=b"future"),),
    ),
)
AC = AAssociateAC(
    called_ae_title="PACS",
    calling_ae_title="MODALITY 1",
    presentation_contexts=(
        PresentationContextAC(context_id=1, result=ContextResult.ACCEPTANCE, transfer_syntax="1.2.840.10008.1.2"),
        PresentationContextAC(context_id=3, result=ContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED, transfer_syntax="1.2"),
    ),
    user_information=UserInformation(
        maximum_length=MaximumLength(maximum_length=32768),
        user_identity_response=UserIdentityAC(server_response=b"token"),
    ),
)
PDATA = PDataTF(
    pdvs=(
        PresentationDataValue(context_id=1, is_command=True, is_last=True, data=b"\x00" * 30),
        PresentationDataValue(context_id=1, is_command=False, is_last=False, data=bytes(range(200))),
    )
)
ALL_PDUS = [RQ, AC, AAssociateRJ(result=2, source=3, reason=1), PDATA, AReleaseRQ(), AReleaseRP(), AAbort(source=2, reason=5)]
STREAM = b"".join(pdu.encode() for pdu in ALL_PDUS)


def feed_chunks(chunks, **limits) -> list:
    decoder = PDUDecoder(**limits)
    pdus = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (pdu := decoder.next_pdu()) is not None:
            pdus.append(pdu)
    assert decoder.buffered == 0
    return pdus


# --- chunking ----------------------------------------------------------------------------


@pytest.mark.parametrize("pdu", ALL_PDUS, ids=lambda p: type(p).__name__)
def test_each_pdu_whole_bytewise_and_split_at_every_offset(pdu) -> None:
    wire = pdu.encode()
    assert feed_chunks([wire]) == [pdu]
    assert feed_chunks([wire[i : i + 1] for i in range(len(wire))]) == [pdu]
    for cut in range(1, len(wire)):
        assert feed_chunks([wire[:cut], wire[cut:]]) == [pdu], cut


def test_stream_of_every_pdu_split_at_every_offset() -> None:
    for cut in range(1, len(STREAM)):
        assert feed_chunks([STREAM[:cut], STREAM[cut:]]) == ALL_PDUS, cut
    assert feed_chunks([STREAM[i : i + 1] for i in range(len(STREAM))]) == ALL_PDUS


@pytest.mark.parametrize("size", [2, 3, 7, 64, 500])
def test_stream_in_fixed_chunks_of_mutable_buffers(size: int) -> None:
    chunks = [bytearray(STREAM[i : i + size]) for i in range(0, len(STREAM), size)]
    assert feed_chunks(chunks) == ALL_PDUS
    assert feed_chunks(memoryview(c) for c in chunks) == ALL_PDUS


def test_feeding_twice_before_draining_keeps_order() -> None:
    decoder = PDUDecoder()
    decoder.feed(STREAM[:100])
    decoder.feed(STREAM[100:])
    pdus = []
    while (pdu := decoder.next_pdu()) is not None:
        pdus.append(pdu)
    assert pdus == ALL_PDUS


def test_pdv_data_are_slices_of_the_received_chunk_without_copy() -> None:
    wire = PDATA.encode()
    decoder = PDUDecoder()
    decoder.feed(wire)
    pdu = decoder.next_pdu()
    assert all(isinstance(pdv.data, memoryview) and pdv.data.obj is wire for pdv in pdu.pdvs)


def test_straddling_pdu_is_gathered_then_handed_over() -> None:
    wire = PDATA.encode()
    decoder = PDUDecoder()
    decoder.feed(wire[:50])
    assert decoder.next_pdu() is None
    decoder.feed(wire[50:] + AReleaseRQ().encode())
    pdu = decoder.next_pdu()
    assert pdu == PDATA and isinstance(pdu.pdvs[1].data.obj, bytearray)
    assert decoder.next_pdu() == AReleaseRQ()


# --- limits before buffering ------------------------------------------------------------


def test_oversized_pdata_refused_from_its_header_alone() -> None:
    decoder = PDUDecoder(max_pdata_length=16384)
    decoder.feed(struct.pack(">BxL", 4, 0xFFFFFFFF))
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_pdu()
    assert info.value.abort_reason == INVALID
    assert decoder.broken and decoder.buffered == 0
    decoder.feed(bytes(1000))  # dropped: the stream cannot be resynchronised
    assert decoder.next_pdu() is None and decoder.buffered == 0


def test_pdata_at_the_limit_passes() -> None:
    pdu = PDataTF(pdvs=(PresentationDataValue(context_id=1, is_command=False, is_last=True, data=bytes(16378)),))
    assert feed_chunks([pdu.encode()], max_pdata_length=16384) == [pdu]
    with pytest.raises(RemoteProtocolError):
        feed_chunks([pdu.encode()], max_pdata_length=16383)


def test_zero_max_length_means_the_default_cap() -> None:
    decoder = PDUDecoder(max_pdata_length=0)
    decoder.feed(struct.pack(">BxL", 4, 2**31))
    with pytest.raises(RemoteProtocolError):
        decoder.next_pdu()


def test_oversized_associate_request_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        feed_chunks([RQ.encode()], max_associate_length=100)


# --- precise errors ------------------------------------------------------------------


def associate(pdu_type: int, items: bytes, *, version: int = 1, called: bytes = b"PACS", calling: bytes = b"SCU") -> bytes:
    body = struct.pack(">H2x16s16s32x", version, called.ljust(16), calling.ljust(16)) + items
    return struct.pack(">BxL", pdu_type, len(body)) + body


def item(item_type: int, body: bytes) -> bytes:
    return struct.pack(">BxH", item_type, len(body)) + body


APP = item(0x10, b"1.2.840.10008.3.1.1.1")
PC = item(0x20, b"\x01\x00\x00\x00" + item(0x30, b"1.2.3") + item(0x40, b"1.2.4"))
PC_AC = item(0x21, b"\x01\x00\x00\x00" + item(0x40, b"1.2.4"))
UI = item(0x50, item(0x51, struct.pack(">L", 0)))


def rq(items: bytes = APP + PC + UI, **kw) -> bytes:
    return associate(1, items, **kw)


def ac(items: bytes = APP + PC_AC + UI, **kw) -> bytes:
    return associate(2, items, **kw)


def ui(*sub_items: bytes) -> bytes:
    return rq(APP + PC + item(0x50, b"".join(sub_items)))


ERRORS = {
    "unknown PDU type": (b"\x08\x00\x00\x00\x00\x04\x00\x00\x00\x00", AbortReason.UNRECOGNIZED_PDU),
    "PDU type 0": (b"\x00\x00\x00\x00\x00\x00", AbortReason.UNRECOGNIZED_PDU),
    "RJ of length 5": (b"\x03\x00\x00\x00\x00\x05\x00\x01\x01\x01\x00", INVALID),
    "release RQ of length 0": (b"\x05\x00\x00\x00\x00\x00", INVALID),
    "abort of huge length": (b"\x07\x00\xff\xff\xff\xff", INVALID),
    "RJ result 0": (b"\x03\x00\x00\x00\x00\x04\x00\x00\x01\x01", INVALID),
    "RJ source 4": (b"\x03\x00\x00\x00\x00\x04\x00\x01\x04\x01", INVALID),
    "P-DATA without PDV": (b"\x04\x00\x00\x00\x00\x00", INVALID),
    "PDV length 1": (b"\x04\x00\x00\x00\x00\x06\x00\x00\x00\x01\x01\x00", INVALID),
    "PDV overruns": (b"\x04\x00\x00\x00\x00\x07\x00\x00\x00\x09\x01\x00\x00", INVALID),
    "PDV trailing bytes": (b"\x04\x00\x00\x00\x00\x09\x00\x00\x00\x03\x01\x00\x00\x00\x00", INVALID),
    "PDV even context": (b"\x04\x00\x00\x00\x00\x07\x00\x00\x00\x03\x02\x00\x00", INVALID),
    "RQ shorter than fixed fields": (struct.pack(">BxL", 1, 10) + bytes(10), INVALID),
    "RQ without application context": (rq(PC + UI), INVALID),
    "RQ without presentation context": (rq(APP + UI), INVALID),
    "RQ without user information": (rq(APP + PC), INVALID),
    "RQ item overruns": (rq(APP + PC + UI[:-1] + b"\x00\x00\x00\x09"), INVALID),
    "RQ truncated item header": (rq(APP + PC + UI + b"\x50\x00"), INVALID),
    "RQ two application contexts": (rq(APP + APP + PC + UI), UNEXPECTED),
    "RQ two user information items": (rq(APP + PC + UI + UI), UNEXPECTED),
    "RQ with an AC presentation context": (rq(APP + PC + PC_AC + UI), UNEXPECTED),
    "RQ with a stray sub-item": (rq(APP + PC + UI + item(0x51, bytes(4))), UNEXPECTED),
    "RQ repeated context ID": (rq(APP + PC + PC + UI), INVALID),
    "RQ even context ID": (rq(APP + item(0x20, b"\x02\x00\x00\x00" + item(0x30, b"1.2") + item(0x40, b"1.2")) + UI), INVALID),
    "RQ context without transfer syntax": (rq(APP + item(0x20, b"\x01\x00\x00\x00" + item(0x30, b"1.2")) + UI), INVALID),
    "RQ context without abstract syntax": (rq(APP + item(0x20, b"\x01\x00\x00\x00" + item(0x40, b"1.2")) + UI), INVALID),
    "RQ context two abstract syntaxes": (
        rq(APP + item(0x20, b"\x01\x00\x00\x00" + item(0x30, b"1.2") + item(0x30, b"1.3") + item(0x40, b"1.2")) + UI),
        UNEXPECTED,
    ),
    "RQ context short": (rq(APP + item(0x20, b"\x01\x00") + UI), INVALID),
    "RQ bad abstract syntax UID": (rq(APP + item(0x20, b"\x01\x00\x00\x00" + item(0x30, b"1.02") + item(0x40, b"1.2")) + UI), INVALID),
    "RQ empty transfer syntax": (rq(APP + item(0x20, b"\x01\x00\x00\x00" + item(0x30, b"1.2") + item(0x40, b"")) + UI), INVALID),
    "AC without bit 0 of the protocol version": (ac(version=2), INVALID),
    "AC accepted context without transfer syntax": (ac(APP + item(0x21, b"\x01\x00\x00\x00") + UI), INVALID),
    "AC context result 5": (ac(APP + item(0x21, b"\x01\x00\x05\x00" + item(0x40, b"1.2")) + UI), INVALID),
    "AC context two transfer syntaxes": (ac(APP + item(0x21, b"\x01\x00\x00\x00" + item(0x40, b"1.2") * 2) + UI), UNEXPECTED),
    "AC bad application context": (ac(item(0x10, b"x") + PC_AC + UI), INVALID),
    "maximum length of 3 bytes": (ui(item(0x51, bytes(3))), INVALID),
    "two maximum lengths": (ui(item(0x51, bytes(4)), item(0x51, bytes(4))), UNEXPECTED),
    "bad implementation class UID": (ui(item(0x52, b"1..2")), INVALID),
    "version name of 17 characters": (ui(item(0x55, b"X" * 17)), INVALID),
    "empty version name": (ui(item(0x55, b"")), INVALID),
    "version name with a control character": (ui(item(0x55, b"A\nB")), INVALID),
    "async window of 2 bytes": (ui(item(0x53, bytes(2))), INVALID),
    "role selection value 2": (ui(item(0x54, b"\x00\x031.2\x02\x00")), INVALID),
    "role selection UID overruns": (ui(item(0x54, b"\x00\x091.2\x01\x00")), INVALID),
    "role selection trailing bytes": (ui(item(0x54, b"\x00\x031.2\x01\x00\x00")), INVALID),
    "extended negotiation UID overruns": (ui(item(0x56, b"\x00\x09ab")), INVALID),
    "common extended negotiation trailing": (ui(item(0x57, b"\x00\x011\x00\x011\x00\x00\xff")), INVALID),
    "common extended negotiation bad related": (ui(item(0x57, b"\x00\x011\x00\x011\x00\x03\x00\x05x")), INVALID),
    "user identity trailing bytes": (ui(item(0x58, b"\x01\x00\x00\x01u\x00\x00\x00")), INVALID),
    "user identity short": (ui(item(0x58, b"\x01")), INVALID),
    "user identity positive response 2": (ui(item(0x58, b"\x01\x02\x00\x01u\x00\x00")), INVALID),
    "user identity AC trailing": (ui(item(0x59, b"\x00\x01ab")), INVALID),
    "user identity primary length past the item": (ui(item(0x58, b"\x02\x01\xff\xffme\x00\x02pw")), INVALID),
    "user identity secondary length past the item": (ui(item(0x58, b"\x02\x01\x00\x02me\x80\x00pw")), INVALID),
    "user identity without its secondary length": (ui(item(0x58, b"\x02\x01\x00\x02me")), INVALID),
    "user identity AC length past the item": (ui(item(0x59, b"\xff\xff")), INVALID),
}


@pytest.mark.parametrize("name", ERRORS)
def test_invalid_input_raises_remote_protocol_error_with_reason(name: str) -> None:
    wire, reason = ERRORS[name]
    with pytest.raises(RemoteProtocolError) as info:
        decode_pdus(wire)
    assert info.value.abort_reason == reason
    assert info.value.reject is None


REJECTIONS = {
    "called AE all spaces": (rq(called=b" " * 16), RejectUserReason.CALLED_AE_TITLE_NOT_RECOGNIZED),
    "called AE with a backslash": (rq(called=b"A\\B"), RejectUserReason.CALLED_AE_TITLE_NOT_RECOGNIZED),
    "called AE with NUL padding": (rq(called=b"PACS".ljust(16, b"\x00")), RejectUserReason.CALLED_AE_TITLE_NOT_RECOGNIZED),
    "calling AE with a control character": (rq(calling=b"SC\x1bU"), RejectUserReason.CALLING_AE_TITLE_NOT_RECOGNIZED),
    "calling AE not ASCII": (rq(calling=b"\xe9"), RejectUserReason.CALLING_AE_TITLE_NOT_RECOGNIZED),
    "application context not a UID": (
        rq(item(0x10, b"dicom") + PC + UI), RejectUserReason.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
    ),
}


@pytest.mark.parametrize("name", REJECTIONS)
def test_unusable_request_carries_rejection_codes(name: str) -> None:
    wire, reason = REJECTIONS[name]
    decoder = PDUDecoder()
    decoder.feed(wire + AReleaseRQ().encode())
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_pdu()
    reject = info.value.reject
    assert (reject.result, reject.source, reject.reason) == (
        RejectResult.REJECTED_PERMANENT, RejectSource.SERVICE_USER, reason,
    )
    assert decoder.next_pdu() == AReleaseRQ()  # the PDU was consumed whole; the stream goes on


def test_tolerated_input() -> None:
    # Unknown items are skipped (PS3.8 9.3.1); unknown sub-items kept; AE titles may have
    # leading spaces; a UID may carry one NUL pad; reserved bytes are not tested; the
    # protocol version is decoded as sent (the association rejects a wrong one).
    wire = rq(
        APP + item(0x99, b"?") + item(0x20, b"\x01\xff\xff\xff" + item(0x30, b"1.2.3\x00") + item(0x33, b"") + item(0x40, b"1.2.4"))
        + item(0x50, item(0x51, bytes(4)) + item(0xC0, b"x")),
        called=b"  PACS", version=0xFFFE,
    )
    wire = wire[:1] + b"\xaa" + wire[2:]
    (pdu,) = decode_pdus(wire)
    assert pdu.called_ae_title == "PACS" and pdu.protocol_version == 0xFFFE
    assert pdu.presentation_contexts == (PresentationContextRQ(context_id=1, abstract_syntax="1.2.3", transfer_syntaxes=("1.2.4",)),)
    assert pdu.user_information.unknown == (UnknownSubItem(item_type=0xC0, data=b"x"),)
    # A rejected AC context's transfer syntax is not tested; an A-ABORT's codes are not tested.
    (pdu,) = decode_pdus(ac(APP + item(0x21, b"\x01\x00\x03\x00" + item(0x40, b"??")) + UI, called=b"\x00\x01"))
    assert pdu.presentation_contexts[0].transfer_syntax == "??"
    assert decode_pdus(b"\x07\x00\x00\x00\x00\x04\xff\xff\x01\x09") == [AAbort(source=1, reason=9)]


def test_body_error_costs_only_that_pdu() -> None:
    decoder = PDUDecoder()
    decoder.feed(ERRORS["PDV even context"][0] + AReleaseRP().encode())
    with pytest.raises(RemoteProtocolError):
        decoder.next_pdu()
    assert not decoder.broken
    assert decoder.next_pdu() == AReleaseRP()


# --- hypothesis round-trips -------------------------------------------------------------

uids = st.lists(st.integers(0, 10**12), min_size=1, max_size=8).map(lambda parts: ".".join(map(str, parts))).filter(
    lambda uid: len(uid) <= 64
)
ae_titles = st.text(st.sampled_from([chr(c) for c in range(0x20, 0x7F) if c != 0x5C]), min_size=1, max_size=16).map(
    lambda t: t.strip(" ")
).filter(bool)
version_names = st.text(st.sampled_from([chr(c) for c in range(0x20, 0x7F)]), min_size=1, max_size=16)
context_ids = st.integers(0, 127).map(lambda i: 2 * i + 1)
u16 = st.integers(0, 0xFFFF)
small_bytes = st.binary(max_size=40)


def optional(strategy):
    return st.none() | strategy


user_information = st.builds(
    UserInformation,
    maximum_length=optional(st.builds(MaximumLength, maximum_length=st.integers(0, 2**32 - 1))),
    implementation_class_uid=optional(st.builds(ImplementationClassUID, uid=uids)),
    async_ops_window=optional(st.builds(AsyncOpsWindow, max_invoked=u16, max_performed=u16)),
    role_selections=st.lists(st.builds(RoleSelection, sop_class_uid=uids, scu_role=st.booleans(), scp_role=st.booleans()), max_size=3).map(tuple),
    implementation_version_name=optional(st.builds(ImplementationVersionName, name=version_names)),
    extended_negotiations=st.lists(
        st.builds(SOPClassExtendedNegotiation, sop_class_uid=uids, application_information=small_bytes), max_size=2
    ).map(tuple),
    common_extended_negotiations=st.lists(
        st.builds(
            SOPClassCommonExtendedNegotiation,
            sop_class_uid=uids,
            service_class_uid=uids,
            related_general_sop_classes=st.lists(uids, max_size=3).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
    user_identity=optional(
        st.builds(
            UserIdentityRQ,
            identity_type=st.integers(0, 255),
            positive_response_requested=st.booleans(),
            primary_field=small_bytes,
            secondary_field=small_bytes,
        )
    ),
    user_identity_response=optional(st.builds(UserIdentityAC, server_response=small_bytes)),
    unknown=st.lists(st.builds(UnknownSubItem, item_type=st.integers(0x5A, 0xFF), data=small_bytes), max_size=2).map(tuple),
)


def unique_ids(contexts):
    return len({c.context_id for c in contexts}) == len(contexts)


requests = st.builds(
    AAssociateRQ,
    protocol_version=u16,
    called_ae_title=ae_titles,
    calling_ae_title=ae_titles,
    application_context_name=uids,
    presentation_contexts=st.lists(
        st.builds(PresentationContextRQ, context_id=context_ids, abstract_syntax=uids, transfer_syntaxes=st.lists(uids, min_size=1, max_size=4).map(tuple)),
        min_size=1, max_size=5,
    ).filter(unique_ids).map(tuple),
    user_information=user_information,
)
ac_contexts = st.one_of(
    st.builds(PresentationContextAC, context_id=context_ids, result=st.just(ContextResult.ACCEPTANCE), transfer_syntax=uids),
    st.builds(
        PresentationContextAC,
        context_id=context_ids,
        result=st.sampled_from(list(ContextResult)[1:]),
        transfer_syntax=st.just("") | uids,
    ),
)
acceptances = st.builds(
    AAssociateAC,
    protocol_version=u16.map(lambda v: v | 1),
    called_ae_title=ae_titles,
    calling_ae_title=ae_titles,
    application_context_name=uids,
    presentation_contexts=st.lists(ac_contexts, min_size=1, max_size=5).filter(unique_ids).map(tuple),
    user_information=user_information,
)
rejections = st.builds(
    AAssociateRJ, result=st.sampled_from([1, 2]), source=st.sampled_from([1, 2, 3]), reason=st.integers(0, 255)
)
pdvs = st.builds(
    PresentationDataValue, context_id=context_ids, is_command=st.booleans(), is_last=st.booleans(), data=st.binary(max_size=300)
)
pdatas = st.builds(PDataTF, pdvs=st.lists(pdvs, min_size=1, max_size=4).map(tuple))
aborts = st.builds(AAbort, source=st.integers(0, 255), reason=st.integers(0, 255))
any_pdu = st.one_of(requests, acceptances, rejections, pdatas, aborts, st.just(AReleaseRQ()), st.just(AReleaseRP()))
ROUND_TRIP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("strategy", [requests, acceptances, rejections, pdatas, aborts], ids=["RQ", "AC", "RJ", "P-DATA", "ABORT"])
def test_round_trip(strategy) -> None:
    @ROUND_TRIP
    @given(pdu=strategy, cuts=st.lists(st.integers(0, 10**6), max_size=4))
    def check(pdu, cuts) -> None:
        wire = pdu.encode()
        offsets = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
        assert feed_chunks([wire[a:b] for a, b in zip(offsets, offsets[1:])]) == [pdu]

    check()


@ROUND_TRIP
@given(st.lists(any_pdu, min_size=1, max_size=4), st.integers(1, 200))
def test_round_trip_of_pdu_sequences_in_chunks(pdus, size) -> None:
    wire = b"".join(p.encode() for p in pdus)
    assert feed_chunks([wire[i : i + size] for i in range(0, len(wire), size)]) == pdus


# --- fuzz: the decoder raises RemoteProtocolError and nothing else -----------------------


def decode_everything(data: bytes, chunk: int) -> None:
    decoder = PDUDecoder(max_pdata_length=4096, max_associate_length=8192)
    for i in range(0, len(data), chunk):
        decoder.feed(data[i : i + chunk])
        while True:
            try:
                if decoder.next_pdu() is None:
                    break
            except RemoteProtocolError:
                continue


FUZZ_EXAMPLES = 1000
SEEDS = [p.encode() for p in ALL_PDUS] + [w for w, _ in ERRORS.values()] + [w for w, _ in REJECTIONS.values()]


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 64))
def test_fuzz_random_bytes(data: bytes, chunk: int) -> None:
    decode_everything(data, chunk)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6), st.integers(1, 300))
def test_fuzz_mutated_pdus(seed: bytes, edits, chunk: int) -> None:
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    decode_everything(bytes(data), chunk)


MUTATION_ROUNDS = 30000


def mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        pos = rng.randrange(len(data) + 1)
        if kind < 0.5 and data:
            data[pos % len(data)] = rng.randrange(256)
        elif kind < 0.7:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif kind < 0.9:
            del data[pos : pos + rng.randint(1, 8)]
        else:
            data += seed[: rng.randint(0, len(seed))]
    return bytes(data)


def test_fuzz_seeded_mutations() -> None:
    """A deterministic campaign, larger than hypothesis's, over every seed PDU."""
    rng = random.Random(20261123)
    for _ in range(MUTATION_ROUNDS):
        decode_everything(mutate(rng, rng.choice(SEEDS)), rng.choice([1, 5, 64, 1000]))
