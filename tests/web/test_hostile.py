"""Hostile HTTP clients: the node keeps serving DICOM and HTTP, and what a client can
hold stays bounded (connections, head size, head time)."""

from __future__ import annotations

import socket

import trio
from peers import echoscu

from triopacs.web.http_actor import CountHttpConnections

from node.nodes import peer, running_node
from web.client import get


async def raw_exchange(node, data: bytes, *, read: bool = True) -> bytes:
    """Send `data` on a fresh connection, half-close, and read everything the server says."""
    stream = await trio.open_tcp_stream(node.http.host, node.http.port)
    async with stream:
        await stream.send_all(data)
        if not read:
            return b""
        answer = bytearray()
        with trio.fail_after(15):
            while chunk := await stream.receive_some(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and len(answer) > 4096:
                    break
        return bytes(answer)


async def test_garbage_truncated_and_oversized_requests_get_4xx_or_a_close(tmp_path):
    async with running_node(tmp_path, keep_alive_timeout=1.0, request_timeout=1.0) as node:
        garbage = await raw_exchange(node, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n")
        assert garbage == b"" or garbage.startswith(b"HTTP/1.1 400")
        not_http = await raw_exchange(node, b"HELLO THERE\r\n\r\n")
        assert not_http == b"" or not_http.startswith(b"HTTP/1.1 400")
        huge_head = b"GET /live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
        oversized = await raw_exchange(node, huge_head)
        assert oversized == b"" or oversized.startswith((b"HTTP/1.1 400", b"HTTP/1.1 413", b"HTTP/1.1 431"))
        # A head cut short, then nothing: closed within the request timeout.
        truncated = await raw_exchange(node, b"GET /live HTTP/1.1\r\nHost: x\r\nX-Half")
        assert truncated == b"" or truncated.startswith(b"HTTP/1.1 4")
        (await echoscu(peer(node))).check()
        assert (await get(node, "/live")).status_code == 200


async def test_a_slowloris_client_is_closed_at_the_request_timeout(tmp_path):
    async with running_node(tmp_path, request_timeout=1.0, keep_alive_timeout=30.0) as node:
        stream = await trio.open_tcp_stream(node.http.host, node.http.port)
        async with stream:
            await stream.send_all(b"GET /live HTTP/1.1\r\nHost: x\r\n")
            began = trio.current_time()
            closed = False
            with trio.fail_after(20):
                try:
                    while True:  # one header line every 0.2 s, never the blank line
                        await stream.send_all(b"X-Slow: 1\r\n")
                        with trio.move_on_after(0.2):
                            if await stream.receive_some(1024) == b"":
                                closed = True
                                break
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    closed = True
            assert closed
            # Closed by the head deadline (1 s), long before the keep-alive timeout.
            assert trio.current_time() - began < 10
        (await echoscu(peer(node))).check()


async def test_a_flood_of_connections_stays_bounded_and_an_admin_still_gets_in(tmp_path):
    async with running_node(tmp_path, max_connections=20, keep_alive_timeout=60.0, request_timeout=60.0) as node:
        flood = []
        try:
            for _ in range(100):  # five times the limit, each sending half a request
                s = socket.create_connection((node.http.host, node.http.port))
                s.sendall(b"GET /live HTTP/1.1\r\n")
                flood.append(s)
            await trio.sleep(0)  # let the server accept what it can (not a wait for time)
            # The newest connection closes the oldest: a real client gets its answer.
            assert (await get(node, "/health")).status_code == 200
            counts = await node.system.lookup("/node/web/http").ask(CountHttpConnections())
            assert counts.open <= 20 and counts.evicted >= 80
            (await echoscu(peer(node))).check()
        finally:
            for s in flood:
                s.close()


async def test_an_event_stream_handshake_that_never_comes_is_dropped(tmp_path):
    async with running_node(tmp_path, request_timeout=1.0) as node:
        stream = await trio.open_tcp_stream(node.events.host, node.events.port)
        async with stream:
            await stream.send_all(b"GET /events HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            with trio.fail_after(20):
                while await stream.receive_some(1024):
                    pass
        (await echoscu(peer(node))).check()
