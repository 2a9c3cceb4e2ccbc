"""The two protocol error kinds (after h11): our own misuse vs. a peer's bad input.

LocalProtocolError: the caller asked for something the protocol forbids (a bug on our side).
RemoteProtocolError: the peer sent something invalid; it carries what to put in the
A-ABORT (source, reason) or, during association setup, the A-ASSOCIATE-RJ to send.
"""


class ProtocolError(Exception):
    pass


class LocalProtocolError(ProtocolError):
    pass


class RemoteProtocolError(ProtocolError):
    def __init__(self, message, *, abort_source=2, abort_reason=0, reject=None):
        super().__init__(message)
        self.abort_source = abort_source
        self.abort_reason = abort_reason
        self.reject = reject
