"""Negotiation: the acceptor's answer (AC or RJ) and the requestor's reading of an AC."""

from pathlib import Path

import attrs
import pytest

from triopacs.protocol.codes import (
    ContextResult,
    RejectACSEReason,
    RejectPresentationReason,
    RejectResult,
    RejectSource,
    RejectUserReason,
)
from triopacs.protocol.decoder import decode_pdus
from triopacs.protocol.errors import LocalProtocolError
from triopacs.protocol.items import AsyncOpsWindow, RoleSelection, UserIdentityAC, UserIdentityRQ
from triopacs.protocol.negotiation import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    AcceptorPolicy,
    ProposedContext,
    SupportedContext,
    build_request,
    negotiate,
    read_acceptance,
)
from triopacs.protocol.pdu import AAssociateAC, AAssociateRJ
from triopacs.protocol.uid import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

IMPLICIT = "1.2.840.10008.1.2"
JPEG = "1.2.840.10008.1.2.4.50"
VERIFICATION = "1.2.840.10008.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
FIND = "1.2.840.10008.5.1.4.1.2.2.1"

POLICY = AcceptorPolicy(
    ae_titles=frozenset({"PACS", "ARCHIVE"}),
    contexts=(
        SupportedContext(abstract_syntax=VERIFICATION),
        SupportedContext(abstract_syntax=CT, transfer_syntaxes=(JPEG, IMPLICIT), scu_role=True),
        SupportedContext(abstract_syntax=MR),
        SupportedContext(abstract_syntax=FIND),
    ),
    max_pdu_length=16384,
)


def captured(name: str) -> bytes:
    return bytes.fromhex((Path(__file__).parent / "captured" / name).read_text())


def rq(*contexts: ProposedContext, called: str = "PACS", calling: str = "CT01", **kw):
    return build_request(calling_ae_title=calling, called_ae_title=called, contexts=contexts, **kw)


def results(ac: AAssociateAC) -> list[tuple[int, int, str]]:
    return [(pc.context_id, pc.result, pc.transfer_syntax) for pc in ac.presentation_contexts]


def test_contexts_get_our_preferred_transfer_syntax_or_a_reason() -> None:
    request = rq(
        ProposedContext(abstract_syntax=VERIFICATION),  # global preference: explicit first
        ProposedContext(abstract_syntax=CT, transfer_syntaxes=(IMPLICIT, JPEG)),  # CT prefers JPEG
        ProposedContext(abstract_syntax=MR, transfer_syntaxes=(JPEG,)),  # MR: only the global list
        ProposedContext(abstract_syntax="1.2.3.4"),
    )
    decision = negotiate(request, POLICY)
    ac = decision.response
    assert results(ac) == [
        (1, ContextResult.ACCEPTANCE, EXPLICIT_VR_LITTLE_ENDIAN),
        (3, ContextResult.ACCEPTANCE, JPEG),
        (5, ContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED, JPEG),  # rejected: the first proposed, not tested
        (7, ContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED, EXPLICIT_VR_LITTLE_ENDIAN),
    ]
    assert (ac.called_ae_title, ac.calling_ae_title) == ("PACS", "CT01")
    info = ac.user_information
    assert info.max_pdu_length == 16384
    assert info.implementation_class_uid.uid == IMPLEMENTATION_CLASS_UID
    assert info.implementation_version_name.name == IMPLEMENTATION_VERSION_NAME
    assert info.async_ops_window is None and info.role_selections == ()
    negotiated = decision.negotiated
    assert [c.context_id for c in negotiated.contexts] == [1, 3]
    assert [(r.context_id, r.result) for r in negotiated.rejected] == [(5, 4), (7, 3)]
    assert negotiated.find(CT).transfer_syntax == JPEG and negotiated.can_be_scp(CT) and not negotiated.can_be_scu(CT)
    assert negotiated.peer_max_pdu_length == 65536
    assert negotiated.peer_implementation_version_name == IMPLEMENTATION_VERSION_NAME


def test_the_answer_encodes_and_decodes() -> None:
    request = rq(ProposedContext(abstract_syntax=VERIFICATION), ProposedContext(abstract_syntax="1.2.3.4"))
    ac = negotiate(request, POLICY).response
    assert decode_pdus(ac.encode()) == [ac]


def test_role_selection_for_c_get() -> None:
    # A C-GET SCU proposes to be SCP for CT storage too, so that we can send it the images.
    request = rq(ProposedContext(abstract_syntax=CT, transfer_syntaxes=(IMPLICIT,), scu_role=True, scp_role=True))
    assert request.user_information.role_selections == (RoleSelection(sop_class_uid=CT, scu_role=True, scp_role=True),)
    decision = negotiate(request, POLICY)
    assert decision.response.user_information.role_selections == (RoleSelection(sop_class_uid=CT, scu_role=True, scp_role=True),)
    ours = decision.negotiated.find(CT)
    assert ours.local_scp and ours.local_scu
    theirs = read_acceptance(request, decision.response).find(CT)
    assert theirs.local_scu and theirs.local_scp


def test_role_we_cannot_complement_is_refused() -> None:
    # The requestor wants to be SCP only for MR, but we cannot act as SCU for MR.
    request = rq(ProposedContext(abstract_syntax=MR, scu_role=False, scp_role=True))
    decision = negotiate(request, POLICY)
    assert results(decision.response)[0][1] == ContextResult.USER_REJECTION
    assert decision.response.user_information.role_selections == (RoleSelection(sop_class_uid=MR, scu_role=False, scp_role=False),)
    assert decision.negotiated.contexts == ()


def test_unanswered_role_proposal_leaves_the_defaults() -> None:
    request = rq(ProposedContext(abstract_syntax=CT, transfer_syntaxes=(IMPLICIT,), scu_role=True, scp_role=True))
    ac = negotiate(request, POLICY).response
    silent = attrs.evolve(ac, user_information=attrs.evolve(ac.user_information, role_selections=()))
    context = read_acceptance(request, silent).find(CT)
    assert context.local_scu and not context.local_scp


def test_async_window_answered_one_one() -> None:
    request = rq(ProposedContext(abstract_syntax=VERIFICATION), async_ops_window=AsyncOpsWindow(max_invoked=5, max_performed=5))
    decision = negotiate(request, POLICY)
    assert decision.response.user_information.async_ops_window == AsyncOpsWindow(max_invoked=1, max_performed=1)
    assert read_acceptance(request, decision.response).max_operations_invoked == 1


def test_user_identity_response_only_when_asked_for_and_given() -> None:
    asks = UserIdentityRQ(identity_type=1, positive_response_requested=True, primary_field=b"alice")
    request = rq(ProposedContext(abstract_syntax=VERIFICATION), user_identity=asks)
    assert negotiate(request, POLICY, identity_response=b"").response.user_information.user_identity_response == UserIdentityAC()
    assert negotiate(request, POLICY).response.user_information.user_identity_response is None
    quiet = rq(ProposedContext(abstract_syntax=VERIFICATION), user_identity=attrs.evolve(asks, positive_response_requested=False))
    assert negotiate(quiet, POLICY, identity_response=b"x").response.user_information.user_identity_response is None


@pytest.mark.parametrize(
    ("change", "kwargs", "expected"),
    [
        ({"protocol_version": 2}, {}, (RejectResult.REJECTED_PERMANENT, RejectSource.SERVICE_PROVIDER_ACSE, RejectACSEReason.PROTOCOL_VERSION_NOT_SUPPORTED)),
        ({}, {"too_many_associations": True}, (RejectResult.REJECTED_TRANSIENT, RejectSource.SERVICE_PROVIDER_PRESENTATION, RejectPresentationReason.LOCAL_LIMIT_EXCEEDED)),
        ({"called_ae_title": "OTHER"}, {}, (RejectResult.REJECTED_PERMANENT, RejectSource.SERVICE_USER, RejectUserReason.CALLED_AE_TITLE_NOT_RECOGNIZED)),
        ({"application_context_name": "1.2.3"}, {}, (RejectResult.REJECTED_PERMANENT, RejectSource.SERVICE_USER, RejectUserReason.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)),
    ],
)
def test_rejections(change, kwargs, expected) -> None:
    request = attrs.evolve(rq(ProposedContext(abstract_syntax=VERIFICATION)), **change)
    decision = negotiate(request, POLICY, **kwargs)
    assert decision.response == AAssociateRJ(result=expected[0], source=expected[1], reason=expected[2])
    assert decision.negotiated is None


def test_calling_ae_allow_list() -> None:
    policy = attrs.evolve(POLICY, calling_ae_titles=frozenset({"CT01"}))
    assert isinstance(negotiate(rq(ProposedContext(abstract_syntax=VERIFICATION)), policy).response, AAssociateAC)
    decision = negotiate(rq(ProposedContext(abstract_syntax=VERIFICATION), calling="MR01"), policy)
    assert decision.response == AAssociateRJ(result=1, source=1, reason=RejectUserReason.CALLING_AE_TITLE_NOT_RECOGNIZED)


def test_any_called_title_without_our_titles() -> None:
    policy = attrs.evolve(POLICY, ae_titles=frozenset())
    assert isinstance(negotiate(rq(ProposedContext(abstract_syntax=VERIFICATION), called="WHATEVER"), policy).response, AAssociateAC)


def test_build_request() -> None:
    request = rq(*[ProposedContext(abstract_syntax=VERIFICATION)] * 3, max_pdu_length=1234)
    assert [pc.context_id for pc in request.presentation_contexts] == [1, 3, 5]
    assert request.user_information.max_pdu_length == 1234
    assert request.user_information.implementation_class_uid.uid == IMPLEMENTATION_CLASS_UID
    with pytest.raises(LocalProtocolError):
        rq(*[ProposedContext(abstract_syntax=VERIFICATION)] * 129)
    with pytest.raises(LocalProtocolError):
        rq()
    with pytest.raises(LocalProtocolError):
        rq(ProposedContext(abstract_syntax=CT, scp_role=True), ProposedContext(abstract_syntax=CT, scu_role=False, scp_role=True))


def test_negotiated_lookups() -> None:
    request = rq(
        ProposedContext(abstract_syntax=CT, transfer_syntaxes=(JPEG,)),
        ProposedContext(abstract_syntax=CT, transfer_syntaxes=(IMPLICIT,)),
    )
    negotiated = read_acceptance(request, negotiate(request, POLICY).response)
    assert negotiated.find(CT, transfer_syntax=IMPLICIT).context_id == 3
    assert negotiated.find(CT).context_id == 1
    assert negotiated.find(CT, as_scp=True) is None
    assert negotiated.context(3).transfer_syntax == IMPLICIT and negotiated.context(5) is None
    assert negotiated.find(MR) is None


# The AC that DCMTK 3.6.7 storescp sent to exactly this request (see captured/README.md).
DCMTK_STORESCP_AC = captured("dcmtk-storescp-ac.hex")


def test_reading_a_dcmtk_acceptance() -> None:
    request = build_request(
        calling_ae_title="TRIOSCU",
        called_ae_title="STORESCP",
        max_pdu_length=16384,
        async_ops_window=AsyncOpsWindow(max_invoked=1, max_performed=1),
        contexts=[
            ProposedContext(abstract_syntax=VERIFICATION),
            ProposedContext(abstract_syntax=CT, transfer_syntaxes=(IMPLICIT,)),
            ProposedContext(abstract_syntax=MR, transfer_syntaxes=(JPEG,)),
            ProposedContext(abstract_syntax="1.2.3.4.5.6"),
        ],
    )
    (ac,) = decode_pdus(DCMTK_STORESCP_AC)
    negotiated = read_acceptance(request, ac)
    assert negotiated.find(VERIFICATION).transfer_syntax == EXPLICIT_VR_LITTLE_ENDIAN
    assert negotiated.find(CT).context_id == 3 and negotiated.can_be_scu(CT)
    assert negotiated.find(MR) is None
    assert [(r.abstract_syntax, r.result) for r in negotiated.rejected] == [
        (MR, ContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED), ("1.2.3.4.5.6", ContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED),
    ]
    assert negotiated.peer_max_pdu_length == 16384
    assert negotiated.peer_implementation_version_name == "OFFIS_DCMTK_367"
    assert (negotiated.max_operations_invoked, negotiated.max_operations_performed) == (1, 1)  # no reply: the default
