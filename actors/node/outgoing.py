"""A request the node sends on an association a peer opened: the storage commitment
report (N-EVENT-REPORT) that goes back on the association its N-ACTION came on.

Another actor asks the association with `SendRequest`; the association runs it as an
operation of its own, one at a time with the peer's requests (so its fragments never
mix with a response's), with a Message ID of the association's. The peer's response is
routed to it like a C-GET sub-operation's, and the ask is answered with `PeerAnswered`,
or fails with `PeerUnavailable` when the association ends first or the peer does not
answer within the DIMSE timeout.
"""

import attrs
import trio
from pydicom import Dataset

from ...protocol.commands import DimseRequest, DimseResponse
from ...protocol.datasets import encode_dataset
from ..runtime.errors import ReplyError
from ..runtime.mailbox import Reply
from ..runtime.messages import message
from .peer import Peer
from .services.base import RunningOperation


@message("association.send-request")
class SendRequest:
    """Send `request` on the presentation context `context_id` (its Message ID is
    replaced by the association's own) and answer with the peer's response."""

    request: DimseRequest
    context_id: int
    dataset: Dataset | None = None  # encoded in the context's transfer syntax when sent


@message("association.peer-answered")
class PeerAnswered:
    response: DimseResponse


class PeerUnavailable(ReplyError):
    """The association could not carry the request, or ended before its answer."""


@attrs.define
class Outgoing:
    """A SendRequest waiting for its turn, with the ask it answers."""

    request: SendRequest
    reply: Reply


async def send_and_wait(
    peer: Peer, outgoing: Outgoing, operation: RunningOperation, *, transfer_syntax: str, timeout: float
) -> None:
    """Send the request as `operation` and answer the ask with the response to it."""
    asked = outgoing.request
    request = attrs.evolve(asked.request, message_id=operation.message_id)
    response: DimseResponse | None = None
    try:
        data = None if asked.dataset is None else encode_dataset(asked.dataset, transfer_syntax)
        await peer.send(request, asked.context_id, data)
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on, operation.cancelled, nursery.cancel_scope)
                while response is None:
                    received = await operation.responses.receive()
                    if received.message_id_being_responded_to == operation.message_id:
                        response = received
                nursery.cancel_scope.cancel()
    except Exception as error:  # the link closed under us, or the request could not be encoded
        outgoing.reply.fail(PeerUnavailable(f"the request could not be sent: {type(error).__name__}: {error}"))
        return
    finally:
        if response is None and not outgoing.reply.done:
            why = "the association ended" if operation.cancel_requested else f"no answer within {timeout:g} s"
            outgoing.reply.fail(PeerUnavailable(f"{why} before the peer answered"))
    if response is not None:
        outgoing.reply.send(PeerAnswered(response=response))


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
