"""Byte fixtures for every PDU and item, written out by hand from PS3.8 9.3 / Annex D and
PS3.7 D.3.3 (field by field in the comments), plus PDUs captured from DCMTK 3.6.7."""

from pathlib import Path

import pytest

from triopacs.protocol.codes import AbortReason, AbortSource, ContextResult, RejectResult, RejectSource
from triopacs.protocol.decoder import decode_pdus
from triopacs.protocol.errors import LocalProtocolError
from triopacs.protocol.items import (
    AbstractSyntax,
    ApplicationContext,
    AsyncOpsWindow,
    ImplementationClassUID,
    ImplementationVersionName,
    MaximumLength,
    PresentationContextAC,
    PresentationContextRQ,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    TransferSyntax,
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


def captured(name: str) -> bytes:
    return bytes.fromhex((Path(__file__).parent / "captured" / name).read_text())


def h(text: str) -> bytes:
    """Hex with spaces and | separators for readability."""
    return bytes.fromhex(text.replace("|", " "))


VERIFICATION = "1.2.840.10008.1.1"  # 17 characters
IMPLICIT_LE = "1.2.840.10008.1.2"  # 17 characters
APP_CONTEXT_HEX = "312e322e3834302e31303030382e332e312e312e31"  # "1.2.840.10008.3.1.1.1", 21 characters
VERIFICATION_HEX = "312e322e3834302e31303030382e312e31"
IMPLICIT_LE_HEX = "312e322e3834302e31303030382e312e32"

# (object, bytes) for every item and sub-item.
ITEM_FIXTURES = {
    # type 10H, reserved, length 0015H (21), the application context name
    "application context": (ApplicationContext(), h(f"10 00 0015 | {APP_CONTEXT_HEX}")),
    "abstract syntax": (AbstractSyntax(name=VERIFICATION), h(f"30 00 0011 | {VERIFICATION_HEX}")),
    "transfer syntax": (TransferSyntax(name=IMPLICIT_LE), h(f"40 00 0011 | {IMPLICIT_LE_HEX}")),
    # type 20H, reserved, length 4 + 21 + 21 = 46 (002eH); context ID 01, three reserved bytes
    "presentation context RQ": (
        PresentationContextRQ(context_id=1, abstract_syntax=VERIFICATION, transfer_syntaxes=(IMPLICIT_LE,)),
        h(f"20 00 002e | 01 00 00 00 | 30 00 0011 {VERIFICATION_HEX} | 40 00 0011 {IMPLICIT_LE_HEX}"),
    ),
    # type 21H, length 4 + 21 = 25 (0019H); context ID 03, reserved, result 0 (acceptance), reserved
    "presentation context AC": (
        PresentationContextAC(context_id=3, result=ContextResult.ACCEPTANCE, transfer_syntax=IMPLICIT_LE),
        h(f"21 00 0019 | 03 00 00 00 | 40 00 0011 {IMPLICIT_LE_HEX}"),
    ),
    # a rejected context (result 3, abstract syntax not supported) with an empty transfer syntax sub-item
    "presentation context AC rejected": (
        PresentationContextAC(context_id=5, result=ContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED),
        h("21 00 0008 | 05 00 03 00 | 40 00 0000"),
    ),
    # type 51H, length 4, maximum-length-received 16384 (00004000H)
    "maximum length": (MaximumLength(maximum_length=16384), h("51 00 0004 | 00004000")),
    "implementation class UID": (ImplementationClassUID(uid="1.2.3"), h("52 00 0005 | 312e322e33")),
    # type 53H, length 4, max invoked 0003, max performed 0001
    "async operations window": (AsyncOpsWindow(max_invoked=3, max_performed=1), h("53 00 0004 | 0003 0001")),
    # type 54H, length 7: UID length 0003, "1.2", SCU role 01, SCP role 00
    "role selection": (
        RoleSelection(sop_class_uid="1.2", scu_role=True, scp_role=False),
        h("54 00 0007 | 0003 312e32 | 01 | 00"),
    ),
    "implementation version name": (ImplementationVersionName(name="TRIO"), h("55 00 0004 | 5452494f")),
    # type 56H, length 7: UID length 0003, "1.2", application information 01 02
    "SOP class extended negotiation": (
        SOPClassExtendedNegotiation(sop_class_uid="1.2", application_information=b"\x01\x02"),
        h("56 00 0007 | 0003 312e32 | 0102"),
    ),
    # type 57H, sub-item version 00, length 17: SOP class "1.2", service class "1.3",
    # related-general-SOP-class identification of length 5 holding one UID "1.4"
    "SOP class common extended negotiation": (
        SOPClassCommonExtendedNegotiation(sop_class_uid="1.2", service_class_uid="1.3", related_general_sop_classes=("1.4",)),
        h("57 00 0011 | 0003 312e32 | 0003 312e33 | 0005 | 0003 312e34"),
    ),
    # type 58H, length 8: type 02 (username and passcode), positive response requested 01,
    # primary field length 0001 "u", secondary field length 0001 "p"
    "user identity RQ": (
        UserIdentityRQ(identity_type=2, positive_response_requested=True, primary_field=b"u", secondary_field=b"p"),
        h("58 00 0008 | 02 | 01 | 0001 75 | 0001 70"),
    ),
    # type 58H, type 01 (username), no response requested, empty secondary field
    "user identity RQ username": (
        UserIdentityRQ(identity_type=1, positive_response_requested=False, primary_field=b"bob"),
        h("58 00 0009 | 01 | 00 | 0003 626f62 | 0000"),
    ),
    # type 59H, length 4: server response length 0002, "ok"
    "user identity AC": (UserIdentityAC(server_response=b"ok"), h("59 00 0004 | 0002 6f6b")),
    "unknown sub-item": (UnknownSubItem(item_type=0x7F, data=b"zz"), h("7f 00 0002 | 7a7a")),
}


@pytest.mark.parametrize("name", ITEM_FIXTURES)
def test_item_encodes_to_fixture(name: str) -> None:
    item, wire = ITEM_FIXTURES[name]
    assert item.encode() == wire


SUB_ITEMS = {k: v for k, v in ITEM_FIXTURES.items() if v[1][0] >= 0x51}


def _user_information_for(item) -> UserInformation:
    match item:
        case MaximumLength():
            return UserInformation(maximum_length=item)
        case ImplementationClassUID():
            return UserInformation(implementation_class_uid=item)
        case ImplementationVersionName():
            return UserInformation(implementation_version_name=item)
        case AsyncOpsWindow():
            return UserInformation(async_ops_window=item)
        case RoleSelection():
            return UserInformation(role_selections=(item,))
        case SOPClassExtendedNegotiation():
            return UserInformation(extended_negotiations=(item,))
        case SOPClassCommonExtendedNegotiation():
            return UserInformation(common_extended_negotiations=(item,))
        case UserIdentityRQ():
            return UserInformation(user_identity=item)
        case UserIdentityAC():
            return UserInformation(user_identity_response=item)
        case UnknownSubItem():
            return UserInformation(unknown=(item,))
    raise AssertionError(item)


def _rq_bytes(user_info_hex: str, contexts_hex: str | None = None) -> bytes:
    """An A-ASSOCIATE-RQ around the given user information content, lengths computed here."""
    contexts = h(contexts_hex) if contexts_hex else ITEM_FIXTURES["presentation context RQ"][1]
    user_info = h(user_info_hex)
    items = ITEM_FIXTURES["application context"][1] + contexts + bytes([0x50, 0]) + len(user_info).to_bytes(2) + user_info
    fixed = h("0001 0000") + b"PACS".ljust(16) + b"SCU".ljust(16) + bytes(32)
    body = fixed + items
    return bytes([1, 0]) + len(body).to_bytes(4) + body


@pytest.mark.parametrize("name", SUB_ITEMS)
def test_sub_item_decodes_from_fixture(name: str) -> None:
    item, wire = SUB_ITEMS[name]
    (rq,) = decode_pdus(_rq_bytes(wire.hex()))
    assert rq.user_information == _user_information_for(item)


VERIFICATION_RQ = AAssociateRQ(
    called_ae_title="PACS",
    calling_ae_title="SCU",
    presentation_contexts=(ITEM_FIXTURES["presentation context RQ"][0],),
    user_information=UserInformation(
        maximum_length=MaximumLength(maximum_length=16384),
        implementation_class_uid=ImplementationClassUID(uid="1.2.3"),
        implementation_version_name=ImplementationVersionName(name="TRIO"),
    ),
)
# 01H, reserved, PDU length 000000acH (172 = 68 fixed bytes + 25 application context
# + 50 presentation context + 29 user information); protocol version 0001, reserved
# 0000, called "PACS" and calling "SCU" space-padded to 16, 32 reserved zero bytes, then
# the items; user information 50H of length 0019H (25 = 8 + 9 + 8 for its sub-items).
VERIFICATION_RQ_BYTES = h(
    "01 00 000000ac | 0001 0000"
    " 50414353202020202020202020202020"
    " 53435520202020202020202020202020"
    " 0000000000000000000000000000000000000000000000000000000000000000"
    f" 10 00 0015 {APP_CONTEXT_HEX}"
    f" 20 00 002e 01 000000 30 00 0011 {VERIFICATION_HEX} 40 00 0011 {IMPLICIT_LE_HEX}"
    " 50 00 0019 | 51 00 0004 00004000 | 52 00 0005 312e322e33 | 55 00 0004 5452494f"
)
VERIFICATION_AC = AAssociateAC(
    called_ae_title="PACS",
    calling_ae_title="SCU",
    presentation_contexts=(PresentationContextAC(context_id=1, result=0, transfer_syntax=IMPLICIT_LE),),
    user_information=UserInformation(maximum_length=MaximumLength(maximum_length=0)),
)
# 02H, length 00000086H (134 = 68 + 25 + 29 + 12); the AE title fields echo the request.
VERIFICATION_AC_BYTES = h(
    "02 00 00000086 | 0001 0000"
    " 50414353202020202020202020202020"
    " 53435520202020202020202020202020"
    " 0000000000000000000000000000000000000000000000000000000000000000"
    f" 10 00 0015 {APP_CONTEXT_HEX}"
    f" 21 00 0019 01 00 00 00 40 00 0011 {IMPLICIT_LE_HEX}"
    " 50 00 0008 | 51 00 0004 00000000"
)

PDU_FIXTURES = {
    "A-ASSOCIATE-RQ": (VERIFICATION_RQ, VERIFICATION_RQ_BYTES),
    "A-ASSOCIATE-AC": (VERIFICATION_AC, VERIFICATION_AC_BYTES),
    # 03H, reserved, length 4, reserved, result 1 (permanent), source 1 (user), reason 7 (called AE)
    "A-ASSOCIATE-RJ": (AAssociateRJ(result=1, source=1, reason=7), h("03 00 00000004 | 00 01 01 07")),
    # 04H, reserved, length 8; PDV: item length 4, context 01, control 03 (command, last), "ab"
    "P-DATA-TF": (
        PDataTF(pdvs=(PresentationDataValue(context_id=1, is_command=True, is_last=True, data=b"ab"),)),
        h("04 00 00000008 | 00000004 01 03 6162"),
    ),
    # two PDVs: a command fragment (control 01) and a last data set fragment (control 02)
    "P-DATA-TF two PDVs": (
        PDataTF(
            pdvs=(
                PresentationDataValue(context_id=1, is_command=True, is_last=False, data=b"c"),
                PresentationDataValue(context_id=3, is_command=False, is_last=True, data=b"dd"),
            )
        ),
        h("04 00 0000000f | 00000003 01 01 63 | 00000004 03 02 6464"),
    ),
    "A-RELEASE-RQ": (AReleaseRQ(), h("05 00 00000004 | 00000000")),
    "A-RELEASE-RP": (AReleaseRP(), h("06 00 00000004 | 00000000")),
    # 07H, reserved, length 4, two reserved bytes, source 2 (provider), reason 6 (invalid parameter value)
    "A-ABORT": (AAbort(source=2, reason=6), h("07 00 00000004 | 0000 02 06")),
    "A-ABORT user": (AAbort(), h("07 00 00000004 | 0000 00 00")),
}


@pytest.mark.parametrize("name", PDU_FIXTURES)
def test_pdu_encodes_to_fixture(name: str) -> None:
    pdu, wire = PDU_FIXTURES[name]
    assert pdu.encode() == wire


@pytest.mark.parametrize("name", PDU_FIXTURES)
def test_pdu_decodes_from_fixture(name: str) -> None:
    pdu, wire = PDU_FIXTURES[name]
    assert decode_pdus(wire) == [pdu]


def test_decoded_codes_are_enums() -> None:
    (rj,) = decode_pdus(PDU_FIXTURES["A-ASSOCIATE-RJ"][1])
    assert rj.result is RejectResult.REJECTED_PERMANENT and rj.source is RejectSource.SERVICE_USER
    (abort,) = decode_pdus(PDU_FIXTURES["A-ABORT"][1])
    assert abort.source is AbortSource.SERVICE_PROVIDER and abort.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE


# --- captured from DCMTK 3.6.7 (read, not copied: bytes a real peer put on the wire) ----

# echoscu -aet ECHOSCU -aec ANY-SCP: note the presentation context's reserved byte ffH,
# which receivers must not test.
DCMTK_ECHOSCU_RQ = captured("dcmtk-echoscu-rq.hex")
# storescp's answer to our own RQ (4 contexts: verification, CT in implicit LE, MR in JPEG
# baseline, an unknown SOP class): results 0, 0, 4, 3.
DCMTK_STORESCP_AC = captured("dcmtk-storescp-ac.hex")


def test_decodes_dcmtk_echoscu_request() -> None:
    (rq,) = decode_pdus(DCMTK_ECHOSCU_RQ)
    assert (rq.called_ae_title, rq.calling_ae_title) == ("ANY-SCP", "ECHOSCU")
    assert rq.presentation_contexts == (
        PresentationContextRQ(context_id=1, abstract_syntax=VERIFICATION, transfer_syntaxes=(IMPLICIT_LE,)),
    )
    info = rq.user_information
    assert info.max_pdu_length == 16384
    assert info.implementation_class_uid.uid == "1.2.276.0.7230010.3.0.3.6.7"
    assert info.implementation_version_name.name == "OFFIS_DCMTK_367"
    # Re-encoded, only the reserved byte differs (we send 00H).
    assert rq.encode() == DCMTK_ECHOSCU_RQ.replace(bytes.fromhex("0100ff00"), bytes.fromhex("01000000"), 1)


def test_decodes_dcmtk_storescp_acceptance() -> None:
    (ac,) = decode_pdus(DCMTK_STORESCP_AC)
    assert [(pc.context_id, pc.result) for pc in ac.presentation_contexts] == [(1, 0), (3, 0), (5, 4), (7, 3)]
    assert ac.presentation_contexts[0].transfer_syntax == "1.2.840.10008.1.2.1"
    assert ac.user_information.max_pdu_length == 16384
    assert ac.encode() == DCMTK_STORESCP_AC


# --- encode refuses what would go on the wire malformed --------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: AAssociateRQ(
            called_ae_title="A" * 17, calling_ae_title="B", presentation_contexts=VERIFICATION_RQ.presentation_contexts,
            user_information=UserInformation(),
        ),
        lambda: AAssociateRQ(
            called_ae_title="   ", calling_ae_title="B", presentation_contexts=VERIFICATION_RQ.presentation_contexts,
            user_information=UserInformation(),
        ),
        lambda: AAssociateRQ(
            called_ae_title="A\\B", calling_ae_title="B", presentation_contexts=VERIFICATION_RQ.presentation_contexts,
            user_information=UserInformation(),
        ),
        lambda: AAssociateRQ(called_ae_title="A", calling_ae_title="B", presentation_contexts=(), user_information=UserInformation()),
        lambda: AAssociateRQ(
            called_ae_title="A", calling_ae_title="B",
            presentation_contexts=VERIFICATION_RQ.presentation_contexts * 2, user_information=UserInformation(),
        ),
        lambda: PresentationContextRQ(context_id=2, abstract_syntax="1.2", transfer_syntaxes=("1.2",)),
        lambda: PresentationContextRQ(context_id=1, abstract_syntax="1.02", transfer_syntaxes=("1.2",)),
        lambda: PresentationContextRQ(context_id=1, abstract_syntax="1.2", transfer_syntaxes=()),
        lambda: PresentationContextAC(context_id=1, result=0, transfer_syntax=""),
        lambda: MaximumLength(maximum_length=2**32),
        lambda: ImplementationVersionName(name="X" * 17),
        lambda: ImplementationVersionName(name=""),
        lambda: AsyncOpsWindow(max_invoked=70000),
        lambda: UserIdentityRQ(identity_type=1, positive_response_requested=False, primary_field=bytes(70000)),
        lambda: AAssociateRJ(result=256, source=1, reason=1),
        lambda: AAbort(source=-1),
        lambda: UnknownSubItem(item_type=0x7F, data=bytes(70000)),
    ],
)
def test_encode_refuses_malformed_fields(build) -> None:
    with pytest.raises(LocalProtocolError):
        build().encode()
