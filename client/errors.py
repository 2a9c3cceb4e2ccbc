"""What can go wrong for the SCU client (`triopacs.connect`), as one family of exceptions.

Every error the client raises on purpose is a `ClientError`; the message of each is one
readable line (the CLI prints it as it is). Network-level failures end the association;
`OperationFailed` and `NoPresentationContext` leave it usable for the next request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol.codes import AbortReason, AbortSource, RejectResult, RejectSource
from ..protocol.status import Service, describe

if TYPE_CHECKING:
    from .results import RetrieveProgress


class ClientError(Exception):
    """Base of every error the SCU client raises on purpose."""


class ConnectionFailed(ClientError):
    """The TCP connection could not be opened (refused, unreachable, timed out)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot connect to {host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason


# Readable words for the codes of an A-ASSOCIATE-RJ and an A-ABORT (PS3.8 9.3.4, 9.3.8).
_REJECT_SOURCES = {
    RejectSource.SERVICE_USER: "service user",
    RejectSource.SERVICE_PROVIDER_ACSE: "service provider (ACSE)",
    RejectSource.SERVICE_PROVIDER_PRESENTATION: "service provider (presentation)",
}
_REJECT_REASONS = {
    (RejectSource.SERVICE_USER, 1): "no reason given",
    (RejectSource.SERVICE_USER, 2): "application context name not supported",
    (RejectSource.SERVICE_USER, 3): "calling AE title not recognized",
    (RejectSource.SERVICE_USER, 7): "called AE title not recognized",
    (RejectSource.SERVICE_PROVIDER_ACSE, 1): "no reason given",
    (RejectSource.SERVICE_PROVIDER_ACSE, 2): "protocol version not supported",
    (RejectSource.SERVICE_PROVIDER_PRESENTATION, 1): "temporary congestion",
    (RejectSource.SERVICE_PROVIDER_PRESENTATION, 2): "local limit exceeded",
}
_ABORT_REASONS = {
    AbortReason.REASON_NOT_SPECIFIED: "reason not specified",
    AbortReason.UNRECOGNIZED_PDU: "unrecognized PDU",
    AbortReason.UNEXPECTED_PDU: "unexpected PDU",
    AbortReason.UNRECOGNIZED_PDU_PARAMETER: "unrecognized PDU parameter",
    AbortReason.UNEXPECTED_PDU_PARAMETER: "unexpected PDU parameter",
    AbortReason.INVALID_PDU_PARAMETER_VALUE: "invalid PDU parameter value",
}


class AssociationRejected(ClientError):
    """The peer answered our A-ASSOCIATE-RQ with an A-ASSOCIATE-RJ."""

    def __init__(self, result: int, source: int, reason: int) -> None:
        self.result = result
        self.source = source
        self.reason = reason
        super().__init__(f"association rejected: {self.explanation}")

    @property
    def permanent(self) -> bool:
        return self.result == RejectResult.REJECTED_PERMANENT

    @property
    def explanation(self) -> str:
        """E.g. "called AE title not recognized (permanent, by the service user)"."""
        reason = _REJECT_REASONS.get((self.source, self.reason), f"reason {self.reason}")
        source = _REJECT_SOURCES.get(self.source, f"source {self.source}")
        kind = "permanent" if self.permanent else "transient, try again later"
        return f"{reason} ({kind}, by the {source})"


class AssociationAborted(ClientError):
    """The association ended under us: an A-ABORT from the peer or from our provider (the
    peer broke the protocol), the connection dropping, or the peer releasing it mid-work."""

    def __init__(self, detail: str, *, source: int | None = None, reason: int | None = None, by_peer: bool = False) -> None:
        super().__init__(f"association aborted: {detail}")
        self.detail = detail
        self.source = source
        self.reason = reason
        self.by_peer = by_peer

    @classmethod
    def from_abort(cls, source: int, reason: int, by_peer: bool) -> AssociationAborted:
        if by_peer and source == AbortSource.SERVICE_USER:
            detail = "the peer aborted it (service user)"
        elif by_peer:
            detail = f"the peer's provider aborted it: {_ABORT_REASONS.get(reason, f'reason {reason}')}"
        elif reason == AbortReason.REASON_NOT_SPECIFIED:
            detail = "the connection closed unexpectedly"
        else:  # our provider aborted on bad input from the peer
            detail = f"the peer sent an invalid PDU ({_ABORT_REASONS.get(reason, f'reason {reason}')}); we aborted"
        return cls(detail, source=source, reason=reason, by_peer=by_peer)


class DimseTimeout(ClientError, TimeoutError):
    """The peer did not answer in time; the association was aborted."""

    def __init__(self, waiting_for: str, timeout: float) -> None:
        super().__init__(f"no {waiting_for} within {timeout:g} s; association aborted")
        self.waiting_for = waiting_for
        self.timeout = timeout


class NoPresentationContext(ClientError):
    """No accepted presentation context can carry this SOP class (in this transfer syntax)."""

    def __init__(self, sop_class_uid: str, transfer_syntax_uid: str | None = None, *, role: str = "SCU") -> None:
        from ..protocol.catalog import name_of

        what = f"{name_of(sop_class_uid)} ({sop_class_uid})"
        if transfer_syntax_uid is not None:
            what += f" in {name_of(transfer_syntax_uid)} ({transfer_syntax_uid})"
        super().__init__(f"the peer accepted no presentation context for {what} with us as {role}")
        self.sop_class_uid = sop_class_uid
        self.transfer_syntax_uid = transfer_syntax_uid
        self.role = role


class OperationFailed(ClientError):
    """A DIMSE request ended with a Failure status (or the peer's answer made no sense)."""

    def __init__(
        self,
        operation: str,
        status: int,
        *,
        service: Service = Service.GENERAL,
        error_comment: str | None = None,
        progress: RetrieveProgress | None = None,
    ) -> None:
        self.operation = operation
        self.status = status
        self.meaning = describe(status, service).meaning
        self.error_comment = error_comment
        self.progress = progress  # the last C-MOVE/C-GET counts, when there were any
        text = f"{operation} failed: 0x{status:04X} {self.meaning}"
        if error_comment:
            text += f" ({error_comment})"
        super().__init__(text)


class InvalidInput(ClientError, ValueError):
    """What we were asked to send cannot be sent: not a Part 10 file, no SOP UIDs, a bad key."""
