"""DimseLink over real loopback TCP: both roles, datasets streamed, release and aborts."""

import hashlib
import os

import pytest
import trio

from triopacs.client.link import DimseLink, LinkClosed, MemorySink, MessageReceived, ProtocolViolation
from triopacs.protocol.association import Acceptor, Requestor
from triopacs.protocol.commands import CEchoRQ, CEchoRSP, CStoreRQ, CStoreRSP
from triopacs.protocol.events import Aborted, AssociationAccepted, AssociationRequested, ConnectionClosed, ReleaseConfirmed, ReleaseRequested
from triopacs.protocol.negotiation import AcceptorPolicy, ProposedContext, SupportedContext, build_request, negotiate

VERIFICATION = "1.2.840.10008.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
POLICY = AcceptorPolicy(
    ae_titles=frozenset({"NODE"}),
    contexts=(SupportedContext(abstract_syntax=VERIFICATION), SupportedContext(abstract_syntax=CT)),
    max_pdu_length=16384,
)


async def serve_one(listener, received: list, *, respond=True):
    stream = await listener.accept()
    link = DimseLink(stream, Acceptor())
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        while True:
            try:
                event = await link.next()
            except LinkClosed:
                return
            received.append(event)
            match event:
                case AssociationRequested(request=rq):
                    await link.accept(negotiate(rq, POLICY).response)
                case MessageReceived(context_id=cid, message=CEchoRQ() as rq):
                    await link.send(CEchoRSP(message_id_being_responded_to=rq.message_id, status=0), cid)
                case MessageReceived(context_id=cid, message=CStoreRQ() as rq) if respond:
                    await link.send(CStoreRSP(message_id_being_responded_to=rq.message_id, status=0, affected_sop_instance_uid=rq.affected_sop_instance_uid), cid)
                case ReleaseRequested():
                    await link.respond_release()


async def open_requestor(port):
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    link = DimseLink(stream, Requestor())
    return link


async def chunks(data: bytes, size: int):
    for i in range(0, len(data), size):
        await trio.sleep(0)
        yield data[i : i + size]


async def test_echo_store_release_over_tcp():
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    received = []
    dataset = os.urandom(3 * 1024 * 1024 + 2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_one, listeners[0], received)
        link = await open_requestor(port)
        nursery.start_soon(link.run)
        rq = build_request(calling_ae_title="SCU", called_ae_title="NODE", contexts=[ProposedContext(abstract_syntax=VERIFICATION), ProposedContext(abstract_syntax=CT)])
        await link.request(rq)
        assert isinstance(await link.next(), AssociationAccepted)
        ctx = link.association.negotiated.find(VERIFICATION)
        await link.send(CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION), ctx.context_id)
        reply = await link.next()
        assert reply.message == CEchoRSP(message_id_being_responded_to=1, status=0)
        ct = link.association.negotiated.find(CT)
        store = CStoreRQ(message_id=2, affected_sop_class_uid=CT, affected_sop_instance_uid="1.2.3")
        await link.send(store, ct.context_id, chunks(dataset, 100_000))
        reply = await link.next()
        assert reply.message.status == 0
        await link.release()
        assert isinstance(await link.next(), ReleaseConfirmed)
        assert isinstance(await link.next(), ConnectionClosed)
        with pytest.raises(LinkClosed):
            await link.next()
    stored = [e for e in received if isinstance(e, MessageReceived) and isinstance(e.message, CStoreRQ)]
    assert hashlib.sha256(stored[0].dataset.data).digest() == hashlib.sha256(dataset).digest()
    assert isinstance(received[-1], ConnectionClosed)


async def test_peer_vanishing_mid_dataset_discards_the_sink():
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    discarded = trio.Event()
    events = []

    class WatchedSink(MemorySink):
        async def discard(self):
            discarded.set()

    async def acceptor():
        stream = await listeners[0].accept()
        link = DimseLink(stream, Acceptor(), sink_for=lambda cid, m: WatchedSink())
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            while True:
                try:
                    event = await link.next()
                except LinkClosed:
                    return
                events.append(event)
                if isinstance(event, AssociationRequested):
                    await link.accept(negotiate(event.request, POLICY).response)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(acceptor)
        link = await open_requestor(port)
        nursery.start_soon(link.run)
        await link.request(build_request(calling_ae_title="SCU", called_ae_title="NODE", contexts=[ProposedContext(abstract_syntax=CT)]))
        await link.next()
        store = CStoreRQ(message_id=1, affected_sop_class_uid=CT, affected_sop_instance_uid="1.2.3")
        # Send half a dataset by hand, then drop the connection.
        from triopacs.protocol.fragments import MessageFragmenter

        fragmenter = MessageFragmenter(store, context_id=1, max_pdu_length=16384)
        for pdu in fragmenter.add_data(b"\0" * 200_000):
            link.association.send_data(pdu.pdvs)
            await link.flush()
        await link.stream.aclose()
        await discarded.wait()
    assert any(isinstance(e, Aborted) for e in events)
    assert isinstance(events[-1], ConnectionClosed)
    assert not any(isinstance(e, MessageReceived) for e in events)


async def test_malformed_command_set_aborts_with_a_violation():
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    received = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_one, listeners[0], received)
        link = await open_requestor(port)
        nursery.start_soon(link.run)
        await link.request(build_request(calling_ae_title="SCU", called_ae_title="NODE", contexts=[ProposedContext(abstract_syntax=VERIFICATION)]))
        await link.next()
        from triopacs.protocol.pdu import PresentationDataValue

        link.association.send_data((PresentationDataValue(context_id=1, is_command=True, is_last=True, data=b"\x08\x00\x00\x00garbage!"),))
        await link.flush()
        event = await link.next()
        assert isinstance(event, Aborted) and event.by_peer
    assert any(isinstance(e, ProtocolViolation) for e in received)


async def test_a_request_already_waiting_when_the_acceptor_starts_is_not_lost():
    # The peer's A-ASSOCIATE-RQ may be in the socket before our reader runs; the machine
    # must already be out of Sta1 (where the table ignores bytes) by the first read.
    import trio.testing

    ours, theirs = trio.testing.memory_stream_pair()
    rq = build_request(calling_ae_title="SCU", called_ae_title="NODE", contexts=[ProposedContext(abstract_syntax=VERIFICATION)])
    await theirs.send_all(rq.encode())
    link = DimseLink(ours, Acceptor())
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        event = await link.next()
        assert isinstance(event, AssociationRequested)
        assert event.request.calling_ae_title.strip() == "SCU"
        nursery.cancel_scope.cancel()
