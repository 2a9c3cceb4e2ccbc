"""What an association tells its driver: indications for the user, and instructions for
the transport and the ARTIM timer. One closed set of frozen values, read in order.

The driver sends `data_to_send()` before acting on CloseTransport, and owns the clock:
StartARTIM (re)arms the timer, StopARTIM disarms it, and expiry comes back in as
`artim_expired()`.
"""

import attrs

from .pdu import AAssociateAC, AAssociateRJ, AAssociateRQ, PresentationDataValue

# --- indications to the local user ---------------------------------------------------


@attrs.frozen
class AssociationRequested:
    """A-ASSOCIATE indication: a peer asks to associate; answer with accept() or reject()."""

    request: AAssociateRQ


@attrs.frozen
class AssociationAccepted:
    """A-ASSOCIATE confirmation (accept)."""

    response: AAssociateAC


@attrs.frozen
class AssociationRejected:
    """A-ASSOCIATE confirmation (reject); the transport is closed after it."""

    response: AAssociateRJ


@attrs.frozen
class DataReceived:
    """P-DATA indication: PDVs whose data are memoryviews of the received PDU."""

    pdvs: tuple[PresentationDataValue, ...]


@attrs.frozen
class ReleaseRequested:
    """A-RELEASE indication; collision is True when both sides asked at once (AR-8)."""

    collision: bool = False


@attrs.frozen
class ReleaseConfirmed:
    """A-RELEASE confirmation: the association ended normally."""


@attrs.frozen
class Aborted:
    """A-ABORT / A-P-ABORT indication.

    by_peer is True when the peer sent an A-ABORT PDU (AA-3; source and reason are its
    own); False when our provider aborted (AA-8: the peer broke the protocol; AA-4: the
    transport closed under an association).
    """

    source: int
    reason: int
    by_peer: bool


@attrs.frozen
class ConnectionClosed:
    """The transport connection is gone (reported after whatever the state table did about it)."""


# --- instructions to the driver ------------------------------------------------------


@attrs.frozen
class OpenTransport:
    """AE-1: connect to the peer, then call connection_made() (or connection_lost() on failure)."""


@attrs.frozen
class AcceptTransport:
    """AE-5: keep the incoming connection (it is already accepted on a TCP socket)."""


@attrs.frozen
class CloseTransport:
    """Close the connection once data_to_send() is flushed; then call connection_lost()."""


@attrs.frozen
class StartARTIM:
    """(Re)arm the ARTIM timer; on expiry call artim_expired()."""


@attrs.frozen
class StopARTIM:
    """Disarm the ARTIM timer."""


Indication = (
    AssociationRequested
    | AssociationAccepted
    | AssociationRejected
    | DataReceived
    | ReleaseRequested
    | ReleaseConfirmed
    | Aborted
    | ConnectionClosed
)
Instruction = OpenTransport | AcceptTransport | CloseTransport | StartARTIM | StopARTIM
AssociationEvent = Indication | Instruction
