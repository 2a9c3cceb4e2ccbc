"""A streamed answer whose next piece is read while the current one is sent.

Starlette's StreamingResponse asks its body for a piece, sends it, then asks for the
next: with a WADO-RS body the reading of one file (a worker thread) and the sending of
the previous one (the socket) never overlap. Here one task pulls the body into a
channel of `depth` pieces and another sends from it, so both go on at once; memory is
still bounded (depth pieces, each at most a file or a read chunk). If the client goes
away, the send fails, the nursery cancels the reader and the body's own cleanup runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class ReadAheadResponse(Response):
    def __init__(self, body: AsyncIterator[bytes], *, media_type: str, headers: dict[str, str] | None = None, depth: int = 2) -> None:
        # As StreamingResponse does: no `body` attribute, so no Content-Length unless given.
        self.body_iterator = body
        self.depth = depth
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        pieces_in, pieces_out = trio.open_memory_channel[bytes](self.depth)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read, pieces_in)
            async with pieces_out:
                async for piece in pieces_out:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _read(self, pieces: trio.MemorySendChannel[bytes]) -> None:
        async with pieces:
            try:
                async for piece in self.body_iterator:
                    await pieces.send(piece)
            finally:
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    with trio.CancelScope(shield=True):
                        await aclose()
