"""What an association does to its peer, and what it hears from it, as the actor sees it.

`PeerEvent`s are the closed union of what the association's link reads from the peer;
the link's reader posts them to the association's mailbox. `Peer` is the other way: the
primitives the association (and the operations it runs) issue to the peer. Each is
noted in the trace as an effect of whoever issued it, so a replay can compare them; in
a replay there is no socket and a `Peer` without a link only notes.
"""

from collections.abc import AsyncIterable

import attrs

from ...client.link import DatasetSink, DimseLink
from ...protocol.commands import DimseMessage
from ...protocol.pdu import AAssociateAC, AAssociateRJ, AAssociateRQ
from ..runtime.actor import ActorContext
from ..runtime.codec import converter
from ..runtime.messages import message
from . import wire  # noqa: F401 - the codec must know DIMSE messages and PDUs


@message("association.peer-requested")
class PeerRequestedAssociation:
    request: AAssociateRQ


@message("association.peer-message")
class PeerMessage:
    """A whole DIMSE message; its dataset, if any, went into `dataset` as it arrived."""

    context_id: int
    message: DimseMessage
    dataset: DatasetSink | None = None


@message("association.peer-release-requested")
class PeerRequestedRelease:
    pass


@message("association.peer-aborted")
class PeerAborted:
    """The association was aborted: by the peer (by_peer) or by our side of the link."""

    source: int
    reason: int
    by_peer: bool


@message("association.peer-broke-protocol")
class PeerBrokeProtocol:
    """The peer broke DIMSE framing; the link has aborted the association."""

    error: str


@message("association.peer-closed")
class PeerClosed:
    """The connection is gone: nothing more will come."""


PeerEvent = PeerRequestedAssociation | PeerMessage | PeerRequestedRelease | PeerAborted | PeerBrokeProtocol | PeerClosed


@attrs.define
class Peer:
    """The primitives an association issues to its peer, over `link` (None in a replay),
    each noted as an effect in the trace when one is recorded."""

    link: DimseLink | None
    ctx: ActorContext

    def _note(self, primitive: str, **details: object) -> None:
        if self.ctx.system.recorder is not None:
            self.ctx.record_effect("peer", {"primitive": primitive, **converter.unstructure(details)})

    async def accept(self, ac: AAssociateAC) -> None:
        self._note("accept", contexts=[[c.context_id, int(c.result), c.transfer_syntax] for c in ac.presentation_contexts])
        if self.link is not None:
            await self.link.accept(ac)

    async def reject(self, rj: AAssociateRJ) -> None:
        self._note("reject", result=int(rj.result), source=int(rj.source), reason=int(rj.reason))
        if self.link is not None:
            await self.link.reject(rj)

    async def respond_release(self) -> None:
        self._note("release")
        if self.link is not None:
            await self.link.respond_release()

    async def abort(self) -> None:
        self._note("abort")
        if self.link is not None:
            await self.link.abort()

    async def close(self) -> None:
        """Close a connection that never associated."""
        self._note("close")
        if self.link is not None:
            await self.link.stream.aclose()

    async def send(
        self,
        message: DimseMessage,
        context_id: int,
        dataset: bytes | memoryview | AsyncIterable[bytes | memoryview] | None = None,
    ) -> None:
        self._note("send", message=message, context_id=context_id, with_dataset=dataset is not None)
        if self.link is not None:
            await self.link.send(message, context_id, dataset)
