"""Two sans-IO associations wired back to back, driven through every path of the table."""

import random

import pytest

from triopacs.protocol.association import Acceptor, Association, Requestor
from triopacs.protocol.codes import (
    AbortReason,
    AbortSource,
    RejectACSEReason,
    RejectResult,
    RejectSource,
    RejectUserReason,
)
from triopacs.protocol.errors import LocalProtocolError
from triopacs.protocol.events import (
    Aborted,
    AcceptTransport,
    AssociationAccepted,
    AssociationRejected,
    AssociationRequested,
    CloseTransport,
    ConnectionClosed,
    DataReceived,
    OpenTransport,
    ReleaseConfirmed,
    ReleaseRequested,
    StartARTIM,
    StopARTIM,
)
from triopacs.protocol.machine import State
from triopacs.protocol.negotiation import AcceptorPolicy, ProposedContext, SupportedContext, build_request, negotiate
from triopacs.protocol.pdu import AAbort, AAssociateRJ, AReleaseRQ, PDataTF, PresentationDataValue

VERIFICATION = "1.2.840.10008.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
POLICY = AcceptorPolicy(
    ae_titles=frozenset({"PACS"}),
    contexts=(SupportedContext(abstract_syntax=VERIFICATION), SupportedContext(abstract_syntax=CT)),
    max_pdu_length=16384,
)


def request(called: str = "PACS", **kw):
    contexts = [ProposedContext(abstract_syntax=VERIFICATION), ProposedContext(abstract_syntax=CT)]
    return build_request(calling_ae_title="SCU", called_ae_title=called, contexts=contexts, max_pdu_length=32768, **kw)


def pdv(data: bytes = b"hello", context_id: int = 1, *, command: bool = True) -> PresentationDataValue:
    return PresentationDataValue(context_id=context_id, is_command=command, is_last=True, data=data)


class ConnectionPair:
    """A requestor and an acceptor joined by an in-memory transport.

    pump() moves bytes both ways until nothing happens, acting as the drivers would on
    OpenTransport (connect both ends) and CloseTransport (the connection drops for both).
    Every event is recorded per side; `new(side)` returns those not yet looked at.
    """

    def __init__(self) -> None:
        self.requestor = Requestor()
        self.acceptor = Acceptor()
        self.log: dict[Association, list] = {self.requestor: [], self.acceptor: []}
        self._seen = {self.requestor: 0, self.acceptor: 0}
        self.connected = False

    def other(self, side: Association) -> Association:
        return self.acceptor if side is self.requestor else self.requestor

    def new(self, side: Association) -> list:
        events = self.log[side][self._seen[side] :]
        self._seen[side] = len(self.log[side])
        return events

    def pump(self) -> None:
        busy = True
        while busy:
            busy = False
            for side in (self.requestor, self.acceptor):
                data = side.data_to_send()
                if data and self.connected:
                    self.other(side).receive_data(data)
                    busy = True
                for event in side.take_events():
                    busy = True
                    self.log[side].append(event)
                    if isinstance(event, OpenTransport):
                        self.connected = True
                        self.acceptor.connection_made()
                        side.connection_made()
                    elif isinstance(event, CloseTransport) and self.connected:
                        self.connected = False
                        side.connection_lost()
                        self.other(side).connection_lost()

    def establish(self) -> None:
        self.requestor.request_association(request())
        self.pump()
        (asked,) = [e for e in self.new(self.acceptor) if isinstance(e, AssociationRequested)]
        decision = negotiate(asked.request, POLICY)
        self.acceptor.accept(decision.response)
        self.pump()
        assert self.requestor.state is self.acceptor.state is State.STA6
        self.new(self.requestor)


@pytest.fixture
def pair() -> ConnectionPair:
    return ConnectionPair()


def test_establishment(pair: ConnectionPair) -> None:
    pair.requestor.request_association(request())
    assert pair.requestor.state is State.STA4
    pair.pump()
    assert pair.new(pair.requestor) == [OpenTransport()]
    events = pair.new(pair.acceptor)
    assert events[:3] == [AcceptTransport(), StartARTIM(), StopARTIM()]
    assert isinstance(events[3], AssociationRequested) and events[3].request == request()
    assert pair.acceptor.state is State.STA3 and pair.requestor.state is State.STA5
    decision = negotiate(events[3].request, POLICY)
    pair.acceptor.accept(decision.response)
    pair.pump()
    assert pair.new(pair.requestor) == [AssociationAccepted(decision.response)]
    for side in (pair.requestor, pair.acceptor):
        assert side.is_established
        assert side.negotiated.find(CT).context_id == 3
    assert pair.requestor.negotiated.can_be_scu(CT) and pair.acceptor.negotiated.can_be_scp(CT)
    assert pair.requestor.peer_max_pdu_length == 16384 and pair.acceptor.peer_max_pdu_length == 32768


def test_data_both_ways_then_normal_release(pair: ConnectionPair) -> None:
    pair.establish()
    pair.requestor.send_data((pdv(b"ping"), pdv(b"x" * 1000, 3, command=False)))
    pair.pump()
    (received,) = pair.new(pair.acceptor)
    assert received == DataReceived((pdv(b"ping"), pdv(b"x" * 1000, 3, command=False)))
    pair.acceptor.send_data((pdv(b"pong"),))
    pair.pump()
    assert pair.new(pair.requestor) == [DataReceived((pdv(b"pong"),))]

    pair.requestor.request_release()
    pair.pump()
    assert pair.requestor.state is State.STA7
    assert pair.new(pair.acceptor) == [ReleaseRequested(collision=False)]
    assert pair.acceptor.state is State.STA8
    pair.acceptor.send_data((pdv(b"late"),))  # AR-7: data may still go out before the response
    pair.acceptor.respond_release()
    pair.pump()
    assert pair.new(pair.requestor) == [DataReceived((pdv(b"late"),)), ReleaseConfirmed(), CloseTransport(), ConnectionClosed()]
    assert pair.new(pair.acceptor) == [StartARTIM(), StopARTIM(), ConnectionClosed()]
    assert pair.requestor.state is pair.acceptor.state is State.STA1


def test_release_requested_by_the_acceptor(pair: ConnectionPair) -> None:
    pair.establish()
    pair.acceptor.request_release()
    pair.pump()
    assert pair.new(pair.requestor) == [ReleaseRequested(collision=False)]
    pair.requestor.respond_release()
    pair.pump()
    # The acceptor closes on AR-3; the requestor, in Sta13, sees the close (AR-5).
    assert pair.new(pair.acceptor) == [ReleaseConfirmed(), CloseTransport(), ConnectionClosed()]
    assert pair.new(pair.requestor) == [StartARTIM(), StopARTIM(), ConnectionClosed()]


@pytest.mark.parametrize("first", ["requestor", "acceptor"])
def test_release_collision(pair: ConnectionPair, first: str) -> None:
    pair.establish()
    sides = [pair.requestor, pair.acceptor]
    if first == "acceptor":
        sides.reverse()
    for side in sides:  # both ask before either hears the other
        side.request_release()
    pair.pump()
    assert pair.requestor.state is State.STA9 and pair.acceptor.state is State.STA10
    assert pair.new(pair.requestor) == [ReleaseRequested(collision=True)]
    assert pair.new(pair.acceptor) == [ReleaseRequested(collision=True)]
    with pytest.raises(LocalProtocolError):
        pair.acceptor.respond_release()  # the acceptor answers second, after the requestor's RP
    pair.requestor.respond_release()  # AR-9
    pair.pump()
    assert pair.requestor.state is State.STA11 and pair.acceptor.state is State.STA12
    assert pair.new(pair.acceptor) == [ReleaseConfirmed()]  # AR-10
    pair.acceptor.respond_release()  # AR-4
    pair.pump()
    assert pair.new(pair.requestor) == [ReleaseConfirmed(), CloseTransport(), ConnectionClosed()]  # AR-3
    assert pair.new(pair.acceptor) == [StartARTIM(), StopARTIM(), ConnectionClosed()]  # AR-5
    assert pair.requestor.state is pair.acceptor.state is State.STA1


@pytest.mark.parametrize("aborter", ["requestor", "acceptor"])
def test_user_abort(pair: ConnectionPair, aborter: str) -> None:
    pair.establish()
    side = getattr(pair, aborter)
    side.abort()
    assert side.state is State.STA13
    pair.pump()
    peer = pair.other(side)
    assert pair.new(peer) == [
        Aborted(source=AbortSource.SERVICE_USER, reason=0, by_peer=True), CloseTransport(), ConnectionClosed(),
    ]
    assert pair.new(side) == [StartARTIM(), StopARTIM(), ConnectionClosed()]


def test_provider_abort_on_invalid_pdu(pair: ConnectionPair) -> None:
    pair.establish()
    pair.acceptor.receive_data(b"\x04\x00\x00\x00\x00\x07\x00\x00\x00\x03\x02\x00\x00")  # PDV with an even context ID
    invalid = AbortReason.INVALID_PDU_PARAMETER_VALUE
    assert pair.acceptor.state is State.STA13
    pair.pump()
    assert pair.new(pair.acceptor) == [Aborted(2, invalid, by_peer=False), StartARTIM(), StopARTIM(), ConnectionClosed()]
    assert pair.new(pair.requestor) == [Aborted(2, invalid, by_peer=True), CloseTransport(), ConnectionClosed()]


def test_provider_abort_on_unexpected_pdu(pair: ConnectionPair) -> None:
    pair.establish()
    pair.requestor.receive_data(request().encode())  # an A-ASSOCIATE-RQ in Sta6: AA-8
    assert pair.requestor.take_events() == [Aborted(2, AbortReason.UNEXPECTED_PDU, by_peer=False), StartARTIM()]
    assert pair.requestor.has_data_to_send
    assert pair.requestor.data_to_send() == AAbort(source=2, reason=AbortReason.UNEXPECTED_PDU).encode()
    assert not pair.requestor.has_data_to_send  # drained


def test_pdata_over_our_announced_maximum_aborts(pair: ConnectionPair) -> None:
    pair.establish()
    too_big = PDataTF(pdvs=(pdv(bytes(16384)),)).encode()  # the acceptor announced 16384
    pair.acceptor.receive_data(too_big)
    assert pair.acceptor.state is State.STA13
    with pytest.raises(LocalProtocolError):
        pair.requestor.send_data((pdv(bytes(16384)),))  # and the requestor refuses to send it


def test_artim_expiry_waiting_for_the_request() -> None:
    acceptor = Acceptor()
    acceptor.connection_made()
    assert acceptor.take_events() == [AcceptTransport(), StartARTIM()]
    acceptor.artim_expired()  # AA-2
    assert acceptor.take_events() == [StopARTIM(), CloseTransport()]
    assert acceptor.state is State.STA1 and acceptor.data_to_send() == b""


def test_artim_expiry_after_rejection_when_the_peer_stays(pair: ConnectionPair) -> None:
    pair.requestor.request_association(request(called="ELSEWHERE"))
    pair.pump()
    (asked,) = [e for e in pair.new(pair.acceptor) if isinstance(e, AssociationRequested)]
    decision = negotiate(asked.request, POLICY)
    assert decision.response == AAssociateRJ(result=1, source=1, reason=RejectUserReason.CALLED_AE_TITLE_NOT_RECOGNIZED)
    pair.acceptor.reject(decision.response)  # AE-8
    assert pair.acceptor.state is State.STA13
    assert pair.acceptor.take_events() == [StartARTIM()]
    pair.acceptor.artim_expired()  # the requestor never closed
    assert pair.acceptor.take_events() == [StopARTIM(), CloseTransport()]


def test_rejection(pair: ConnectionPair) -> None:
    pair.requestor.request_association(request(called="ELSEWHERE"))
    pair.pump()
    (asked,) = [e for e in pair.new(pair.acceptor) if isinstance(e, AssociationRequested)]
    rj = negotiate(asked.request, POLICY).response
    pair.acceptor.reject(rj)
    pair.pump()
    assert pair.new(pair.requestor) == [OpenTransport(), AssociationRejected(rj), CloseTransport(), ConnectionClosed()]
    assert pair.new(pair.acceptor) == [StartARTIM(), StopARTIM(), ConnectionClosed()]
    assert pair.requestor.negotiated is None and pair.requestor.response == rj


def test_provider_rejects_wrong_protocol_version_itself(pair: ConnectionPair) -> None:
    import attrs

    pair.requestor.request_association(attrs.evolve(request(), protocol_version=2))
    pair.pump()
    assert not any(isinstance(e, AssociationRequested) for e in pair.log[pair.acceptor])
    (rejected,) = [e for e in pair.log[pair.requestor] if isinstance(e, AssociationRejected)]
    assert rejected.response == AAssociateRJ(
        result=RejectResult.REJECTED_PERMANENT,
        source=RejectSource.SERVICE_PROVIDER_ACSE,
        reason=RejectACSEReason.PROTOCOL_VERSION_NOT_SUPPORTED,
    )


def test_unusable_request_rejected_by_the_provider() -> None:
    acceptor = Acceptor()
    acceptor.connection_made()
    wire = bytearray(request().encode())
    wire[10:26] = b" " * 16  # the called AE title, all spaces
    acceptor.receive_data(bytes(wire))
    assert acceptor.state is State.STA13
    assert acceptor.data_to_send() == AAssociateRJ(result=1, source=1, reason=7).encode()


def test_transport_lost_under_an_association(pair: ConnectionPair) -> None:
    pair.establish()
    pair.requestor.connection_lost()
    assert pair.requestor.take_events() == [Aborted(2, 0, by_peer=False), ConnectionClosed()]  # AA-4
    assert pair.requestor.state is State.STA1


def test_connection_refused_while_connecting() -> None:
    requestor = Requestor()
    requestor.request_association(request())
    requestor.take_events()
    requestor.connection_lost()  # AA-4 in Sta4
    assert requestor.take_events() == [Aborted(2, 0, by_peer=False), ConnectionClosed()]


def test_abort_while_connecting_closes_without_a_pdu() -> None:
    requestor = Requestor()
    requestor.request_association(request())
    requestor.take_events()
    requestor.abort()  # AA-2 in Sta4
    assert requestor.take_events() == [StopARTIM(), CloseTransport()]
    assert requestor.data_to_send() == b""


def test_empty_read_means_the_peer_closed(pair: ConnectionPair) -> None:
    pair.establish()
    pair.acceptor.receive_data(b"")
    assert pair.acceptor.state is State.STA1
    assert pair.acceptor.take_events()[-1] == ConnectionClosed()


def test_stale_input_is_ignored(pair: ConnectionPair) -> None:
    pair.establish()
    pair.requestor.artim_expired()  # a timer the driver did not cancel in time
    assert pair.requestor.state is State.STA6 and pair.requestor.take_events() == []
    pair.requestor.connection_lost()
    pair.requestor.take_events()
    pair.requestor.receive_data(AReleaseRQ().encode())  # bytes read before the close
    pair.requestor.connection_lost()
    assert pair.requestor.state is State.STA1
    assert pair.requestor.take_events() == [ConnectionClosed()] and pair.requestor.data_to_send() == b""


@pytest.mark.parametrize(
    "misuse",
    [
        lambda p: p.requestor.send_data((pdv(),)),
        lambda p: p.acceptor.request_association(request()),
        lambda p: p.requestor.accept(None),
        lambda p: p.requestor.reject(None),
        lambda p: p.requestor.request_release(),
        lambda p: p.requestor.respond_release(),
        lambda p: p.requestor.abort(),
        lambda p: p.requestor.connection_made(),
        lambda p: p.requestor.send_data(()),
    ],
)
def test_local_misuse_raises_and_changes_nothing(pair: ConnectionPair, misuse) -> None:
    with pytest.raises(LocalProtocolError):
        misuse(pair)
    assert pair.requestor.state is pair.acceptor.state is State.STA1
    assert pair.requestor.data_to_send() == b"" and pair.requestor.take_events() == []


def test_misuse_when_established(pair: ConnectionPair) -> None:
    pair.establish()
    for misuse in (pair.requestor.respond_release, pair.requestor.connection_made, lambda: pair.requestor.request_association(request())):
        with pytest.raises(LocalProtocolError):
            misuse()
    assert pair.requestor.state is State.STA6


def test_unencodable_primitives_leave_no_trace(pair: ConnectionPair) -> None:
    pair.requestor.request_association(request())
    pair.pump()
    pair.new(pair.acceptor)
    with pytest.raises(LocalProtocolError):
        pair.acceptor.reject(AAssociateRJ(result=1, source=1, reason=300))
    assert pair.acceptor.state is State.STA3 and pair.acceptor.data_to_send() == b""
    pair.acceptor.accept(negotiate(pair.acceptor.request, POLICY).response)
    pair.pump()
    for bad in (pdv(context_id=2), pdv(context_id=257)):
        with pytest.raises(LocalProtocolError):
            pair.requestor.send_data((bad,))
    assert pair.requestor.state is State.STA6 and pair.requestor.data_to_send() == b""


def test_local_data_refused_while_awaiting_release_reply(pair: ConnectionPair) -> None:
    pair.establish()
    pair.requestor.request_release()
    with pytest.raises(LocalProtocolError):
        pair.requestor.send_data((pdv(),))  # Evt9 in Sta7 is blank


# --- fuzz: peer bytes never make an association raise --------------------------------

FUZZ_ROUNDS = 5000


def test_fuzz_association_never_raises() -> None:
    rng = random.Random(7)
    seeds = [request().encode(), PDataTF(pdvs=(pdv(),)).encode(), AReleaseRQ().encode(), AAbort().encode()]
    for round_ in range(FUZZ_ROUNDS):
        seed = rng.choice(seeds)
        data = bytearray(seed)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = bytearray(rng.randbytes(rng.randint(1, 80)))
        if round_ % 2:
            side = Acceptor()
            side.connection_made()
        else:
            pair = ConnectionPair()
            pair.establish()
            side = pair.acceptor
        side.take_events()
        before = side.state
        for i in range(0, len(data), 7):
            side.receive_data(bytes(data[i : i + 7]))  # must not raise
        events = side.take_events()
        sent = side.data_to_send()
        if sent.startswith(b"\x07"):  # we aborted: the table sends us to wait for the close
            assert side.state is State.STA13, (before, bytes(data))
        if side.state is State.STA13 and before is State.STA6:
            assert any(isinstance(e, Aborted) for e in events) or sent.startswith(b"\x07")
