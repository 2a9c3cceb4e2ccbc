"""The node's timers: ARTIM for a connection that never asks to associate, and the idle
timeout for an association that goes quiet. Short timeouts, real clock; each test waits
for what the node does (closing, aborting), bounded by a deadline."""

import trio

from triopacs.client.link import DimseLink, LinkClosed
from triopacs.protocol.association import Requestor
from triopacs.protocol.catalog import VERIFICATION
from triopacs.protocol.events import Aborted, AssociationAccepted, ConnectionClosed
from triopacs.protocol.negotiation import ProposedContext, build_request
from triopacs.protocol.pdu import AReleaseRQ

from .nodes import running_node


async def test_a_connection_that_never_asks_is_closed_after_artim(tmp_path):
    async with running_node(tmp_path, artim_timeout=0.2) as node:
        stream = await trio.open_tcp_stream("127.0.0.1", node.address.port)
        started = trio.current_time()
        with trio.fail_after(10):
            assert await stream.receive_some(1024) == b""  # the node hung up on us
        assert trio.current_time() - started >= 0.2
        await stream.aclose()


async def test_an_idle_association_is_aborted(tmp_path):
    async with running_node(tmp_path, idle_timeout=0.3) as node:
        link = DimseLink(await trio.open_tcp_stream("127.0.0.1", node.address.port), Requestor())
        seen = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link.run)
            await link.request(build_request(
                calling_ae_title="QUIET", called_ae_title=node.config.node.ae_title,
                contexts=[ProposedContext(abstract_syntax=VERIFICATION)],
            ))
            assert isinstance(await link.next(), AssociationAccepted)
            with trio.fail_after(10):  # say nothing; the node must end it
                try:
                    while True:
                        seen.append(await link.next())
                except LinkClosed:
                    pass
        assert any(isinstance(event, Aborted) and event.by_peer for event in seen), seen
        assert isinstance(seen[-1], ConnectionClosed)


async def test_after_release_the_node_closes_when_the_requestor_does_not(tmp_path):
    """PS3.8 Sta13: having sent A-RELEASE-RP the acceptor waits ARTIM for the requestor
    to close, then closes itself (AA-2). ARTIM is started by our own primitive here, not
    by anything received, while the reader already waits for bytes."""
    async with running_node(tmp_path, artim_timeout=0.3, idle_timeout=600.0) as node:
        stream = await trio.open_tcp_stream("127.0.0.1", node.address.port)
        request = build_request(
            calling_ae_title="LINGER", called_ae_title=node.config.node.ae_title,
            contexts=[ProposedContext(abstract_syntax=VERIFICATION)],
        )
        await stream.send_all(request.encode())
        assert (await stream.receive_some(65536))[:1] == b"\x02"  # A-ASSOCIATE-AC
        await stream.send_all(AReleaseRQ().encode())
        with trio.fail_after(10):
            assert (await stream.receive_some(65536))[:1] == b"\x06"  # A-RELEASE-RP
            assert await stream.receive_some(1024) == b""  # and, without our close, the node's
        await stream.aclose()
