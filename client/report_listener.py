"""Receiving storage commitment reports on associations the SCP opens to us.

An SCP whose requestor released the association after the N-ACTION reports on a new
one (PS3.4 J.3.3): the requestor must then be listening, as an AE the SCP knows.

    async with listen_for_reports(ae_title="MODALITY", port=11113) as listener:
        ...  # send the N-ACTION on an association of our own, release it
        report = await listener.next_report(transaction_uid, timeout=60)

The listener accepts any association called by its AE title that proposes the Storage
Commitment Push Model (whatever role selection it proposes: some SCPs propose none) or
Verification, answers each N-EVENT-REPORT with Success once it has read it, C-ECHO with
Success, anything else with 0211 Unrecognized operation, and serves associations one
after the other or at once, until the block ends.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import structlog
import trio

from ..protocol.association import Acceptor
from ..protocol.catalog import STORAGE_COMMITMENT_PUSH_MODEL, VERIFICATION
from ..protocol.commands import CEchoRQ, CEchoRSP, DimseRequest, NEventReportRQ, NEventReportRSP
from ..protocol.errors import LocalProtocolError
from ..protocol.events import Aborted, AssociationRequested, ConnectionClosed, ReleaseRequested
from ..protocol.negotiation import AcceptorPolicy, Negotiated, SupportedContext, negotiate
from ..protocol.status import Status
from .commitment import CommitmentReport, report_of
from .datasets import decode_dataset
from .errors import DimseTimeout
from .link import DimseLink, LinkClosed, MemorySink, MessageReceived, ProtocolViolation

log = structlog.get_logger("triopacs.client")


class ReportListener:
    def __init__(self, ae_title: str, *, artim_timeout: float = 30.0, idle_timeout: float = 300.0) -> None:
        self.ae_title = ae_title
        self.port = 0
        self.artim_timeout = artim_timeout
        self.idle_timeout = idle_timeout
        self.policy = AcceptorPolicy(
            ae_titles=frozenset({ae_title}),
            contexts=(
                SupportedContext(abstract_syntax=STORAGE_COMMITMENT_PUSH_MODEL, scp_role=True, scu_role=True),
                SupportedContext(abstract_syntax=VERIFICATION),
            ),
        )
        self._reports: list[CommitmentReport] = []
        self._arrived = trio.Event()

    async def next_report(self, transaction_uid: str | None = None, *, timeout: float = math.inf) -> CommitmentReport:
        """The first report received (of `transaction_uid`, when given), waiting up to `timeout`."""
        with trio.move_on_after(timeout):
            while True:
                for report in self._reports:
                    if transaction_uid is None or report.transaction_uid == transaction_uid:
                        self._reports.remove(report)
                        return report
                self._arrived = trio.Event()
                await self._arrived.wait()
        raise DimseTimeout("a storage commitment report on a new association", timeout)

    async def serve(self, stream: trio.SocketStream) -> None:
        link = DimseLink(stream, Acceptor(), artim_timeout=self.artim_timeout, idle_timeout=self.idle_timeout, log=log)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(link.run)
                await self._converse(link)
                nursery.cancel_scope.cancel()
        except* LocalProtocolError as group:  # the peer went away while we answered
            log.info("report association ended", error=str(group.exceptions[0]))
        finally:
            with trio.CancelScope(shield=True):
                await link.stream.aclose()

    async def _converse(self, link: DimseLink) -> None:
        negotiated: Negotiated | None = None
        while True:
            try:
                event = await link.next()
            except LinkClosed:
                return
            match event:
                case AssociationRequested(request=request):
                    decision = negotiate(request, self.policy)
                    if decision.negotiated is None:
                        await link.reject(decision.response)
                    else:
                        negotiated = decision.negotiated
                        await link.accept(decision.response)
                case MessageReceived(message=message) if negotiated is not None and isinstance(message, DimseRequest):
                    await self._answer(link, negotiated, event)
                case MessageReceived(dataset=dataset) if dataset is not None:
                    await dataset.discard()
                case ReleaseRequested():
                    await link.respond_release()
                case Aborted() | ProtocolViolation() | ConnectionClosed():
                    return

    async def _answer(self, link: DimseLink, negotiated: Negotiated, received: MessageReceived) -> None:
        message = received.message
        if isinstance(message, CEchoRQ):
            await link.send(
                CEchoRSP(message_id_being_responded_to=message.message_id, status=Status.SUCCESS, affected_sop_class_uid=VERIFICATION),
                received.context_id,
            )
            return
        if not isinstance(message, NEventReportRQ):
            if received.dataset is not None:
                await received.dataset.discard()
            await link.send(
                message.response_type(message_id_being_responded_to=message.message_id, status=Status.UNRECOGNIZED_OPERATION),
                received.context_id,
            )
            return
        report = None
        context = negotiated.context(received.context_id)
        if isinstance(received.dataset, MemorySink) and context is not None:
            try:
                report = report_of(message.event_type_id or 0, decode_dataset(received.dataset.data, context.transfer_syntax))
            except Exception:  # an undecodable report is answered as such
                report = None
        await link.send(
            NEventReportRSP(
                message_id_being_responded_to=message.message_id,
                status=Status.SUCCESS if report is not None else Status.PROCESSING_FAILURE,
                affected_sop_class_uid=message.affected_sop_class_uid,
                affected_sop_instance_uid=message.affected_sop_instance_uid,
                event_type_id=message.event_type_id,
            ),
            received.context_id,
        )
        if report is not None:
            log.info("storage commitment report received", transaction_uid=report.transaction_uid, failed=len(report.failed))
            self._reports.append(report)
            self._arrived.set()


@asynccontextmanager
async def listen_for_reports(*, ae_title: str, port: int = 0, host: str = "127.0.0.1") -> AsyncIterator[ReportListener]:
    """A ReportListener on host:port (0: a free port, in `listener.port`) until the block ends."""
    listener = ReportListener(ae_title)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, _guarded(listener), port, host=host))
        listener.port = listeners[0].socket.getsockname()[1]
        yield listener
        nursery.cancel_scope.cancel()


def _guarded(listener: ReportListener):
    async def handle(stream: trio.SocketStream) -> None:
        try:
            await listener.serve(stream)
        except Exception:  # one bad association must not end the listener
            log.exception("report association failed")

    return handle
