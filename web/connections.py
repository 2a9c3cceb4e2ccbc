"""The HTTP server's bounds on what a client can hold (docs/operating.md, "Limits"):

- at most `max_connections` connections: one more closes the oldest, so idle or
  trickling connections cannot lock an administrator out (the DICOM listener treats
  waiting connections the same way);
- a request head must be whole (its blank line seen) within `request_timeout` of its
  first byte, or the connection is closed: a slowloris client that trickles a header
  forever is dropped;
- the head's size is bounded by the HTTP parser (h11's max incomplete event size).

`BoundedListener` wraps the listening socket; what it hands out is a stream that keeps
those rules and leaves the table when closed.
"""

from __future__ import annotations

from collections import OrderedDict

import trio

HEAD_END = b"\r\n\r\n"


class GuardedStream(trio.abc.HalfCloseableStream):
    def __init__(self, stream: trio.SocketStream, listener: "BoundedListener") -> None:
        self.stream = stream
        self.socket = stream.socket  # hypercorn reads peer and local addresses from it
        self._listener = listener
        self._head_deadline: float | None = None
        self._tail = b""  # the last bytes seen, to find a blank line split between reads

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        deadline = self._head_deadline if self._head_deadline is not None else float("inf")
        with trio.move_on_at(deadline):
            data = await self.stream.receive_some(max_bytes)
            self._follow_heads(bytes(data))
            return data
        await self.aclose()
        raise trio.BrokenResourceError("the request head was not complete in time")

    def _follow_heads(self, data: bytes) -> None:
        if not data or self._listener.request_timeout is None:
            return
        seen = self._tail + data
        ended = seen.rfind(HEAD_END)
        if ended >= 0:
            rest = seen[ended + len(HEAD_END):]
            # Bytes after the last blank line start the next head (or are a body).
            self._head_deadline = trio.current_time() + self._listener.request_timeout if rest else None
        elif self._head_deadline is None:
            self._head_deadline = trio.current_time() + self._listener.request_timeout
        self._tail = seen[-(len(HEAD_END) - 1):]

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        self._listener.forget(self)
        await self.stream.aclose()

    def evict(self) -> None:
        """Close the socket now (no await: the listener must not wait on a slow peer);
        the task serving it sees the stream closed and ends."""
        self._listener.forget(self)
        self.socket.close()


class BoundedListener(trio.abc.Listener[GuardedStream]):
    def __init__(self, listener: trio.SocketListener, *, max_connections: int, request_timeout: float | None) -> None:
        """`request_timeout` None: no head rule (after a WebSocket handshake, frames follow)."""
        self.listener = listener
        self.socket = listener.socket
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.open: OrderedDict[GuardedStream, None] = OrderedDict()  # oldest first
        self.evicted = 0

    async def accept(self) -> GuardedStream:
        stream = GuardedStream(await self.listener.accept(), self)
        while len(self.open) >= self.max_connections:
            oldest = next(iter(self.open))
            oldest.evict()
            self.evicted += 1
        self.open[stream] = None
        return stream

    def forget(self, stream: GuardedStream) -> None:
        self.open.pop(stream, None)

    async def aclose(self) -> None:
        await self.listener.aclose()
