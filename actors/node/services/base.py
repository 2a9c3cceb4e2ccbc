"""What a DICOM service sees of the association it serves, and what it must provide.

A `Service` answers some DIMSE requests (`requests`) on the SOP classes it lists
(`contexts`). Quick ones (C-ECHO, C-STORE) are handled inline, one at a time; an
`operation` service (C-FIND, C-MOVE, C-GET) runs as a task so that the association can
take C-CANCEL, and the C-STORE responses of C-GET sub-operations, while it works.
"""

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import trio

from ....protocol.commands import DimseMessage, DimseRequest, DimseResponse, next_message_id
from ....protocol.negotiation import AcceptedContext, Negotiated, SupportedContext
from ....client.link import DatasetSink, MemorySink
from ....storage.audit_records import AuditRecord
from ....storage.audit_records import Peer as AuditPeer
from ..audit import audit

if TYPE_CHECKING:
    from ..peer import Peer, PeerMessage
    from ...runtime.actor import ActorContext


class RunningOperation:
    """A running C-FIND/C-MOVE/C-GET: its cancel flag and the responses routed to it."""

    def __init__(self, message_id: int) -> None:
        self.message_id = message_id
        self.cancel_requested = False
        self.cancelled = trio.Event()
        self.done = trio.Event()
        self._responses_in, self.responses = trio.open_memory_channel[DimseResponse](64)

    def cancel(self) -> None:
        self.cancel_requested = True
        self.cancelled.set()

    def route(self, response: DimseResponse) -> None:
        try:
            self._responses_in.send_nowait(response)
        except trio.WouldBlock:
            pass  # more responses than requests outstanding: the peer is confused


class Session:
    """One association, as the services see it."""

    def __init__(
        self,
        *,
        association_id: str,
        link: "Peer",
        negotiated: Negotiated,
        calling_ae_title: str,
        called_ae_title: str,
        peer: str,
        ctx: "ActorContext",
        settings: Any,
    ) -> None:
        self.association_id = association_id
        self.link = link
        self.negotiated = negotiated
        self.calling_ae_title = calling_ae_title
        self.called_ae_title = called_ae_title
        self.peer = peer
        self.ctx = ctx
        self.settings = settings
        self.log = ctx.log
        self._last_message_id = 0
        self.username = ""  # the user identity the peer proved, if any
        self.tls_subject: str | None = None  # the peer certificate's subject over TLS

    def audit_peer(self) -> AuditPeer:
        """The requestor, as the audit trail names it."""
        return AuditPeer(
            ae_title=self.calling_ae_title, host=self.peer.rsplit(":", 1)[0], username=self.username, tls_subject=self.tls_subject
        )

    async def audit(self, record: AuditRecord) -> None:
        """Record it in the audit trail, if one is kept; returns once it is written."""
        settings = self.settings
        await audit(self.ctx, record, getattr(settings, "audit_path", None), wait=getattr(settings, "audit_wait", True))

    def context(self, context_id: int) -> AcceptedContext:
        accepted = self.negotiated.context(context_id)
        if accepted is None:
            raise KeyError(f"presentation context {context_id} was not accepted")
        return accepted

    def next_message_id(self) -> int:
        """Message IDs for requests we send on this association (C-GET sub-operations)."""
        self._last_message_id = next_message_id(self._last_message_id)
        return self._last_message_id

    async def respond(self, response: DimseMessage, context_id: int, dataset: bytes | None = None) -> None:
        await self.link.send(response, context_id, dataset)


class Service:
    requests: ClassVar[tuple[type[DimseRequest], ...]] = ()
    operation: ClassVar[bool] = False
    # What a peer must be allowed (storage/access.py) to use it; None: anyone (C-ECHO).
    permission: ClassVar[str | None] = None

    def contexts(self) -> list[SupportedContext]:
        return []

    def sink_for(self, session: Session | None, context_id: int, message: DimseMessage) -> DatasetSink:
        return MemorySink()

    async def held_syntaxes(self, ctx: "ActorContext", sop_classes: Collection[str]) -> Mapping[str, Collection[str]] | None:
        """For a service that sends instances back on the association (C-GET): per SOP
        class, the transfer syntaxes it holds them in, which decide the syntax of the
        contexts it will send on. None: this service sends nothing."""
        return None

    async def handle(self, session: Session, received: "PeerMessage", operation: RunningOperation | None) -> None:
        raise NotImplementedError
