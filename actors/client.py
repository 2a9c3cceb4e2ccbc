"""An embeddable DICOM client (SCU) on Trio: `async with triopacs.connect(...) as association`.

    async with connect("127.0.0.1", 11112, called_ae_title="PACS") as association:
        await association.echo()
        async for match in association.find(query, level="STUDY"):
            print(match.StudyInstanceUID)

`connect` opens the TCP connection, proposes the presentation contexts and waits for the
answer; the block gets a `ClientAssociation`. Leaving the block releases the association.
If an operation is still running then (the loop broke out, the task was cancelled), it
is cancelled with C-CANCEL and its final response awaited first; if the peer does not
finish that and the release within `close_timeout` seconds, the association is aborted.

The association is used by one task at a time: one request is outstanding at any moment
(we propose no asynchronous operations window), and a new request first cancels an
unfinished C-FIND/C-MOVE/C-GET. Errors are the `ClientError` family of client_errors.py.

This is a plain async API, not an actor: a DimseLink reader task runs in a nursery that
`connect` owns, and every method is called from the caller's own task.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import asynccontextmanager

import structlog
import trio
from pydicom.dataset import Dataset

from ..protocol.association import Requestor
from ..protocol.catalog import IMPLICIT_VR_LITTLE_ENDIAN, VERIFICATION
from ..protocol.commands import (
    CCancelRQ,
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CGetRQ,
    CMoveRQ,
    CStoreRQ,
    CStoreRSP,
    DimseMessage,
    DimseResponse,
    Priority,
)
from ..protocol.errors import LocalProtocolError
from ..protocol.events import (
    Aborted,
    AssociationAccepted,
    ConnectionClosed,
    ReleaseRequested,
)
from ..protocol.events import AssociationRejected as RejectedEvent
from ..protocol.negotiation import AcceptedContext, Negotiated, ProposedContext, RejectedContext, build_request
from ..protocol.pdu import AAssociateRQ
from ..protocol.status import StatusClass, status_class
from .client_contexts import (
    dataset_transfer_syntax,
    default_contexts,
    model_sop_class,
    query_retrieve_contexts,
    retrieve_storage_contexts,
    storage_contexts_for,
    verification_contexts,
)
from .client_datasets import (
    READ_CHUNK,
    context_for_dataset,
    context_for_file,
    convert_file,
    decode_dataset,
    encode_dataset,
    file_chunks,
    locate,
    read_whole,
)
from .client_errors import (
    AssociationAborted,
    AssociationRejected,
    ClientError,
    ConnectionFailed,
    DimseTimeout,
    InvalidInput,
    NoPresentationContext,
    OperationFailed,
)
from .client_operations import FindMatches, GetProgress, MoveProgress, Operation
from .client_receive import CANNOT_UNDERSTAND, InstanceCallback, InstanceTarget, RefuseInstances, target_for
from .client_results import MoveOriginator, ReceivedInstance, RetrieveProgress, StoreResult
from .link import DatasetSink, DimseLink, LinkClosed, MemorySink, MessageReceived, ProtocolViolation

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

__all__ = [
    "AssociationAborted",
    "AssociationRejected",
    "ClientAssociation",
    "ClientError",
    "ConnectionFailed",
    "DimseTimeout",
    "FindMatches",
    "GetProgress",
    "InvalidInput",
    "MoveOriginator",
    "MoveProgress",
    "NoPresentationContext",
    "OperationFailed",
    "ReceivedInstance",
    "RetrieveProgress",
    "StoreResult",
    "connect",
    "default_contexts",
    "query_retrieve_contexts",
    "retrieve_storage_contexts",
    "storage_contexts_for",
    "verification_contexts",
]


@asynccontextmanager
async def connect(
    host: str,
    port: int,
    *,
    called_ae_title: str,
    calling_ae_title: str = "TRIOPACS",
    contexts: Sequence[ProposedContext] | None = None,
    max_pdu_length: int = 65536,
    connect_timeout: float = 10.0,
    dimse_timeout: float = 60.0,
    artim_timeout: float = 30.0,
    close_timeout: float = 10.0,
) -> AsyncIterator[ClientAssociation]:
    """Open an association; release it (or abort it, see the module doc) when the block ends.

    contexts: what to propose (default: `default_contexts()`). connect_timeout bounds the
    TCP connect; artim_timeout the wait for the A-ASSOCIATE answer (and the link's ARTIM
    timer); dimse_timeout how long a reply may go without a single byte arriving;
    close_timeout the clean-up when the block ends.
    """
    proposed = list(contexts) if contexts is not None else default_contexts()
    try:
        rq = build_request(
            calling_ae_title=calling_ae_title,
            called_ae_title=called_ae_title,
            contexts=proposed,
            max_pdu_length=max_pdu_length,
        )
        rq.encode()  # bad AE titles fail here, before any connection
    except LocalProtocolError as error:
        raise InvalidInput(str(error)) from None
    stream = await _open_stream(host, port, connect_timeout)
    association = ClientAssociation(
        stream,
        peer=f"{host}:{port}",
        called_ae_title=called_ae_title,
        max_pdu_length=max_pdu_length,
        dimse_timeout=dimse_timeout,
        artim_timeout=artim_timeout,
        close_timeout=close_timeout,
    )
    # Exceptions from the block are carried past the nursery, so that the caller catches
    # our typed errors themselves rather than an ExceptionGroup around them.
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(association._read)
        try:
            await association._associate(rq)
        except BaseException as error:
            failure = error
            await association._close()
        else:
            try:
                yield association
            except BaseException as error:
                failure = error
            await association._close()
    if failure is not None:
        raise failure


async def _open_stream(host: str, port: int, timeout: float) -> trio.SocketStream:
    try:
        with trio.fail_after(timeout):
            return await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        raise ConnectionFailed(host, port, f"no answer within {timeout:g} s") from None
    except OSError as error:
        raise ConnectionFailed(host, port, error.strerror or str(error)) from None


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


class ClientAssociation:
    """An established association, as `connect` gives it. See the module docstring."""

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

    # --- C-ECHO and C-STORE ----------------------------------------------------------------

    async def echo(self) -> None:
        """C-ECHO; raises OperationFailed unless the peer answers Success."""
        await self._settle()
        context = self._context(VERIFICATION)
        rq = CEchoRQ(message_id=self._next_id(), affected_sop_class_uid=VERIFICATION)
        await self._send(rq, context.context_id)
        response = await self._response(rq, CEchoRSP, "C-ECHO response")
        if status_class(response.status) is not StatusClass.SUCCESS:
            raise OperationFailed("C-ECHO", response.status, error_comment=response.error_comment)

    async def store(
        self,
        source: str | os.PathLike[str] | Dataset,
        *,
        move_originator: MoveOriginator | None = None,
        priority: Priority = Priority.MEDIUM,
    ) -> StoreResult:
        """C-STORE a Part 10 file (streamed from disk as stored) or a pydicom Dataset.

        Returns the peer's answer whatever its status (see `StoreResult.ok`); raises
        NoPresentationContext when no accepted context fits, InvalidInput for a file that
        is not a usable Part 10 file.
        """
        await self._settle()
        if isinstance(source, Dataset):
            return await self._store_dataset(source, move_originator, priority)
        file = await trio.to_thread.run_sync(locate, source)
        context, convert = context_for_file(self._agreed(), file.sop_class_uid, file.transfer_syntax_uid)
        data: bytes | AsyncIterator[bytes]
        if convert:
            data = await trio.to_thread.run_sync(_converted, file.stored.path, context.transfer_syntax)
        elif file.length <= READ_CHUNK:
            data = await trio.to_thread.run_sync(read_whole, file)
        else:
            data = file_chunks(file)
        rq = self._store_request(file.sop_class_uid, file.sop_instance_uid, move_originator, priority)
        try:
            await self._send_dataset(rq, context.context_id, data)
        finally:
            if not isinstance(data, bytes):
                with trio.CancelScope(shield=True):
                    await data.aclose()
        response = await self._response(rq, CStoreRSP, "C-STORE response")
        return StoreResult(
            status=response.status,
            sop_class_uid=rq.affected_sop_class_uid,
            sop_instance_uid=rq.affected_sop_instance_uid,
            transfer_syntax_uid=context.transfer_syntax,
            bytes_sent=len(data) if isinstance(data, bytes) else file.length,
            converted=convert,
            error_comment=response.error_comment,
        )

    async def _store_dataset(
        self, dataset: Dataset, move_originator: MoveOriginator | None, priority: Priority
    ) -> StoreResult:
        if "SOPClassUID" not in dataset or "SOPInstanceUID" not in dataset:
            raise InvalidInput("a dataset to store needs SOP Class UID and SOP Instance UID")
        sop_class, sop_instance = str(dataset.SOPClassUID), str(dataset.SOPInstanceUID)
        context = context_for_dataset(self._agreed(), sop_class, dataset_transfer_syntax(dataset))
        data = await trio.to_thread.run_sync(_encoded, dataset, context.transfer_syntax)
        rq = self._store_request(sop_class, sop_instance, move_originator, priority)
        await self._send_dataset(rq, context.context_id, data)
        response = await self._response(rq, CStoreRSP, "C-STORE response")
        return StoreResult(
            status=response.status,
            sop_class_uid=sop_class,
            sop_instance_uid=sop_instance,
            transfer_syntax_uid=context.transfer_syntax,
            bytes_sent=len(data),
            error_comment=response.error_comment,
        )

    def _store_request(
        self, sop_class: str, sop_instance: str, originator: MoveOriginator | None, priority: Priority
    ) -> CStoreRQ:
        try:
            return CStoreRQ(
                message_id=self._next_id(),
                affected_sop_class_uid=sop_class,
                affected_sop_instance_uid=sop_instance,
                priority=priority,
                move_originator_ae_title=originator.ae_title if originator else None,
                move_originator_message_id=originator.message_id if originator else None,
            )
        except LocalProtocolError as error:
            raise InvalidInput(str(error)) from None

    # --- C-FIND, C-MOVE, C-GET -------------------------------------------------------------

    def find(self, query: Dataset, *, level: str, model: str = "study", priority: Priority = Priority.MEDIUM) -> FindMatches:
        """Matches of `query` at `level` (PATIENT, STUDY, SERIES, IMAGE), as they come."""
        sop_class = model_sop_class(model, "find")
        context = self._context(sop_class)
        identifier = self._identifier(query, level, model, context)
        rq = CFindRQ(message_id=self._next_id(), affected_sop_class_uid=sop_class, priority=priority)
        return FindMatches(self, rq, context, identifier)

    def move(
        self, query: Dataset, destination: str, *, level: str, model: str = "study", priority: Priority = Priority.MEDIUM
    ) -> MoveProgress:
        """Ask the peer to C-STORE the matches to the AE `destination` (which it must know)."""
        sop_class = model_sop_class(model, "move")
        context = self._context(sop_class)
        identifier = self._identifier(query, level, model, context)
        try:
            rq = CMoveRQ(
                message_id=self._next_id(), affected_sop_class_uid=sop_class, move_destination=destination, priority=priority
            )
        except LocalProtocolError as error:
            raise InvalidInput(f"move destination {destination!r}: {error}") from None
        return MoveProgress(self, rq, context, identifier)

    def get(
        self,
        query: Dataset,
        into: str | os.PathLike[str] | InstanceCallback,
        *,
        level: str,
        model: str = "study",
        priority: Priority = Priority.MEDIUM,
    ) -> GetProgress:
        """Retrieve the matches over this association: into a folder (Part 10 files named
        `<SOP Instance UID>.dcm`) or to a callback taking each `ReceivedInstance`.

        The instances arrive on storage contexts where we are SCP: propose them (the
        default contexts do, for the common storage classes; see retrieve_storage_contexts).
        """
        sop_class = model_sop_class(model, "get")
        context = self._context(sop_class)
        identifier = self._identifier(query, level, model, context)
        target = target_for(into, source_ae_title=self.called_ae_title)
        rq = CGetRQ(message_id=self._next_id(), affected_sop_class_uid=sop_class, priority=priority)
        return GetProgress(self, rq, context, identifier, target)

    def _identifier(self, query: Dataset, level: str, model: str, context: AcceptedContext) -> bytes:
        level = level.upper()
        if level not in LEVELS or (model == "study" and level == "PATIENT"):
            allowed = LEVELS[1:] if model == "study" else LEVELS
            raise InvalidInput(f"query level must be one of {', '.join(allowed)} in the {model} root model, not {level!r}")
        identifier = Dataset()
        identifier.update(query)
        identifier.QueryRetrieveLevel = level
        try:
            return encode_dataset(identifier, context.transfer_syntax)
        except InvalidInput:
            raise
        except Exception as error:  # pydicom: a value that cannot be encoded
            raise InvalidInput(f"cannot encode the query: {error}") from None

    def _decode_identifier(self, data: bytes, context: AcceptedContext) -> Dataset:
        return decode_dataset(data, context.transfer_syntax)

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
            await self._send(CCancelRQ(message_id_being_responded_to=operation.message_id), operation.context.context_id)
        await operation.drain()

    # --- sending and receiving ----------------------------------------------------------------

    def _next_id(self) -> int:
        self._last_message_id = self._last_message_id % 0xFFFF + 1  # a US: 1..65535, then around
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
        if self._ended is not None:
            raise AssociationAborted(f"the association is already over ({self._ended})")
        if not self.link.association.is_established:
            raise AssociationAborted("the association is not established")

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
            elif isinstance(message, DimseResponse) and message.message_id_being_responded_to == message_id:
                return received
            else:
                self.log.warning("dropping an unexpected DIMSE message", message=type(message).__name__)
                await _drop(received)

    async def _receive(self, waiting_for: str) -> MessageReceived:
        self._check_usable()
        while True:
            seen = self.link.bytes_received
            event = None
            with trio.move_on_after(self.dimse_timeout):
                event = await self._next_event()
            if event is None:
                if self.link.bytes_received != seen:
                    continue  # a large dataset is still arriving
                await self._abort()
                raise self._end(DimseTimeout(waiting_for, self.dimse_timeout))
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
            except ClientError as error:
                self.log.warning("the association ended while closing", error=str(error))
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


def _converted(path, transfer_syntax: str) -> bytes:
    try:
        return convert_file(path, transfer_syntax)
    except InvalidInput:
        raise
    except Exception as error:  # pydicom could not read or re-encode it
        raise InvalidInput(f"{path}: cannot convert to {transfer_syntax}: {error}") from None


def _encoded(dataset: Dataset, transfer_syntax: str) -> bytes:
    try:
        return encode_dataset(dataset, transfer_syntax)
    except InvalidInput:
        raise
    except Exception as error:
        raise InvalidInput(f"cannot encode the dataset: {error}") from None

