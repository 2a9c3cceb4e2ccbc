"""The live event stream: ws://bind:events_port/events[?types=tag,area,...] sends each
runtime event as one JSON text message (event_json.py), on trio-websocket.

A client never slows the node: it has its own bounded queue on the event bus, and one
that falls that far behind is closed with code 4008 ("fell behind"); a client may
reconnect and read /api/v1/... for what it missed. Past `max_event_clients` a handshake
is refused (HTTP 503); a connection that does not finish its handshake within
`request_timeout` is closed; at most twice `max_event_clients` connections are open
(one more closes the oldest).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, WebSocketServer

from ..actors import Actor, ActorError
from ..actors.node.listener import GetAddress, ListeningOn
from ..actors.node.security import SECURITY_PATH, Authenticate, CheckToken
from ..config import HttpSettings
from .auth import MAX_CREDENTIALS, Unauthorized, basic_credentials
from .connections import BoundedListener
from .event_json import event_json, event_type, wanted

FELL_BEHIND = 4008  # a private-use close code (RFC 6455 7.4.2): the client's queue overflowed
CLOSE_WAIT = 2.0  # seconds to wait for a closing handshake with a client that may never read


class EventStream(Actor):
    replayable = False  # driven by sockets
    accepts = (GetAddress,)

    def __init__(self, *, settings: HttpSettings, access: bool = False) -> None:
        """`access`: [access] is on - a client needs a user whose role allows `system`
        (HTTP basic or a bearer token in the Authorization header, or ?token=)."""
        self.settings = settings
        self.access = access
        self.clients = 0

    async def on_start(self) -> None:
        listeners = await trio.open_tcp_listeners(self.settings.events_port, host=self.settings.bind)
        host, port = listeners[0].socket.getsockname()[:2]
        self.address = ListeningOn(host=host, port=port)
        bounded = [
            BoundedListener(listener, max_connections=2 * self.settings.max_event_clients, request_timeout=None)
            for listener in listeners
        ]
        server = WebSocketServer(
            self._serve,
            bounded,  # type: ignore[arg-type]  # any trio Listener of socket streams serves
            handler_nursery=self.ctx.nursery,
            max_message_size=4096,  # clients have nothing to say
            connect_timeout=self.settings.request_timeout,
            disconnect_timeout=CLOSE_WAIT,
        )
        await self.ctx.nursery.start(server.run)
        self.ctx.log.info("event stream listening", host=host, port=port)

    async def handle(self, message):
        match message:
            case GetAddress():
                return self.address

    async def _serve(self, request: WebSocketRequest) -> None:
        target = urlsplit(request.path)
        if target.path != "/events":
            await request.reject(404, body=b"the event stream is at /events")
            return
        if self.clients >= self.settings.max_event_clients:
            await request.reject(503, body=b"too many event stream clients")
            return
        query = parse_qs(target.query)
        if self.access:
            refusal = await self._refusal(request, query)
            if refusal is not None:
                await request.reject(refusal[0], body=refusal[1])
                return
        types = tuple(t.strip() for value in query.get("types", []) for t in value.split(",") if t.strip())
        ws = await request.accept()
        self.clients += 1
        try:
            await self._stream(ws, types)
        finally:
            self.clients -= 1

    async def _refusal(self, request: WebSocketRequest, query: dict) -> tuple[int, bytes] | None:
        """Why the client may not watch (status, body), or None."""
        header = next((value.decode("latin-1") for name, value in request.headers if name.lower() == b"authorization"), "")
        scheme, _, value = header.partition(" ")
        try:
            if scheme.lower() == "basic" and len(header) <= MAX_CREDENTIALS:
                username, password = basic_credentials(value)
                ask = Authenticate(username=username, password=password)
            elif scheme.lower() == "bearer" or query.get("token"):
                ask = CheckToken(token=value.strip() if scheme.lower() == "bearer" else query["token"][0])
            else:
                return 401, b"credentials needed: HTTP basic, a bearer token, or ?token="
            verdict = await self.ctx.lookup(SECURITY_PATH).ask(ask, timeout=10)
        except Unauthorized:
            return 401, b"malformed credentials"
        except ActorError:
            return 503, b"access control is not available"
        if not verdict.allowed:
            return 401, b"wrong credentials"
        if "system" not in verdict.permissions:
            return 403, b"the user's role may not watch the event stream"
        return None

    async def _stream(self, ws: WebSocketConnection, types: tuple[str, ...]) -> None:
        with self.ctx.system.bus.subscribe(capacity=self.settings.event_buffer) as events:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send_events, ws, events, types)
                nursery.start_soon(_until_client_leaves, ws, nursery.cancel_scope)
                await events.overflowed.wait()
                nursery.cancel_scope.cancel()
        if events.overflowed.is_set():
            with trio.move_on_after(CLOSE_WAIT):
                await ws.aclose(FELL_BEHIND, "fell behind: the event queue overflowed")

    async def _send_events(self, ws: WebSocketConnection, events, types: tuple[str, ...]) -> None:
        try:
            async for event in events:
                if wanted(types, event_type(event)):
                    await ws.send_message(event_json(event))
        except ConnectionClosed:
            pass


async def _until_client_leaves(ws: WebSocketConnection, scope: trio.CancelScope) -> None:
    """Read (and drop) what the client sends, so pings and its close are answered; when
    it has gone, stop streaming to it."""
    try:
        while True:
            await ws.get_message()
    except ConnectionClosed:
        scope.cancel()
