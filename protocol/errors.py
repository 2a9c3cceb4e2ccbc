"""The two protocol error kinds (after h11): our own misuse vs. a peer's bad input.

LocalProtocolError: the caller asked for something the protocol forbids now (a primitive
the current state does not allow, a field that cannot be encoded): a bug on our side.
RemoteProtocolError: the peer sent something invalid. It carries what to put in the
A-ABORT (abort_source, abort_reason) or, for an A-ASSOCIATE-RQ that is well framed but
must be rejected rather than aborted, the A-ASSOCIATE-RJ codes (reject). The PDU decoder
raises nothing else; the association object turns it into a state-table event, so it
never escapes to the association's caller.
"""

from .codes import AbortReason, AbortSource, Rejection


class ProtocolError(Exception):
    pass


class LocalProtocolError(ProtocolError):
    pass


class RemoteProtocolError(ProtocolError):
    def __init__(
        self,
        message: str,
        *,
        abort_source: int = AbortSource.SERVICE_PROVIDER,
        abort_reason: int = AbortReason.REASON_NOT_SPECIFIED,
        reject: Rejection | None = None,
    ) -> None:
        super().__init__(message)
        self.abort_source = abort_source
        self.abort_reason = abort_reason
        self.reject = reject
