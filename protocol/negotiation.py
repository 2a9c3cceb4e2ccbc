"""Association negotiation (PS3.7 Annex D, PS3.8 7.1): what to answer an A-ASSOCIATE-RQ
(acceptor), what to propose and how to read the answer (requestor).

Both sides end with a `Negotiated`: the accepted presentation contexts with the roles
the local side may play on each, and the peer's limits.
"""

from collections.abc import Collection, Iterable, Mapping, Sequence

import attrs

from .codes import (
    DICOM_APPLICATION_CONTEXT,
    IMPLICIT_VR_LITTLE_ENDIAN,
    ContextResult,
    RejectACSEReason,
    RejectPresentationReason,
    RejectResult,
    RejectSource,
    RejectUserReason,
)
from .errors import LocalProtocolError
from .items import (
    AsyncOpsWindow,
    ImplementationClassUID,
    ImplementationVersionName,
    MaximumLength,
    PresentationContextAC,
    PresentationContextRQ,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UserIdentityAC,
    UserIdentityRQ,
    UserInformation,
)
from .pdu import AAssociateAC, AAssociateRJ, AAssociateRQ
from .sending_syntaxes import choose_sending_syntaxes
from .uid import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFAULT_TRANSFER_SYNTAXES = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)
DEFAULT_MAX_PDU_LENGTH = 65536
DEFAULT_MIN_PEER_PDU_LENGTH = 1024
MAX_PRESENTATION_CONTEXTS = 128  # odd IDs 1..255


# --- the outcome, for either side ------------------------------------------------------


@attrs.frozen(kw_only=True)
class AcceptedContext:
    """An accepted presentation context and the roles the local side may play on it."""

    context_id: int
    abstract_syntax: str
    transfer_syntax: str
    local_scu: bool  # we may send requests on it
    local_scp: bool  # we may answer requests on it


@attrs.frozen(kw_only=True)
class RejectedContext:
    context_id: int
    abstract_syntax: str
    result: ContextResult


@attrs.frozen(kw_only=True)
class Negotiated:
    """What an association agreed on, from the local side's point of view."""

    contexts: tuple[AcceptedContext, ...]
    rejected: tuple[RejectedContext, ...] = ()
    peer_max_pdu_length: int = 0  # 0: the peer set no limit
    peer_implementation_class_uid: str | None = None
    peer_implementation_version_name: str | None = None
    max_operations_invoked: int = 1
    max_operations_performed: int = 1

    def context(self, context_id: int) -> AcceptedContext | None:
        """The accepted context with this ID (for a received PDV), or None."""
        for context in self.contexts:
            if context.context_id == context_id:
                return context
        return None

    def find(
        self, abstract_syntax: str, *, as_scu: bool = False, as_scp: bool = False, transfer_syntax: str | None = None
    ) -> AcceptedContext | None:
        """The first accepted context for this SOP class where we may play the asked roles."""
        for context in self.contexts:
            if (
                context.abstract_syntax == abstract_syntax
                and (context.local_scu or not as_scu)
                and (context.local_scp or not as_scp)
                and (transfer_syntax is None or context.transfer_syntax == transfer_syntax)
            ):
                return context
        return None

    def can_be_scp(self, abstract_syntax: str) -> bool:
        return self.find(abstract_syntax, as_scp=True) is not None

    def can_be_scu(self, abstract_syntax: str) -> bool:
        return self.find(abstract_syntax, as_scu=True) is not None


def _requestor_roles(proposed: RoleSelection | None, reply: RoleSelection | None) -> tuple[bool, bool]:
    """(requestor may be SCU, requestor may be SCP) for one abstract syntax (PS3.7 D.3.3.4).

    Without a proposal or without a reply the defaults hold: requestor SCU, acceptor SCP.
    """
    if proposed is None or reply is None:
        return True, False
    return proposed.scu_role and reply.scu_role, proposed.scp_role and reply.scp_role


def agreement(rq: AAssociateRQ, ac: AAssociateAC, *, local_is_requestor: bool) -> Negotiated:
    """Combine a request and its acceptance into what either side may now do."""
    proposed = {pc.context_id: pc for pc in rq.presentation_contexts}
    proposed_roles = {r.sop_class_uid: r for r in rq.user_information.role_selections}
    replied_roles = {r.sop_class_uid: r for r in ac.user_information.role_selections}
    accepted, rejected = [], []
    for pc in ac.presentation_contexts:
        origin = proposed.get(pc.context_id)
        if origin is None:
            continue  # an ID we never proposed: unusable
        if not pc.accepted:
            rejected.append(RejectedContext(context_id=pc.context_id, abstract_syntax=origin.abstract_syntax, result=pc.result))
            continue
        uid = origin.abstract_syntax
        rq_scu, rq_scp = _requestor_roles(proposed_roles.get(uid), replied_roles.get(uid))
        accepted.append(
            AcceptedContext(
                context_id=pc.context_id,
                abstract_syntax=uid,
                transfer_syntax=pc.transfer_syntax,
                local_scu=rq_scu if local_is_requestor else rq_scp,
                local_scp=rq_scp if local_is_requestor else rq_scu,
            )
        )
    peer = ac.user_information if local_is_requestor else rq.user_information
    window = ac.user_information.async_ops_window
    return Negotiated(
        contexts=tuple(accepted),
        rejected=tuple(rejected),
        peer_max_pdu_length=peer.max_pdu_length,
        peer_implementation_class_uid=peer.implementation_class_uid.uid if peer.implementation_class_uid else None,
        peer_implementation_version_name=(
            peer.implementation_version_name.name if peer.implementation_version_name else None
        ),
        max_operations_invoked=window.max_invoked if window else 1,
        max_operations_performed=window.max_performed if window else 1,
    )


# --- acceptor ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SupportedContext:
    """A SOP class the node serves: transfer syntaxes in preference order (empty: the
    policy's global list) and the roles the node can play for it."""

    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...] = ()
    scp_role: bool = True
    scu_role: bool = False


@attrs.frozen(kw_only=True)
class AcceptorPolicy:
    """What the node accepts. Empty ae_titles answers to any called AE title;
    calling_ae_titles None lets any calling AE in."""

    ae_titles: frozenset[str] = frozenset()
    calling_ae_titles: frozenset[str] | None = None
    contexts: tuple[SupportedContext, ...] = ()
    transfer_syntaxes: tuple[str, ...] = DEFAULT_TRANSFER_SYNTAXES
    max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID
    implementation_version_name: str = IMPLEMENTATION_VERSION_NAME
    # A peer that can receive PDUs smaller than this is refused at negotiation: every
    # message we sent would be cut into absurdly many PDUs (one byte would leave no room
    # for a fragment at all). DCMTK's own floor is 4096.
    min_peer_pdu_length: int = DEFAULT_MIN_PEER_PDU_LENGTH


@attrs.frozen(kw_only=True)
class Decision:
    """The acceptor's answer: an AC with what was agreed, or an RJ (negotiated None)."""

    response: AAssociateAC | AAssociateRJ
    negotiated: Negotiated | None = None


def _rj(result: int, source: int, reason: int) -> Decision:
    return Decision(response=AAssociateRJ(result=result, source=source, reason=reason))


def check_association(rq: AAssociateRQ, policy: AcceptorPolicy, *, too_many_associations: bool) -> Decision | None:
    """The association-level checks: a rejection, or None to go on to the contexts."""
    permanent, user = RejectResult.REJECTED_PERMANENT, RejectSource.SERVICE_USER
    if not rq.protocol_version & 1:
        return _rj(permanent, RejectSource.SERVICE_PROVIDER_ACSE, RejectACSEReason.PROTOCOL_VERSION_NOT_SUPPORTED)
    if too_many_associations:
        return _rj(
            RejectResult.REJECTED_TRANSIENT,
            RejectSource.SERVICE_PROVIDER_PRESENTATION,
            RejectPresentationReason.LOCAL_LIMIT_EXCEEDED,
        )
    if policy.ae_titles and rq.called_ae_title not in policy.ae_titles:
        return _rj(permanent, user, RejectUserReason.CALLED_AE_TITLE_NOT_RECOGNIZED)
    if policy.calling_ae_titles is not None and rq.calling_ae_title not in policy.calling_ae_titles:
        return _rj(permanent, user, RejectUserReason.CALLING_AE_TITLE_NOT_RECOGNIZED)
    if rq.application_context_name != DICOM_APPLICATION_CONTEXT:
        return _rj(permanent, user, RejectUserReason.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
    if 0 < rq.user_information.max_pdu_length < policy.min_peer_pdu_length:
        return _rj(permanent, user, RejectUserReason.NO_REASON_GIVEN)
    return None


def negotiate(
    rq: AAssociateRQ,
    policy: AcceptorPolicy,
    *,
    too_many_associations: bool = False,
    identity_response: bytes | None = None,
    held_syntaxes: Mapping[str, Collection[str]] | None = None,
) -> Decision:
    """The acceptor's answer to rq under policy.

    too_many_associations: the caller's verdict that the node is at its limit (gives a
    transient local-limit-exceeded rejection). identity_response: the server response
    to a user identity sub-item that asked for one (None sends none). held_syntaxes:
    per SOP class, the transfer syntaxes the node stores instances in; it decides the
    syntax of contexts we will send on (sending_syntaxes.py). None: not known.
    """
    rejection = check_association(rq, policy, too_many_associations=too_many_associations)
    if rejection is not None:
        return rejection
    supported = {sc.abstract_syntax: sc for sc in policy.contexts}
    proposed_roles = {r.sop_class_uid: r for r in rq.user_information.role_selections}
    role_replies: dict[str, RoleSelection] = {}
    choices = [_choose(pc, supported.get(pc.abstract_syntax), policy, proposed_roles, role_replies) for pc in rq.presentation_contexts]
    _choose_for_sending(choices, held_syntaxes)
    results = [
        PresentationContextAC(context_id=pc.context_id, result=choice.result, transfer_syntax=choice.transfer_syntax)
        for pc, choice in zip(rq.presentation_contexts, choices, strict=True)
    ]
    rq_info = rq.user_information
    identity = None
    if rq_info.user_identity is not None and rq_info.user_identity.positive_response_requested:
        if identity_response is not None:
            identity = UserIdentityAC(server_response=identity_response)
    ac = AAssociateAC(
        called_ae_title=rq.called_ae_title,
        calling_ae_title=rq.calling_ae_title,
        application_context_name=rq.application_context_name,
        presentation_contexts=tuple(results),
        user_information=UserInformation(
            maximum_length=MaximumLength(maximum_length=policy.max_pdu_length),
            implementation_class_uid=ImplementationClassUID(uid=policy.implementation_class_uid),
            # We perform one operation at a time: answer a proposed window with 1/1.
            async_ops_window=AsyncOpsWindow(max_invoked=1, max_performed=1) if rq_info.async_ops_window else None,
            role_selections=tuple(role_replies.values()),
            implementation_version_name=ImplementationVersionName(name=policy.implementation_version_name),
            user_identity_response=identity,
        ),
    )
    return Decision(response=ac, negotiated=agreement(rq, ac, local_is_requestor=False))


@attrs.define
class _Choice:
    """One proposed context's answer in the making. `sending_candidates` is set when we
    will send on it (the requestor took the SCP role): its syntax is then chosen with the
    other contexts of its SOP class, by what the node holds."""

    abstract_syntax: str
    result: ContextResult
    transfer_syntax: str
    sending_candidates: tuple[str, ...] | None = None


def _choose(
    pc: PresentationContextRQ,
    supported: SupportedContext | None,
    policy: AcceptorPolicy,
    proposed_roles: dict[str, RoleSelection],
    role_replies: dict[str, RoleSelection],
) -> _Choice:
    """The answer for one proposed context; records the role reply it needs."""
    echo = pc.transfer_syntaxes[0]  # not significant when rejected; a valid UID for strict peers
    if supported is None:
        return _Choice(pc.abstract_syntax, ContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED, echo)
    preference = supported.transfer_syntaxes or policy.transfer_syntaxes
    transfer = next((ts for ts in preference if ts in pc.transfer_syntaxes), None)
    if transfer is None:
        return _Choice(pc.abstract_syntax, ContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED, echo)
    proposal = proposed_roles.get(pc.abstract_syntax)
    if proposal is None:
        requestor_scu, requestor_scp = True, False
    else:
        # Agree only to roles proposed that we can complement: their SCU needs our SCP.
        requestor_scu = proposal.scu_role and supported.scp_role
        requestor_scp = proposal.scp_role and supported.scu_role
        role_replies[pc.abstract_syntax] = RoleSelection(
            sop_class_uid=pc.abstract_syntax, scu_role=requestor_scu, scp_role=requestor_scp
        )
    if not (requestor_scu and supported.scp_role) and not (requestor_scp and supported.scu_role):
        return _Choice(pc.abstract_syntax, ContextResult.USER_REJECTION, echo)  # no role left that both sides can play
    if requestor_scp:
        candidates = tuple(ts for ts in pc.transfer_syntaxes if ts in preference)  # the requestor's order
        return _Choice(pc.abstract_syntax, ContextResult.ACCEPTANCE, transfer, sending_candidates=candidates)
    return _Choice(pc.abstract_syntax, ContextResult.ACCEPTANCE, transfer)


def _choose_for_sending(choices: list[_Choice], held: Mapping[str, Collection[str]] | None) -> None:
    """Give the contexts we will send on their syntax, all contexts of a SOP class together."""
    by_class: dict[str, list[_Choice]] = {}
    for choice in choices:
        if choice.sending_candidates is not None:
            by_class.setdefault(choice.abstract_syntax, []).append(choice)
    for sop_class, group in by_class.items():
        held_here = None if held is None else held.get(sop_class, ())
        picked = choose_sending_syntaxes([choice.sending_candidates or () for choice in group], held_here)
        for choice, syntax in zip(group, picked, strict=True):
            if syntax is not None:
                choice.transfer_syntax = syntax


# --- requestor --------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProposedContext:
    """A context to propose. Roles other than the default (we SCU only) are proposed
    with an SCP/SCU role selection sub-item."""

    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...] = DEFAULT_TRANSFER_SYNTAXES
    scu_role: bool = True
    scp_role: bool = False


def build_request(
    *,
    calling_ae_title: str,
    called_ae_title: str,
    contexts: Sequence[ProposedContext],
    max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
    async_ops_window: AsyncOpsWindow | None = None,
    user_identity: UserIdentityRQ | None = None,
    extended_negotiations: Iterable[SOPClassExtendedNegotiation] = (),
    common_extended_negotiations: Iterable[SOPClassCommonExtendedNegotiation] = (),
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID,
    implementation_version_name: str = IMPLEMENTATION_VERSION_NAME,
) -> AAssociateRQ:
    """An A-ASSOCIATE-RQ proposing contexts with IDs 1, 3, 5, ... in the given order."""
    if not contexts:
        raise LocalProtocolError("propose at least one presentation context")
    if len(contexts) > MAX_PRESENTATION_CONTEXTS:
        raise LocalProtocolError(f"{len(contexts)} presentation contexts; at most {MAX_PRESENTATION_CONTEXTS} fit")
    roles: dict[str, RoleSelection] = {}
    for proposal in contexts:
        if (proposal.scu_role, proposal.scp_role) != (True, False):
            role = RoleSelection(sop_class_uid=proposal.abstract_syntax, scu_role=proposal.scu_role, scp_role=proposal.scp_role)
            if roles.setdefault(proposal.abstract_syntax, role) != role:
                raise LocalProtocolError(f"contexts for {proposal.abstract_syntax} propose different roles")
    return AAssociateRQ(
        called_ae_title=called_ae_title,
        calling_ae_title=calling_ae_title,
        presentation_contexts=tuple(
            PresentationContextRQ(
                context_id=2 * index + 1, abstract_syntax=p.abstract_syntax, transfer_syntaxes=tuple(p.transfer_syntaxes)
            )
            for index, p in enumerate(contexts)
        ),
        user_information=UserInformation(
            maximum_length=MaximumLength(maximum_length=max_pdu_length),
            implementation_class_uid=ImplementationClassUID(uid=implementation_class_uid),
            async_ops_window=async_ops_window,
            role_selections=tuple(roles.values()),
            implementation_version_name=ImplementationVersionName(name=implementation_version_name),
            extended_negotiations=tuple(extended_negotiations),
            common_extended_negotiations=tuple(common_extended_negotiations),
            user_identity=user_identity,
        ),
    )


def read_acceptance(rq: AAssociateRQ, ac: AAssociateAC) -> Negotiated:
    """The requestor's view of an A-ASSOCIATE-AC answering rq."""
    return agreement(rq, ac, local_is_requestor=True)
