"""The two ways the upper layer can go wrong, kept apart on purpose.

`RemoteProtocolError`: the peer sent something invalid. The decoder raises only this,
and it says how to answer: an A-ABORT reason, or for an A-ASSOCIATE-RQ that must be
rejected rather than aborted, the A-ASSOCIATE-RJ codes. The association object turns
it into an event of the state table; it never escapes to the caller from there.

`LocalProtocolError`: our own caller misused the API (a primitive the current state
does not allow, a field that cannot be encoded). It is a bug on our side of the wire.
"""

from .codes import AbortReason, AbortSource, Rejection


class ProtocolError(Exception):
    """Base of both protocol errors."""


class LocalProtocolError(ProtocolError):
    """The local user asked for something the protocol does not allow now."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that are not a valid PDU (or not an acceptable A-ASSOCIATE-RQ)."""

    abort_source = AbortSource.SERVICE_PROVIDER

    def __init__(
        self,
        message: str,
        *,
        reason: AbortReason = AbortReason.INVALID_PDU_PARAMETER_VALUE,
        rejection: Rejection | None = None,
    ) -> None:
        super().__init__(message)
        self.abort_reason = reason
        # Set only for an A-ASSOCIATE-RQ that is well framed but must be rejected
        # (unusable AE title, application context): the acceptor answers with an RJ.
        self.rejection = rejection
