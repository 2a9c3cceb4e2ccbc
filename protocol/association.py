"""A sans-IO DICOM association: bytes and primitives in, events and bytes out.

The driver (an actor doing the real I/O) calls:
- transport/timer inputs: connection_made(), receive_data(bytes), connection_lost(),
  artim_expired();
- the user's primitives: request_association(rq) [requestor], accept(ac) / reject(rj)
  [acceptor], send_data(pdvs), request_release(), respond_release(), abort();
and after each call drains data_to_send() (bytes, send them first) and take_events()
(indications for the user plus transport/ARTIM instructions, in order).

Every input goes through machine.step with the one state table. Peer bytes never make
these methods raise: decoding errors become Evt19 (or a rejected Evt6) and follow the
table. Misuse by the caller raises LocalProtocolError and changes nothing.
"""

from enum import Enum

from .codes import RejectACSEReason, RejectResult, RejectSource
from .decoder import DEFAULT_MAX_ASSOCIATE_LENGTH, DEFAULT_MAX_PDATA_LENGTH, PDUDecoder
from .errors import LocalProtocolError, RemoteProtocolError
from .events import AssociationEvent, ConnectionClosed, DataReceived
from .machine import TABLE, Action, Event, Input, SendPDU, State, step
from .negotiation import Negotiated, agreement
from .pdu import (
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
    PresentationDataValue,
)


class Role(Enum):
    REQUESTOR = "requestor"
    ACCEPTOR = "acceptor"


_EVENT_OF_PDU = {
    AAssociateRQ: Event.EVT6,
    AAssociateAC: Event.EVT3,
    AAssociateRJ: Event.EVT4,
    PDataTF: Event.EVT10,
    AReleaseRQ: Event.EVT12,
    AReleaseRP: Event.EVT13,
    AAbort: Event.EVT16,
}
_PDV_HEADER_LENGTH = 6
# attrs' frozen __init__ is slow for a per-PDU object; the hot path fills the slot itself.
_new = object.__new__
_set_pdvs = DataReceived.pdvs.__set__

# The two hot paths (a P-DATA-TF received or sent in Sta6) skip the generic dispatch;
# they must stay exactly what the table says.
assert TABLE[State.STA6, Event.EVT10].action is Action.DT_2 and TABLE[State.STA6, Event.EVT10].next_state is State.STA6
assert TABLE[State.STA6, Event.EVT9].action is Action.DT_1 and TABLE[State.STA6, Event.EVT9].next_state is State.STA6


def provider_rejection(rq: AAssociateRQ) -> AAssociateRJ | None:
    """The UL provider's own acceptance test of an A-ASSOCIATE-RQ (AE-6): protocol version 1.

    Receivers test only bit 0 of the protocol version (PS3.8 9.3.2).
    """
    if rq.protocol_version & 1:
        return None
    return AAssociateRJ(
        result=RejectResult.REJECTED_PERMANENT,
        source=RejectSource.SERVICE_PROVIDER_ACSE,
        reason=RejectACSEReason.PROTOCOL_VERSION_NOT_SUPPORTED,
    )


class Association:
    """One association, either role. See the module docstring for the calling pattern.

    max_pdata_length bounds received P-DATA-TF PDUs until our own maximum length
    sub-item (in the RQ or AC we send) replaces it; max_associate_length bounds a
    received A-ASSOCIATE-RQ/AC.
    """

    def __init__(
        self,
        role: Role,
        *,
        max_pdata_length: int = DEFAULT_MAX_PDATA_LENGTH,
        max_associate_length: int = DEFAULT_MAX_ASSOCIATE_LENGTH,
    ) -> None:
        self.role = role
        self.state = State.STA1
        self.request: AAssociateRQ | None = None
        self.response: AAssociateAC | AAssociateRJ | None = None
        self._requestor = role is Role.REQUESTOR
        self._default_max_pdata = max_pdata_length
        self._decoder = PDUDecoder(max_pdata_length=max_pdata_length, max_associate_length=max_associate_length)
        self._negotiated: Negotiated | None = None
        self._out: list[bytes] = []
        self._events: list[AssociationEvent] = []

    # --- reading outputs ---------------------------------------------------------

    @property
    def has_data_to_send(self) -> bool:
        return bool(self._out)

    def data_to_send(self) -> bytes:
        """Bytes to write to the transport, drained."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def take_events(self) -> list[AssociationEvent]:
        """Indications and instructions since the last call, in order, drained."""
        events = self._events
        self._events = []
        return events

    @property
    def is_established(self) -> bool:
        return self.state is State.STA6

    @property
    def negotiated(self) -> Negotiated | None:
        """What the association agreed on, once an A-ASSOCIATE-AC was sent or received."""
        if self._negotiated is None and isinstance(self.response, AAssociateAC) and self.request is not None:
            self._negotiated = agreement(self.request, self.response, local_is_requestor=self._requestor)
        return self._negotiated

    @property
    def peer_max_pdu_length(self) -> int:
        """The peer's maximum P-DATA-TF variable field length; 0 = unlimited or not known yet."""
        if self._requestor:
            return self.response.user_information.max_pdu_length if isinstance(self.response, AAssociateAC) else 0
        return self.request.user_information.max_pdu_length if self.request is not None else 0

    # --- transport and timer inputs ----------------------------------------------

    def connection_made(self) -> None:
        """The transport connection is open: confirmed (requestor, Evt2) or incoming (acceptor, Evt5)."""
        if self._requestor:
            self._step(Event.EVT2, self.request)
        else:
            self._step(Event.EVT5)

    def connection_lost(self) -> None:
        """The transport connection closed, for whatever reason (Evt17)."""
        self._step(Event.EVT17)
        self._events.append(ConnectionClosed())

    def artim_expired(self) -> None:
        """The ARTIM timer the driver armed on StartARTIM ran out (Evt18)."""
        self._step(Event.EVT18)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes read from the transport, in any chunking. An empty read means the peer closed."""
        if not data:
            self.connection_lost()
            return
        if self.state is State.STA1:
            return  # no transport: stale bytes read before we closed (the table ignores them)
        decoder = self._decoder
        decoder.feed(data)
        while True:
            try:
                pdu = decoder.next_pdu()
            except RemoteProtocolError as exc:
                if exc.reject is not None:
                    rejection = AAssociateRJ.from_rejection(exc.reject)
                    self._step(Event.EVT6, rejection=rejection)
                else:
                    self._step(Event.EVT19, reason=exc.abort_reason)
                continue
            if pdu is None:
                return
            pdu_type = type(pdu)
            if pdu_type is PDataTF and self.state is State.STA6:
                # The hot path, DT-2 of the table without the generic dispatch.
                event = _new(DataReceived)
                _set_pdvs(event, pdu.pdvs)
                self._events.append(event)
                continue
            event = _EVENT_OF_PDU[pdu_type]
            if event is Event.EVT6:
                if self.state is State.STA2:
                    self.request = pdu
                self._step(event, pdu, rejection=provider_rejection(pdu))
            else:
                if event is Event.EVT3 and self.state is State.STA5:
                    self.response = pdu
                elif event is Event.EVT4 and self.state is State.STA5:
                    self.response = pdu
                self._step(event, pdu)

    # --- the local user's primitives ---------------------------------------------

    def request_association(self, rq: AAssociateRQ) -> None:
        """A-ASSOCIATE request (Evt1). The RQ is sent once connection_made() is called."""
        self._require(Role.REQUESTOR, "request an association")
        rq.encode()  # refuse an unencodable request now, not later in connection_made()
        self._step(Event.EVT1)
        self.request = rq
        self._decoder.max_pdata_length = rq.user_information.max_pdu_length or self._default_max_pdata

    def accept(self, ac: AAssociateAC) -> None:
        """A-ASSOCIATE response, accept (Evt7)."""
        self._require(Role.ACCEPTOR, "accept an association")
        self._step(Event.EVT7, ac)
        self.response = ac
        self._decoder.max_pdata_length = ac.user_information.max_pdu_length or self._default_max_pdata

    def reject(self, rj: AAssociateRJ) -> None:
        """A-ASSOCIATE response, reject (Evt8)."""
        self._require(Role.ACCEPTOR, "reject an association")
        self._step(Event.EVT8, rj)
        self.response = rj

    def send_data(self, pdvs: tuple[PresentationDataValue, ...]) -> None:
        """P-DATA request (Evt9): one P-DATA-TF PDU carrying pdvs, within the peer's maximum length."""
        if not pdvs:
            raise LocalProtocolError("a P-DATA request needs at least one PDV")
        length = 0
        for pdv in pdvs:
            if not (0 < pdv.context_id < 256 and pdv.context_id & 1):
                raise LocalProtocolError(f"presentation context ID {pdv.context_id} is not an odd number in 1..255")
            length += len(pdv.data) + _PDV_HEADER_LENGTH
        limit = self.peer_max_pdu_length
        if limit and length > limit:
            raise LocalProtocolError(f"P-DATA-TF of {length} bytes exceeds the peer's maximum length {limit}")
        pdu = PDataTF(pdvs=tuple(pdvs))
        if self.state is State.STA6:  # the hot path, DT-1 of the table
            self._out.append(pdu.encode())
            return
        self._step(Event.EVT9, pdu)

    def request_release(self) -> None:
        """A-RELEASE request (Evt11)."""
        self._step(Event.EVT11)

    def respond_release(self) -> None:
        """A-RELEASE response (Evt14), after a ReleaseRequested event."""
        self._step(Event.EVT14)

    def abort(self) -> None:
        """A-ABORT request (Evt15)."""
        self._step(Event.EVT15)

    # --- internals ---------------------------------------------------------------

    def _require(self, role: Role, what: str) -> None:
        if self.role is not role:
            raise LocalProtocolError(f"an association {self.role.value} cannot {what}")

    def _step(self, event: Event, pdu=None, *, reason: int = 0, rejection: AAssociateRJ | None = None) -> None:
        inp = Input(pdu=pdu, reason=reason, rejection=rejection, requestor=self._requestor)
        next_state, outputs = step(self.state, event, inp)
        # Encode before changing anything: a PDU our user built may be unencodable
        # (LocalProtocolError), and then the call must leave no trace.
        encoded = [output.pdu.encode() if type(output) is SendPDU else output for output in outputs]
        self.state = next_state
        for output in encoded:
            if type(output) is bytes:
                self._out.append(output)
            else:
                self._events.append(output)


class Requestor(Association):
    """The association-requestor side (an SCU opening the association)."""

    def __init__(self, **limits: int) -> None:
        super().__init__(Role.REQUESTOR, **limits)


class Acceptor(Association):
    """The association-acceptor side (the node answering an incoming connection)."""

    def __init__(self, **limits: int) -> None:
        super().__init__(Role.ACCEPTOR, **limits)
