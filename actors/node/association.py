"""One accepted DICOM association as an actor (the node's acceptor side).

Everything it reacts to arrives through its mailbox, one message at a time:

- what its link reads from the peer, as `PeerEvent`s (peer.py): the link's reader task
  posts them and waits while the mailbox is full, which is the TCP backpressure;
- `OperationFinished` from the operations it started;
- the node's requests: `AbortAssociation`, `DropConnection` (the listener, for a
  connection that never asked to associate), `DescribeAssociation`.

It answers the A-ASSOCIATE-RQ (our AE title, the calling AE allow-list, admission by the
listener against the association limit, the presentation contexts the services offer),
then turns each DIMSE request into an operation: the service that offers it runs in the
actor's nursery - a C-STORE's commit, a C-FIND's pages, C-MOVE and C-GET sub-operations -
and reports back with `OperationFinished`. One runs at a time (asynchronous operations
window 1); a request arriving meanwhile waits its turn. C-CANCEL and the C-STORE
responses of C-GET sub-operations go to the running operation; C-ECHO is answered at
once. A large dataset still streams from the link straight into its sink (a C-STORE's
file); the `PeerMessage` that reaches the mailbox names the sink.

Operations act under a name of their own (`<path>/operation`), so a trace tells what the
association decided from what its operations did; a replay rebuilds the association
without a socket (`AssociationActor.for_replay`), feeds it the recorded inputs - the
operations' reports among them - and compares what it sent: messages, and its effects
on the peer. It is a temporary child of /node/associations: when the connection ends, so
does the actor, and whatever goes wrong here ends only this association.
"""

from collections import deque
from collections.abc import Collection, Iterable, Mapping

import attrs
import structlog
import trio

from ...protocol.association import Acceptor
from ...protocol.machine import State
from ...protocol.commands import (
    CCancelRQ,
    DimseMessage,
    DimseRequest,
    DimseResponse,
    dataset_out_of_place,
    missing_required,
)
from ...protocol.elements import CHECKERS, VR
from ...protocol.errors import LocalProtocolError
from ...protocol.events import Aborted, AssociationRequested, ConnectionClosed, ReleaseRequested
from ...protocol.codes import RejectResult, RejectSource
from ...protocol.negotiation import DEFAULT_MIN_PEER_PDU_LENGTH, AcceptorPolicy, SupportedContext, negotiate
from ...protocol.pdu import AAssociateRJ
from ...protocol.status import Status
from ...protocol.structure import DEFAULT_MAX_DEPTH
from ...protocol.uid import is_valid_uid
from ..runtime.actor import Actor
from ..runtime.errors import ActorError
from ...client.link import DatasetSink, DimseLink, Incoming, LinkClosed, MemorySink, MessageReceived, ProtocolViolation
from .activity import AssociationClosed, AssociationOpened, AssociationRejected
from .listener import AdmitAssociation, Admission, ConnectionEnded, DropConnection
from ..runtime.mailbox import current_actor
from ..runtime.messages import message
from .peer import (
    Peer,
    PeerAborted,
    PeerBrokeProtocol,
    PeerClosed,
    PeerEvent,
    PeerMessage,
    PeerRequestedAssociation,
    PeerRequestedRelease,
)
from .outgoing import Outgoing, PeerUnavailable, SendRequest, send_and_wait
from ...storage import audit_records
from .audit import audit
from .security import SECURITY_PATH, AccessVerdict, CheckAssociation
from .services.base import RunningOperation, Service, Session


@attrs.frozen(kw_only=True)
class AssociationSettings:
    ae_title: str
    calling_ae_titles: frozenset[str] | None = None
    transfer_syntaxes: tuple[str, ...] = ()
    max_pdu_length: int = 65536
    artim_timeout: float = 30.0
    idle_timeout: float = 300.0
    dimse_timeout: float = 60.0
    min_peer_pdu_length: int = DEFAULT_MIN_PEER_PDU_LENGTH
    max_sequence_depth: int = DEFAULT_MAX_DEPTH
    # [access] on: the security actor decides who may associate and what each may do.
    access_control: bool = False
    security_path: str = SECURITY_PATH
    audit_path: str | None = None  # the audit actor, when [audit] is on
    audit_wait: bool = True  # answer only once the record is on disk ([audit] sync = fsync)


class ServiceSet:
    """The services offered on every association, and who serves which request: by its
    type and the SOP class of its context (a C-FIND may be a query or a worklist query)."""

    def __init__(self, services: Iterable[Service]) -> None:
        self.services = tuple(services)
        self._by_request: dict[type, list[Service]] = {}
        for service in self.services:
            for request in service.requests:
                self._by_request.setdefault(request, []).append(service)
        self._offered = {id(s): frozenset(c.abstract_syntax for c in s.contexts()) for s in self.services}
        self._contexts = self._merge_contexts()

    def offers(self, service: Service, abstract_syntax: str) -> bool:
        return abstract_syntax in self._offered[id(service)]

    def for_request(self, request_type: type, abstract_syntax: str | None = None) -> Service | None:
        """The service for this request on a context of this SOP class (None: any); when
        none offers the class, the first one serving the request (it refuses the class)."""
        candidates = self._by_request.get(request_type, ())
        for service in candidates:
            if abstract_syntax is None or self.offers(service, abstract_syntax):
                return service
        return candidates[0] if candidates else None

    def contexts(self) -> tuple[SupportedContext, ...]:
        return self._contexts

    async def held_syntaxes(self, ctx, sop_classes: Collection[str]) -> Mapping[str, Collection[str]] | None:
        """What the services that send on storage contexts hold (see Service.held_syntaxes)."""
        for service in self.services:
            held = await service.held_syntaxes(ctx, sop_classes)
            if held is not None:
                return held
        return None

    def _merge_contexts(self) -> tuple[SupportedContext, ...]:
        merged: dict[str, SupportedContext] = {}
        for service in self.services:
            for context in service.contexts():
                known = merged.get(context.abstract_syntax)
                if known is not None:
                    context = attrs.evolve(
                        known, scp_role=known.scp_role or context.scp_role, scu_role=known.scu_role or context.scu_role
                    )
                merged[context.abstract_syntax] = context
        return tuple(merged.values())


_UID_FIELDS = (
    ("affected_sop_class_uid", "Affected SOP Class UID", Status.SOP_CLASS_NOT_SUPPORTED),
    ("requested_sop_class_uid", "Requested SOP Class UID", Status.SOP_CLASS_NOT_SUPPORTED),
    ("affected_sop_instance_uid", "Affected SOP Instance UID", Status.INVALID_SOP_INSTANCE),
    ("requested_sop_instance_uid", "Requested SOP Instance UID", Status.INVALID_SOP_INSTANCE),
)


_MISSING_STATUS = {
    **{field: status for field, _label, status in _UID_FIELDS},
    "event_type_id": Status.NO_SUCH_EVENT_TYPE,
    "action_type_id": Status.NO_SUCH_ACTION_TYPE,
}


def uid_refusal(request: DimseRequest) -> tuple[int, str] | None:
    """The status and comment for a request naming a UID that breaks the UID grammar
    (the decoder lets any text through, so that this is answered, not aborted), or
    lacking one an N-request needs (the decoder lets that through too)."""
    for field in missing_required(request):
        return _MISSING_STATUS[field], f"the request has no {field.replace('_', ' ')}"
    for field, label, status in _UID_FIELDS:
        value = getattr(request, field, None)
        if value is not None and not is_valid_uid(value):
            return status, f"{label} is not a valid UID: {value}"
    return None


def _echoed_uids(request: DimseRequest, response_type: type) -> dict[str, str]:
    """The request's affected SOP class/instance UIDs for its response, where the
    response has the field and the value can be sent (a UID's characters, at most 64)."""
    fields = attrs.fields_dict(response_type)
    sendable = CHECKERS[VR.UI]
    echoed = {}
    for name in ("affected_sop_class_uid", "affected_sop_instance_uid"):
        value = getattr(request, name, None)
        if name in fields and value is not None and sendable(value) is None:
            echoed[name] = value
    return echoed


@message("association.operation-finished")
class OperationFinished:
    """An operation the association started has ended (its responses are sent)."""

    message_id: int


@message("association.abort")
class AbortAssociation:
    reason: str = ""


@message("association.describe")
class DescribeAssociation:
    pass


@message("association.description")
class AssociationDescription:
    association_id: str
    peer: str
    calling_ae_title: str
    state: str
    bytes_received: int
    bytes_sent: int
    called_ae_title: str = ""
    contexts: tuple[str, ...] = ()  # the abstract syntaxes accepted
    seconds: float = 0.0  # since the connection was accepted
    tls_subject: str | None = None  # the peer certificate's subject (TLS); None: plain TCP
    username: str = ""  # the user identity the peer proved, if any


class AssociationActor(Actor):
    accepts = (
        PeerRequestedAssociation,
        PeerMessage,
        PeerRequestedRelease,
        PeerAborted,
        PeerBrokeProtocol,
        PeerClosed,
        OperationFinished,
        AbortAssociation,
        DescribeAssociation,
        DropConnection,
        SendRequest,
    )

    def __init__(
        self,
        *,
        stream: trio.SocketStream | None,
        association_id: str,
        peer: str,
        settings: AssociationSettings,
        services: ServiceSet,
        listener: str | None = None,
        tls_subject: str | None = None,
    ) -> None:
        self.stream = stream  # None in a replay: no socket, inputs come from the trace
        self.tls_subject = tls_subject  # the peer certificate's subject ("" none sent); None: plain TCP
        self.association_id = association_id
        self.peer_address = peer
        self.settings = settings
        self.services = services
        self.listener = listener  # its path: it counts us against the association limit; None: no limit
        self._ended_told = False
        self.session: Session | None = None
        self.calling_ae_title = ""
        self.link: DimseLink | None = None
        self._phase = "connected"  # -> associated -> ended
        self._operation: RunningOperation | None = None
        # Behind the running operation: the peer's requests, and ours (SendRequest).
        self._waiting: deque[PeerMessage | Outgoing] = deque()
        self._handling: trio.lowlevel.Task | None = None
        self._own_events: deque[PeerEvent] = deque()  # what our own primitives caused
        self._outcome = "closed"  # -> released or aborted, for AssociationClosed
        self._began = 0.0
        self.username = ""  # the user identity the peer proved
        self.permissions: frozenset[str] | None = None  # what it may do; None: anything (access control off)

    @classmethod
    def for_replay(
        cls,
        *,
        association_id: str,
        peer: str,
        settings: AssociationSettings,
        services: ServiceSet,
        listener: str | None = None,
    ) -> "AssociationActor":
        """An association without a socket, to replay a trace of one: the recorded inputs
        drive it, its operations are not run (their reports are among the inputs)."""
        return cls(stream=None, association_id=association_id, peer=peer, settings=settings, services=services, listener=listener)

    async def on_start(self) -> None:
        self._began = trio.current_time()
        structlog.contextvars.bind_contextvars(association=self.association_id, peer=self.peer_address)
        self.log = self.ctx.log.bind(association=self.association_id, peer=self.peer_address)
        if self.stream is not None:
            self.link = DimseLink(
                self.stream,
                Acceptor(max_pdata_length=self.settings.max_pdu_length),
                artim_timeout=self.settings.artim_timeout,
                idle_timeout=self.settings.idle_timeout,
                sink_for=self._sink_for,
                log=self.log,
                deliver=self._post,
            )
        self.peer = Peer(self.link, self.ctx)
        if self.link is not None:
            await self.ctx.nursery.start(self._read, self.link)

    async def _read(self, link: DimseLink, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        current_actor.set(f"{self.ctx.path}/peer")  # what it posts comes from the peer
        await link.run(task_status=task_status)

    async def on_stop(self) -> None:
        self._tell_listener_we_ended()
        self._publish_closed()
        if self.link is None:
            return
        if self.link.association.is_established:
            await self.link.abort()  # we are going away mid-association: tell the peer
        await self.link.stream.aclose()

    def _tell_listener_we_ended(self) -> None:
        if self.listener is None or self._ended_told:
            return
        self._ended_told = True
        try:
            self.ctx.lookup(self.listener).send_nowait(ConnectionEnded(association_id=self.association_id))
        except ActorError:
            pass  # the listener is restarting: it counts the running associations afresh

    def _publish_closed(self) -> None:
        if self.session is None:
            return  # never established: AssociationRejected, or a connection that never asked
        self.ctx.publish(AssociationClosed(
            association_id=self.association_id, outcome=self._outcome,
            bytes_received=self.link.bytes_received if self.link is not None else 0,
            bytes_sent=self.link.bytes_sent if self.link is not None else 0,
            seconds=trio.current_time() - self._began,
        ))

    # --- the mailbox -------------------------------------------------------------------

    async def _post(self, event: Incoming) -> None:
        """The link's events, as mailbox messages. What our own primitives cause (a local
        abort closing the connection) is handled right after the message that issued
        them, not posted: the mailbox may be full, and we would wait on ourselves."""
        if isinstance(event, AssociationRequested) and self.link.association.state is not State.STA3:
            # What came with the request in the same read already ended it (a bad PDU,
            # an abort, a close): nothing to answer; the next event says how it ended.
            self.log.info("the peer left during negotiation", state=self.link.association.state.name)
            return
        posted = _peer_event(event)
        if posted is None:
            return
        if trio.lowlevel.current_task() is self._handling:
            self._own_events.append(posted)
        else:
            await self.ctx.ref.send(posted)

    async def handle(self, message):
        self._handling = trio.lowlevel.current_task()
        try:
            result = await self._handle(message)
            while self._own_events:
                await self._handle(self._own_events.popleft())
            return result
        finally:
            self._handling = None

    async def _handle(self, message):
        match message:
            case PeerRequestedAssociation(request=request):
                await self._answer(request)
            case PeerMessage():
                await self._dispatch(message)
            case OperationFinished(message_id=message_id):
                self._operation_finished(message_id)
            case PeerRequestedRelease():
                self._outcome = "released"
                self._cancel_operation()
                await self.peer.respond_release()
                self.log.info("association released")
            case PeerAborted(source=source, reason=reason, by_peer=by_peer):
                self._outcome = "aborted"
                self._cancel_operation()
                self.log.info("association aborted", source=source, reason=reason, by_peer=by_peer)
            case PeerBrokeProtocol(error=error):
                self._outcome = "aborted"
                self._cancel_operation()
                self.log.warning("association aborted: the peer broke the protocol", error=error)
            case PeerClosed():
                self._phase = "ended"
                self._cancel_operation()
                self._tell_listener_we_ended()
                self.ctx.stop()
            case AbortAssociation(reason=reason):
                self._outcome = "aborted"
                self.log.warning("aborting on request", reason=reason)
                await self.peer.abort()
            case DropConnection(reason=reason):
                if self._phase == "connected":  # still no A-ASSOCIATE-RQ
                    self.log.info("closing the connection", reason=reason)
                    await self.peer.close()
            case SendRequest():
                self._send_request(Outgoing(request=message, reply=self.ctx.defer_reply()))
            case DescribeAssociation():
                return AssociationDescription(
                    association_id=self.association_id,
                    peer=self.peer_address,
                    calling_ae_title=self.calling_ae_title,
                    state=self.link.association.state.name if self.link is not None else self._phase,
                    bytes_received=self.link.bytes_received if self.link is not None else 0,
                    bytes_sent=self.link.bytes_sent if self.link is not None else 0,
                    called_ae_title=self.session.called_ae_title if self.session is not None else "",
                    contexts=_abstract_syntaxes(self.session),
                    seconds=trio.current_time() - self._began,
                    tls_subject=self.tls_subject,
                    username=self.username,
                )

    # --- negotiation -------------------------------------------------------------------

    async def _answer(self, request) -> None:
        self._phase = "associated"
        self.calling_ae_title = request.calling_ae_title.strip()
        policy = AcceptorPolicy(
            ae_titles=frozenset({self.settings.ae_title}),
            calling_ae_titles=self.settings.calling_ae_titles,
            contexts=self.services.contexts(),
            transfer_syntaxes=self.settings.transfer_syntaxes or AcceptorPolicy().transfer_syntaxes,
            max_pdu_length=self.settings.max_pdu_length,
            min_peer_pdu_length=self.settings.min_peer_pdu_length,
        )
        admission = await self._admission()
        verdict = await self._access(request) if admission.admitted else None
        # A requestor that takes the SCP role for some SOP classes (a C-GET) will receive
        # on those contexts: what we hold decides their transfer syntaxes.
        sending = {role.sop_class_uid for role in request.user_information.role_selections if role.scp_role}
        held = await self.services.held_syntaxes(self.ctx, sending) if sending and admission.admitted else None
        decision = negotiate(
            request, policy, too_many_associations=not admission.admitted, held_syntaxes=held,
            # A checked username (and passcode) is answered with an empty server response.
            identity_response=b"" if verdict is not None and verdict.identity_accepted else None,
        )
        why = admission.reason
        if decision.negotiated is not None and verdict is not None and not verdict.allowed:
            decision = attrs.evolve(decision, negotiated=None, response=AAssociateRJ(
                result=RejectResult.REJECTED_PERMANENT, source=RejectSource.SERVICE_USER, reason=verdict.reject_reason
            ))
            why = verdict.reason
        try:
            if decision.negotiated is None:
                rj = decision.response
                self.log.warning(
                    "association rejected",
                    calling_ae=self.calling_ae_title,
                    called_ae=request.called_ae_title.strip(),
                    result=rj.result,
                    source=rj.source,
                    reason=rj.reason,
                    why=why or None,
                    username=_identity_name(request) or None,
                )
                await audit(self.ctx, audit_records.association(
                    self.settings.ae_title, self._audit_peer(_identity_name(request)), accepted=False,
                    reason=why or f"result {rj.result}, source {rj.source}, reason {rj.reason}",
                ), self.settings.audit_path)
                await self.peer.reject(rj)
                self.ctx.publish(AssociationRejected(
                    association_id=self.association_id, peer=self.peer_address, calling_ae_title=self.calling_ae_title,
                    reason=why or f"result {rj.result}, source {rj.source}, reason {rj.reason}",
                    called_ae_title=request.called_ae_title.strip(), tls_subject=self.tls_subject,
                    username=_identity_name(request),
                ))
                return
            if verdict is not None:
                self.username, self.permissions = verdict.username, frozenset(verdict.permissions)
            self.session = Session(
                association_id=self.association_id,
                link=self.peer,
                negotiated=decision.negotiated,
                calling_ae_title=self.calling_ae_title,
                called_ae_title=request.called_ae_title.strip(),
                peer=self.peer_address,
                ctx=self.ctx,
                settings=self.settings,
            )
            self.session.username, self.session.tls_subject = self.username, self.tls_subject
            structlog.contextvars.bind_contextvars(calling_ae=self.calling_ae_title)
            self.log = self.log.bind(calling_ae=self.calling_ae_title)
            await self.session.audit(audit_records.association(self.settings.ae_title, self.session.audit_peer(), accepted=True))
            await self.peer.accept(decision.response)
            self.log.info("association accepted", contexts=len(decision.negotiated.contexts))
            self.ctx.publish(AssociationOpened(
                association_id=self.association_id, peer=self.peer_address, calling_ae_title=self.calling_ae_title,
                called_ae_title=self.session.called_ae_title, contexts=_abstract_syntaxes(self.session),
                tls_subject=self.tls_subject, username=self.username,
            ))
        except LocalProtocolError:
            # The peer aborted or closed while we decided (its next read): ordinary.
            self.log.info("the peer left during negotiation")

    def _audit_peer(self, username: str = "") -> audit_records.Peer:
        return audit_records.Peer(
            ae_title=self.calling_ae_title, host=self.peer_address.rsplit(":", 1)[0], username=username, tls_subject=self.tls_subject
        )

    async def _access(self, request) -> AccessVerdict | None:
        """The security actor's verdict on this peer (None: access control is off)."""
        if not self.settings.access_control:
            return None
        identity = request.user_information.user_identity
        check = CheckAssociation(
            calling_ae_title=self.calling_ae_title,
            host=self.peer_address.rsplit(":", 1)[0],
            identity_type=identity.identity_type if identity is not None else None,
            username=_identity_name(request),
            passcode=identity.secondary_field.decode("utf-8", "replace") if identity is not None else "",
        )
        try:
            return await self.ctx.lookup(self.settings.security_path).ask(check, timeout=self.settings.artim_timeout)
        except ActorError as error:
            return AccessVerdict(allowed=False, reason=f"access control is not available: {error}")

    async def _admission(self) -> Admission:
        if self.listener is None:
            return Admission(admitted=True)
        try:
            return await self.ctx.lookup(self.listener).ask(AdmitAssociation(association_id=self.association_id))
        except ActorError as error:
            return Admission(admitted=False, reason=f"the listener cannot admit associations now: {error}")

    def _sink_for(self, context_id: int, message: DimseMessage) -> DatasetSink:
        """Where the link puts the dataset of a message now arriving (its reader calls
        this; the session exists, since a peer sends nothing before our accept)."""
        service = self.services.for_request(type(message), self._abstract_syntax(context_id))
        if service is None:
            return MemorySink()
        return service.sink_for(self.session, context_id, message)

    def _abstract_syntax(self, context_id: int) -> str | None:
        accepted = self.session.negotiated.context(context_id) if self.session is not None else None
        return accepted.abstract_syntax if accepted is not None else None

    # --- requests and operations -------------------------------------------------------

    async def _dispatch(self, received: PeerMessage) -> None:
        message = received.message
        operation = self._operation
        if isinstance(message, CCancelRQ):
            if operation is not None and operation.message_id == message.message_id_being_responded_to:
                operation.cancel()
            else:
                self._waiting = deque(
                    r for r in self._waiting
                    if not isinstance(r, PeerMessage) or r.message.message_id != message.message_id_being_responded_to
                )
            return
        if isinstance(message, DimseResponse):
            if operation is not None:
                operation.route(message)
            else:
                self.log.warning("unexpected response", message=type(message).__name__)
            return
        if self.session is None or not isinstance(message, DimseRequest):
            self.log.warning("a request outside an association", message=type(message).__name__)
            return
        bad_uid = uid_refusal(message)
        if bad_uid is not None:
            await self._refuse(received, *bad_uid)
            return
        service = self.services.for_request(type(message), self._abstract_syntax(received.context_id))
        if service is None or not self._serves_context(service, received.context_id):
            await self._refuse(received, Status.UNRECOGNIZED_OPERATION if service is None else Status.SOP_CLASS_NOT_SUPPORTED)
            return
        if self.permissions is not None and service.permission is not None and service.permission not in self.permissions:
            who = f"user {self.username!r}" if self.username else f"calling AE {self.calling_ae_title!r}"
            reason = f"{who} may not {service.permission}"
            await self.session.audit(audit_records.not_authorized(
                self.settings.ae_title, self.session.audit_peer(), operation=type(message).__name__,
                sop_class_uid=self._abstract_syntax(received.context_id) or "", reason=reason,
            ))
            await self._refuse(received, Status.NOT_AUTHORIZED, reason)
            return
        misplaced = dataset_out_of_place(message)
        if misplaced is not None:
            await self._refuse(received, Status.MISTYPED_ARGUMENT, misplaced)
            return
        if not service.operation:
            await self._run_guarded(service, received, None)
        elif operation is not None:
            self._waiting.append(received)  # one operation at a time (asynchronous window 1)
        else:
            self._start(service, received)

    def _start(self, service: Service, received: PeerMessage) -> None:
        self._operation = RunningOperation(received.message.message_id)
        self.ctx.record_effect("operation", {"started": type(service).__name__, "message_id": received.message.message_id})
        if self.link is not None:  # in a replay the recorded OperationFinished stands for the run
            self.ctx.nursery.start_soon(self._run_operation, service, received, self._operation)

    async def _run_operation(self, service: Service, received: PeerMessage, operation: RunningOperation) -> None:
        current_actor.set(f"{self.ctx.path}/operation")  # what it sends and does is its own
        try:
            await self._run_guarded(service, received, operation)
        except LinkClosed:
            pass  # the association ended under the operation; nothing left to tell
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await self.ctx.ref.send(OperationFinished(message_id=operation.message_id))
                except ActorError:
                    pass  # the association is stopping

    def _operation_finished(self, message_id: int) -> None:
        if self._operation is None or self._operation.message_id != message_id:
            return
        self._operation = None
        while self._waiting and self._operation is None:
            received = self._waiting.popleft()
            if isinstance(received, Outgoing):
                self._start_outgoing(received)
                continue
            service = self.services.for_request(type(received.message), self._abstract_syntax(received.context_id))
            assert service is not None
            self._start(service, received)

    # --- requests of ours (a storage commitment report) ---------------------------------

    def _send_request(self, outgoing: Outgoing) -> None:
        if self.session is None or self._phase != "associated":
            outgoing.reply.fail(PeerUnavailable("the association is not established"))
        elif self._operation is not None:
            self._waiting.append(outgoing)
        else:
            self._start_outgoing(outgoing)

    def _start_outgoing(self, outgoing: Outgoing) -> None:
        assert self.session is not None
        message_id = self.session.next_message_id()
        self._operation = RunningOperation(message_id)
        self.ctx.record_effect("operation", {"started": "SendRequest", "message_id": message_id})
        if self.link is not None:  # in a replay the recorded OperationFinished stands for the run
            self.ctx.nursery.start_soon(self._run_outgoing, outgoing, self._operation)

    async def _run_outgoing(self, outgoing: Outgoing, operation: RunningOperation) -> None:
        current_actor.set(f"{self.ctx.path}/operation")
        assert self.session is not None
        accepted = self.session.negotiated.context(outgoing.request.context_id)
        try:
            if accepted is None:
                outgoing.reply.fail(PeerUnavailable(f"no presentation context {outgoing.request.context_id}"))
                return
            await send_and_wait(
                self.peer, outgoing, operation, transfer_syntax=accepted.transfer_syntax, timeout=self.settings.dimse_timeout
            )
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await self.ctx.ref.send(OperationFinished(message_id=operation.message_id))
                except ActorError:
                    pass  # the association is stopping

    async def _run_guarded(self, service: Service, received: PeerMessage, operation: RunningOperation | None) -> None:
        """Run a service; a bug in it costs this one request a failure status, not the association."""
        assert self.session is not None
        try:
            await service.handle(self.session, received, operation)
        except LinkClosed:
            raise
        except Exception:
            self.log.exception("service failed", service=type(service).__name__, request=type(received.message).__name__)
            await self._refuse(received, Status.PROCESSING_FAILURE, "internal error; see the node's log")

    def _serves_context(self, service: Service, context_id: int) -> bool:
        assert self.session is not None
        accepted = self.session.negotiated.context(context_id)
        return accepted is not None and self.services.offers(service, accepted.abstract_syntax)

    def _cancel_operation(self) -> None:
        for waiting in self._waiting:
            if isinstance(waiting, Outgoing):
                waiting.reply.fail(PeerUnavailable("the association ended before the request was sent"))
        self._waiting.clear()
        if self._operation is not None:
            self._operation.cancel()

    async def _refuse(self, received: PeerMessage, status: int, comment: str | None = None) -> None:
        message = received.message
        if received.dataset is not None:
            await received.dataset.discard()
        self.log.warning("request refused", request=type(message).__name__, status=hex(status), reason=comment)
        response_type = getattr(message, "response_type", None)
        if response_type is not None:
            await self.peer.send(
                response_type(
                    message_id_being_responded_to=message.message_id,
                    status=status,
                    error_comment=comment,
                    **_echoed_uids(message, response_type),
                ),
                received.context_id,
            )


def _identity_name(request) -> str:
    identity = request.user_information.user_identity
    if identity is None or identity.identity_type not in (1, 2):
        return ""
    return identity.primary_field.decode("utf-8", "replace")[:64]


def _abstract_syntaxes(session: Session | None) -> tuple[str, ...]:
    if session is None:
        return ()
    return tuple(sorted({c.abstract_syntax for c in session.negotiated.contexts}))


def _peer_event(event: Incoming) -> PeerEvent | None:
    """A link event as the association's mailbox message (None: nothing for it)."""
    match event:
        case AssociationRequested(request=request):
            return PeerRequestedAssociation(request=request)
        case MessageReceived(context_id=context_id, message=message, dataset=dataset):
            return PeerMessage(context_id=context_id, message=message, dataset=dataset)
        case ReleaseRequested():
            return PeerRequestedRelease()
        case Aborted(source=source, reason=reason, by_peer=by_peer):
            return PeerAborted(source=int(source), reason=int(reason), by_peer=by_peer)
        case ProtocolViolation(error=error):
            return PeerBrokeProtocol(error=error)
        case ConnectionClosed():
            return PeerClosed()
    return None  # a requestor's events: not for an acceptor
