"""A DICOM association over a Trio stream: the I/O around the sans-IO machine.

A `DimseLink` owns one connection. Its reader task feeds received bytes to the
protocol's `Association`, reassembles DIMSE messages, and hands the owner whole
`MessageReceived`s and the association's indications, in order, through `next()`.
Datasets never pass through as whole byte strings unless the owner wants that: for each
incoming message with a dataset the owner's `sink_for` picks a `DatasetSink` (a temp file
for a C-STORE, memory for an identifier) and the fragments go straight into it.

Sending goes through one lock, and the machine's output is drained inside it, so bytes
reach the socket in the order the machine produced them whoever flushes. The driver runs
the ARTIM timer the machine asks for and an idle timeout of its own.
"""

import math
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Protocol

import attrs
import structlog
import trio

from ..protocol.association import Association, Role
from ..protocol.machine import State
from ..protocol.commands import DimseMessage
from ..protocol.errors import LocalProtocolError, RemoteProtocolError
from ..protocol.events import (
    Aborted,
    AssociationAccepted,
    AssociationRejected,
    AssociationRequested,
    CloseTransport,
    ConnectionClosed,
    DataReceived,
    ReleaseConfirmed,
    ReleaseRequested,
    StartARTIM,
    StopARTIM,
)
from ..protocol.fragments import CommandReceived, MessageAssembler, MessageFragmenter
from ..protocol.pdu import AAssociateAC, AAssociateRJ, AAssociateRQ

RECEIVE_SIZE = 256 * 1024
DEFAULT_MEMORY_LIMIT = 16 * 1024 * 1024  # identifiers and N-service attribute lists


class DatasetSink(Protocol):
    """Where the fragments of one incoming dataset go."""

    async def write(self, data: memoryview) -> None: ...

    async def finish(self) -> None:
        """The last fragment has been written."""

    async def discard(self) -> None:
        """The message will never complete (abort, connection lost): leave nothing behind."""


class DatasetTooLarge(RemoteProtocolError):
    pass


class MemorySink:
    """Collects a dataset in memory, up to a limit."""

    def __init__(self, limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        self._limit = limit
        self._buffer = bytearray()

    async def write(self, data: memoryview) -> None:
        if len(self._buffer) + len(data) > self._limit:
            raise DatasetTooLarge(f"dataset larger than the {self._limit} bytes accepted here")
        self._buffer += data

    async def finish(self) -> None:
        pass

    async def discard(self) -> None:
        self._buffer = bytearray()

    @property
    def data(self) -> bytes:
        return bytes(self._buffer)


@attrs.frozen
class MessageReceived:
    """A whole DIMSE message; `dataset` is the sink its dataset went into, if it had one."""

    context_id: int
    message: DimseMessage
    dataset: DatasetSink | None


@attrs.frozen
class ProtocolViolation:
    """We aborted because the peer broke DIMSE framing (the reason is in `error`)."""

    error: str


Incoming = (
    AssociationRequested
    | AssociationAccepted
    | AssociationRejected
    | MessageReceived
    | ReleaseRequested
    | ReleaseConfirmed
    | Aborted
    | ProtocolViolation
    | ConnectionClosed
)

SinkFactory = Callable[[int, DimseMessage], DatasetSink]


def memory_sinks(context_id: int, message: DimseMessage) -> DatasetSink:
    return MemorySink()


class LinkClosed(Exception):
    """The link has nothing more to give: the connection is gone."""


class DimseLink:
    def __init__(
        self,
        stream: trio.abc.Stream,
        association: Association,
        *,
        artim_timeout: float = 30.0,
        idle_timeout: float | None = None,
        sink_for: SinkFactory = memory_sinks,
        log: structlog.typing.FilteringBoundLogger | None = None,
        deliver: Callable[[Incoming], Awaitable[None]] | None = None,
    ) -> None:
        self.stream = stream
        self.association = association
        self.artim_timeout = artim_timeout
        self.idle_timeout = idle_timeout
        self.sink_for = sink_for
        self.log = log if log is not None else structlog.get_logger()
        self.bytes_received = 0
        self.bytes_sent = 0
        self._assembler = MessageAssembler()
        self._artim_deadline = math.inf
        self._send_lock = trio.Lock()
        self._incoming_send, self._incoming = trio.open_memory_channel[Incoming](16)
        self._current: tuple[int, DimseMessage, DatasetSink] | None = None
        self._closed = False
        self._read_scope: trio.CancelScope | None = None  # the reader's wait for bytes
        self._deliver_to = deliver

    # --- the reader ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read until the connection is gone. Start it in a nursery before using the link.

        For an acceptor this first tells the machine the connection exists (Evt5):
        bytes read before that would meet Sta1, where the table ignores them.
        """
        if self.association.role is Role.ACCEPTOR and self.association.state is State.STA1:
            self.association.connection_made()
            await self._after_input()
        task_status.started()
        try:
            while not self._closed:
                await self._read_once()
        finally:
            await self._drop_partial_dataset()
            self._incoming_send.close()

    async def _read_once(self) -> None:
        idle = trio.current_time() + self.idle_timeout if self.idle_timeout is not None else math.inf
        # Only the wait for bytes is under the timers; handling what arrived never is. The
        # scope is kept so that ARTIM started meanwhile - by a primitive of our own, like
        # the A-RELEASE-RP that leaves us in Sta13 - still ends this wait in time.
        with trio.CancelScope(deadline=min(self._artim_deadline, idle)) as self._read_scope:
            try:
                data = await self.stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
        self._read_scope = None
        if not self._read_scope_fired(idle):
            self.bytes_received += len(data)
            self.association.receive_data(data)  # b"" means the peer closed: Evt17
        await self._after_input()

    def _read_scope_fired(self, idle: float) -> bool:
        """After a wait: act on a timer that ran out (True), or not (False: bytes came, or
        a deadline that was moved - ARTIM stopped - fired for nothing)."""
        now = trio.current_time()
        if now >= self._artim_deadline:
            self._artim_deadline = math.inf
            self.association.artim_expired()
            return True
        if now >= idle:
            self.log.warning("idle timeout: aborting the association", idle_timeout=self.idle_timeout)
            self.association.abort()
            return True
        return False

    async def _after_input(self) -> None:
        await self.flush()
        for event in self.association.take_events():
            match event:
                case DataReceived(pdvs=pdvs):
                    await self._take_pdvs(pdvs)
                case StartARTIM():
                    self._artim_deadline = trio.current_time() + self.artim_timeout
                    if self._read_scope is not None:
                        self._read_scope.deadline = min(self._read_scope.deadline, self._artim_deadline)
                case StopARTIM():
                    self._artim_deadline = math.inf
                case CloseTransport():
                    await self._close_transport()
                case ConnectionClosed():
                    self._closed = True
                    await self._deliver(event)
                case AssociationRequested() | AssociationAccepted() | AssociationRejected() | ReleaseRequested() | ReleaseConfirmed() | Aborted():
                    await self._deliver(event)
                case _:
                    pass  # AcceptTransport / OpenTransport: the socket already exists

    async def _take_pdvs(self, pdvs) -> None:
        if self.association.state is State.STA13:
            return  # we aborted on an earlier PDU of the same read: the rest is void (PS3.8 AA-6)
        assembler = self._assembler
        try:
            for pdv in pdvs:
                event = assembler.feed(pdv)
                if event is None:
                    continue
                if type(event) is CommandReceived:
                    message = event.message
                    if not message.has_dataset:
                        await self._deliver(MessageReceived(event.context_id, message, None))
                        continue
                    self._current = (event.context_id, message, self.sink_for(event.context_id, message))
                    continue
                assert self._current is not None
                context_id, message, sink = self._current
                await sink.write(event.data)
                if event.is_last:
                    self._current = None
                    await sink.finish()
                    await self._deliver(MessageReceived(context_id, message, sink))
        except RemoteProtocolError as error:
            self.log.warning("peer broke DIMSE framing: aborting", error=str(error))
            await self._drop_partial_dataset()
            self.association.abort()
            await self._deliver(ProtocolViolation(str(error)))
            await self._after_input()

    async def _drop_partial_dataset(self) -> None:
        if self._current is not None:
            sink = self._current[2]
            self._current = None
            with trio.CancelScope(shield=True):
                await sink.discard()

    async def _deliver(self, event: Incoming) -> None:
        if self._deliver_to is not None:  # the owner takes events as they come (an actor's mailbox)
            await self._deliver_to(event)
            return
        try:
            try:
                self._incoming_send.send_nowait(event)  # the next read is the checkpoint
            except trio.WouldBlock:
                await self._incoming_send.send(event)
        except trio.BrokenResourceError:
            pass  # the owner stopped listening
        except trio.ClosedResourceError:
            # The reader already finished (and said ConnectionClosed); this is a late
            # duplicate from a local primitive whose flush raced the peer's last PDU.
            pass

    async def _close_transport(self) -> None:
        if not self._closed:
            with trio.CancelScope(shield=True):
                await self.stream.aclose()
            self.association.connection_lost()
            # connection_lost() queued ConnectionClosed (and maybe more) for the next round
            await self._after_input()

    # --- what the owner uses ---------------------------------------------------------

    async def next(self) -> Incoming:
        """The next indication or message; raises LinkClosed once the connection is gone."""
        try:
            return await self._incoming.receive()
        except trio.EndOfChannel:
            raise LinkClosed("the association's connection is closed") from None

    async def flush(self) -> None:
        # Called after every read and every local primitive: most calls have nothing to
        # send and return without touching the lock (each acquire is a task switch).
        if not self.association.has_data_to_send:
            return
        try:
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._send_lock.acquire()
        try:
            data = self.association.data_to_send()
            if data and not self._closed:
                try:
                    await self.stream.send_all(data)
                    self.bytes_sent += len(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the reader will see the connection go and report it
        finally:
            self._send_lock.release()

    async def request(self, rq: AAssociateRQ) -> None:
        """Requestor: send the A-ASSOCIATE-RQ on the already connected stream."""
        self.association.request_association(rq)
        self.association.connection_made()
        await self._after_local()

    async def accept(self, ac: AAssociateAC) -> None:
        self.association.accept(ac)
        await self._after_local()

    async def reject(self, rj: AAssociateRJ) -> None:
        self.association.reject(rj)
        await self._after_local()

    async def release(self) -> None:
        self.association.request_release()
        await self._after_local()

    async def respond_release(self) -> None:
        self.association.respond_release()
        await self._after_local()

    async def abort(self) -> None:
        if not self._closed:
            self.association.abort()
            await self._after_local()

    async def _after_local(self) -> None:
        # Local primitives may also produce instructions (ARTIM, close) and indications.
        await self._after_input()

    async def send(
        self,
        message: DimseMessage,
        context_id: int,
        dataset: bytes | memoryview | AsyncIterable[bytes | memoryview] | None = None,
    ) -> None:
        """Send one DIMSE message, its dataset from memory or from an async stream of chunks."""
        fragmenter = MessageFragmenter(
            message, context_id=context_id, max_pdu_length=self.association.peer_max_pdu_length
        )
        if dataset is not None:
            if isinstance(dataset, (bytes, bytearray, memoryview)):
                await self._send_pdus(fragmenter.add_data(dataset))
            else:
                async for chunk in dataset:
                    await self._send_pdus(fragmenter.add_data(chunk))
        await self._send_pdus(fragmenter.finish())

    async def _send_pdus(self, pdus) -> None:
        """Hand a chunk's PDUs to the machine, then write them in one go (one syscall per
        chunk, not per 16 KiB PDU; the chunks are bounded, so is what waits in memory)."""
        if self._closed:
            raise LinkClosed("the association's connection is closed")
        for pdu in pdus:
            try:
                self.association.send_data(pdu.pdvs)
            except LocalProtocolError:
                # The peer released or aborted under us; the reader reports how.
                raise LinkClosed(f"the association is no longer established ({self.association.state.name})") from None
        await self.flush()
