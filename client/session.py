"""One client association's message flow, under the operations of client.py.

`AssociationSession` owns the DimseLink and everything between a request and its answer:
sending (a half-sent message makes only an abort clean), receiving with the DIMSE
timeout, turning association events (abort, peer release, lost connection) into typed
errors, answering the C-STORE sub-operations of a C-GET, cancelling an unfinished
operation, and the opening and closing handshakes. `ClientAssociation` (client.py) adds
the DIMSE services on top.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterable

import structlog
import trio

from ..protocol.association import Requestor
from ..protocol.catalog import IMPLICIT_VR_LITTLE_ENDIAN
from ..protocol.commands import CCancelRQ, CStoreRQ, CStoreRSP, DimseMessage, DimseResponse, NEventReportRQ, next_message_id
from ..protocol.errors import LocalProtocolError
from ..protocol.events import Aborted, AssociationAccepted, ConnectionClosed, ReleaseRequested
from ..protocol.events import AssociationRejected as RejectedEvent
from ..protocol.negotiation import AcceptedContext, Negotiated, RejectedContext
from ..protocol.pdu import AAssociateRQ
from .errors import AssociationAborted, AssociationRejected, ClientError, DimseTimeout, NoPresentationContext
from .operations import GetProgress, Operation
from .receive import CANNOT_UNDERSTAND, InstanceTarget, RefuseInstances
from .link import DatasetSink, DimseLink, LinkClosed, MemorySink, MessageReceived, ProtocolViolation


class _Paced:
    """Chunks of a dataset being sent; each one taken pushes the send deadline back, so a
    large file may take as long as it needs while the peer keeps reading."""

    def __init__(self, chunks: AsyncIterable[bytes], scope: trio.CancelScope, timeout: float) -> None:
        self._chunks = aiter(chunks)
        self._scope = scope
        self._timeout = timeout

    def __aiter__(self) -> _Paced:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._chunks)
        self._scope.deadline = trio.current_time() + self._timeout
        return chunk


class AssociationSession:
    """The message flow of one requestor association (see the module docstring)."""

    def __init__(
        self,
        stream: trio.SocketStream,
        *,
        peer: str,
        called_ae_title: str,
        max_pdu_length: int,
        dimse_timeout: float,
        artim_timeout: float,
        close_timeout: float,
    ) -> None:
        self.peer = peer
        self.called_ae_title = called_ae_title
        self.dimse_timeout = dimse_timeout
        self.artim_timeout = artim_timeout
        self.close_timeout = close_timeout
        self.log = structlog.get_logger("triopacs.client").bind(peer=peer, called_ae=called_ae_title)
        self.link = DimseLink(
            stream,
            Requestor(max_pdata_length=max_pdu_length),
            artim_timeout=artim_timeout,
            sink_for=self._sink_for,
            log=self.log,
        )
        self.negotiated: Negotiated | None = None
        self._last_message_id = 0
        self._active: Operation | None = None
        self._ended: ClientError | None = None  # why the association can no longer be used
        self._half_sent = False  # a message was interrupted mid-send: only an abort is clean now
        self._reader_scope = trio.CancelScope(shield=True)  # outlives the caller's cancellation
        self._refuse = RefuseInstances()
        self._event_reports: deque[MessageReceived] = deque()  # N-EVENT-REPORTs nobody waited for yet

    # --- what the caller can see ----------------------------------------------------------

    @property
    def is_established(self) -> bool:
        return self._ended is None and self.link.association.is_established

    @property
    def accepted_contexts(self) -> tuple[AcceptedContext, ...]:
        return self.negotiated.contexts if self.negotiated else ()

    @property
    def rejected_contexts(self) -> tuple[RejectedContext, ...]:
        return self.negotiated.rejected if self.negotiated else ()

    # --- operations in flight (used by client_operations) -------------------------------------

    async def _begin(self, operation: Operation) -> None:
        await self._settle()
        self._active = operation
        await self._send(operation.request, operation.context.context_id, operation.identifier)

    def _finished(self, operation: Operation) -> None:
        if self._active is operation:
            self._active = None

    async def _settle(self) -> None:
        """Before a new request: cancel an operation the caller stopped iterating."""
        self._check_usable()
        if self._active is not None:
            await self._cancel(self._active)

    async def _cancel(self, operation: Operation) -> None:
        if operation.done:
            return
        if not operation.cancel_sent:
            operation.cancel_sent = True
            self.log.info("cancelling", operation=operation.name, message_id=operation.message_id)
            await self._send(CCancelRQ(message_id_being_responded_to=operation.message_id), operation.context.context_id)
        await operation.drain()

    # --- sending and receiving ----------------------------------------------------------------

    def _next_id(self) -> int:
        self._last_message_id = next_message_id(self._last_message_id)
        return self._last_message_id

    def _agreed(self) -> Negotiated:
        self._check_usable()
        assert self.negotiated is not None
        return self.negotiated

    def _context(self, sop_class: str) -> AcceptedContext:
        context = self._agreed().find(sop_class, as_scu=True)
        if context is None:
            raise NoPresentationContext(sop_class)
        return context

    def _check_usable(self) -> None:
        # Only what we already know: an association that ended under us without our
        # noticing yet still has the event saying how in the link's queue, and the next
        # send or receive reads it (a precise error rather than a generic one).
        if self._ended is not None:
            raise AssociationAborted(f"the association is already over ({self._ended})")

    def _end(self, error: ClientError) -> ClientError:
        if self._ended is None:
            self._ended = error
        return error

    async def _send(self, message: DimseMessage, context_id: int, dataset=None) -> None:
        self._check_usable()
        self._half_sent = True
        try:
            await self.link.send(message, context_id, dataset)
        except LinkClosed:
            self._half_sent = False
            raise self._end(await self._why_closed()) from None
        except ClientError:
            # The dataset's source failed mid-message (a file shrank): the peer holds half
            # a message, so the association cannot go on.
            await self._abort()
            self._end(AssociationAborted("a dataset could not be read to the end while sending"))
            raise
        self._half_sent = False

    async def _send_dataset(self, message: DimseMessage, context_id: int, data: bytes | AsyncIterable[bytes]) -> None:
        with trio.CancelScope(deadline=trio.current_time() + self.dimse_timeout) as watchdog:
            paced = data if isinstance(data, bytes) else _Paced(data, watchdog, self.dimse_timeout)
            await self._send(message, context_id, paced)
        if watchdog.cancelled_caught:
            await self._abort()
            raise self._end(DimseTimeout("progress sending the dataset", self.dimse_timeout))

    async def _response(self, request, response_type: type, waiting_for: str):
        received = await self._response_to(request.message_id, waiting_for)
        if not isinstance(received.message, response_type):
            await self._give_up(f"the peer answered {type(request).__name__} with {type(received.message).__name__}")
        return received.message

    async def _response_to(self, message_id: int, waiting_for: str) -> MessageReceived:
        """The next response to `message_id`, serving C-GET sub-operations meanwhile."""
        while True:
            received = await self._receive(waiting_for)
            message = received.message
            if isinstance(message, CStoreRQ):
                await self._serve_store(received)
            elif isinstance(message, NEventReportRQ):
                self._event_reports.append(received)  # for receive_event_report (nservices.py)
            elif isinstance(message, DimseResponse) and message.message_id_being_responded_to == message_id:
                return received
            else:
                self.log.warning("dropping an unexpected DIMSE message", message=type(message).__name__)
                await _drop(received)

    async def _receive(self, waiting_for: str, *, timeout: float | None | bool = True) -> MessageReceived:
        """The next DIMSE message; past `timeout` seconds without a byte (True: the DIMSE
        timeout; None: no limit) the association is aborted and DimseTimeout raised."""
        self._check_usable()
        limit = self.dimse_timeout if timeout is True else math.inf if timeout is None else timeout
        while True:
            seen = self.link.bytes_received
            event = None
            with trio.move_on_after(limit):
                event = await self._next_event()
            if event is None:
                if self.link.bytes_received != seen:
                    continue  # a large dataset is still arriving
                await self._abort()
                raise self._end(DimseTimeout(waiting_for, limit))
            if isinstance(event, MessageReceived):
                return event
            await self._association_event(event)

    async def _next_event(self):
        try:
            return await self.link.next()
        except LinkClosed:
            return ConnectionClosed()

    async def _association_event(self, event) -> None:
        """An association-level event while we waited for a message: it ends the association."""
        match event:
            case Aborted(source=source, reason=reason, by_peer=by_peer):
                raise self._end(AssociationAborted.from_abort(source, reason, by_peer))
            case ProtocolViolation(error=error):
                raise self._end(AssociationAborted(f"the peer broke the DIMSE protocol ({error}); we aborted"))
            case ReleaseRequested():
                await self.link.respond_release()
                raise self._end(AssociationAborted("the peer released the association before answering"))
            case ConnectionClosed():
                raise self._end(AssociationAborted("the connection closed"))
            case _:
                pass

    async def _why_closed(self) -> ClientError:
        """After the link refused to send: the event that says how the association ended."""
        with trio.move_on_after(self.close_timeout):
            while True:
                event = await self._next_event()
                try:
                    await self._association_event(event)
                except ClientError as error:
                    return error
        return AssociationAborted("the association ended while we were sending")

    async def _give_up(self, reason: str) -> None:
        await self._abort()
        raise self._end(AssociationAborted(f"{reason}; we aborted"))

    async def _abort(self) -> None:
        try:
            await self.link.abort()
            self.log.info("association aborted by us")
        except LocalProtocolError:
            pass  # no association left to abort

    # --- C-STORE sub-operations of a C-GET --------------------------------------------------

    def _target(self) -> InstanceTarget:
        active = self._active
        return active.target if isinstance(active, GetProgress) and active.target else self._refuse

    def _syntax_of(self, context_id: int) -> str:
        context = self.negotiated.context(context_id) if self.negotiated else None
        return context.transfer_syntax if context else IMPLICIT_VR_LITTLE_ENDIAN

    def _sink_for(self, context_id: int, message: DimseMessage) -> DatasetSink:
        # Called by the link's reader as an incoming dataset begins.
        if isinstance(message, CStoreRQ):
            return self._target().sink_for(message, self._syntax_of(context_id))
        return MemorySink()

    async def _serve_store(self, received: MessageReceived) -> None:
        rq = received.message
        operation = self._active if isinstance(self._active, GetProgress) else None
        try:
            status, comment, instance = await self._target().take(rq, self._syntax_of(received.context_id), received.dataset)
        except Exception:
            await self._answer_store(received, CANNOT_UNDERSTAND, "the receiving callback failed")
            raise
        if operation is not None and instance is not None:
            operation.received += 1
        await self._answer_store(received, status, comment)

    async def _answer_store(self, received: MessageReceived, status: int, comment: str | None) -> None:
        rq = received.message
        response = CStoreRSP(
            message_id_being_responded_to=rq.message_id,
            status=status,
            affected_sop_class_uid=rq.affected_sop_class_uid,
            affected_sop_instance_uid=rq.affected_sop_instance_uid,
            error_comment=comment[:64] if comment else None,
        )
        await self._send(response, received.context_id)

    # --- opening and closing -------------------------------------------------------------------

    async def _read(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self._reader_scope:
            await self.link.run(task_status=task_status)

    async def _associate(self, rq: AAssociateRQ) -> None:
        await self.link.request(rq)
        with trio.move_on_after(self.artim_timeout):
            while True:
                match await self._next_event():
                    case AssociationAccepted():
                        self.negotiated = self.link.association.negotiated
                        self.log.info(
                            "association accepted", contexts=len(self.negotiated.contexts), rejected=len(self.negotiated.rejected)
                        )
                        return
                    case RejectedEvent(response=rj):
                        raise self._end(AssociationRejected(rj.result, rj.source, rj.reason))
                    case Aborted(source=source, reason=reason, by_peer=by_peer):
                        raise self._end(AssociationAborted.from_abort(source, reason, by_peer))
                    case ConnectionClosed():
                        raise self._end(AssociationAborted("the peer closed the connection instead of answering"))
        await self._abort()
        raise self._end(DimseTimeout("answer to the A-ASSOCIATE-RQ", self.artim_timeout))

    async def _close(self) -> None:
        """Cancel what runs, release (abort if that does not finish in time), stop the reader."""
        with trio.CancelScope(shield=True):
            try:
                if self.is_established:
                    if self._half_sent:
                        await self._abort()
                    else:
                        with trio.move_on_after(self.close_timeout) as deadline:
                            if self._active is not None:
                                await self._cancel(self._active)
                            await self._release()
                        if deadline.cancelled_caught:
                            self.log.warning("no clean end within the close timeout: aborting", timeout=self.close_timeout)
                            await self._abort()
            except (ClientError, LocalProtocolError) as error:
                # The peer aborted, or asked to release first (we cannot then ask): done.
                self.log.warning("the association ended while closing", error=str(error))
                await self._abort()
            finally:
                self._end(AssociationAborted("the association was closed"))
                self._reader_scope.cancel()
                await self.link.stream.aclose()

    async def _release(self) -> None:
        await self.link.release()
        while True:
            event = await self._next_event()
            match event:
                case ConnectionClosed():
                    self.log.info("association released")
                    return
                case ReleaseRequested():
                    await self.link.respond_release()  # both sides asked at once
                case MessageReceived():
                    await _drop(event)  # a late answer nobody waits for any more
                case Aborted(source=source, reason=reason, by_peer=by_peer):
                    raise AssociationAborted.from_abort(source, reason, by_peer)
                case _:
                    pass  # ReleaseConfirmed: the link closes the connection next


async def _drop(received: MessageReceived) -> None:
    if received.dataset is not None:
        await received.dataset.discard()


