"""The HTTP actor: serves the admin API, probes, /metrics, /openapi.json and the status
page (routes.py), and DICOMweb under [dicomweb] prefix (dicomweb/app.py), with
hypercorn's trio server, inside the node's tree.

Requests come from sockets, not the mailbox (like the DICOM listener); each handler
answers by asking the node's actors. The server's limits: connections.py (connections
at once, request head time), hypercorn's h11 head size and keep-alive timeout.
"""

from __future__ import annotations

import functools

import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState

from ..actors import Actor, ActorError, message
from ..actors.node.listener import GetAddress, ListeningOn
from ..config import Config
from .admin import LISTENER, Addresses, Admin
from .connections import BoundedListener
from .dicomweb.app import build_dicomweb
from .phase import NodePhase
from .routes import build_app, guard_of


@message("web.count-http-connections")
class CountHttpConnections:
    pass


@message("web.http-connections")
class HttpConnections:
    open: int
    evicted: int  # closed to make room for a newer one, since the actor started


def server_config(config: Config) -> HypercornConfig:
    http = config.http
    server = HypercornConfig()
    server.keep_alive_timeout = http.keep_alive_timeout
    server.read_timeout = max(1, int(http.request_timeout))
    server.h11_max_incomplete_size = http.max_request_head
    server.graceful_timeout = 1.0
    server.accesslog = None
    server.errorlog = None  # hypercorn's own logger: errors reach ours through the app
    return server


class HttpActor(Actor):
    replayable = False  # driven by sockets
    accepts = (GetAddress, CountHttpConnections)

    def __init__(self, *, config: Config, phase: NodePhase, metrics_path: str, events_path: str) -> None:
        self.config = config
        self.phase = phase
        self.metrics_path = metrics_path
        self.events_path = events_path

    async def on_start(self) -> None:
        http = self.config.http
        sockets = await trio.open_tcp_listeners(http.port, host=http.bind)
        host, port = sockets[0].socket.getsockname()[:2]
        self.address = ListeningOn(host=host, port=port)
        admin = Admin(self.ctx, self.config, self.phase, self.metrics_path, self._addresses)
        dicomweb = build_dicomweb(self.ctx, self.config, guard_of(admin)) if self.config.dicomweb.enabled else None
        app = ASGIWrapper(build_app(admin, self.metrics_path, dicomweb=(self.config.dicomweb.prefix, dicomweb) if dicomweb else None))
        server = server_config(self.config)
        serve = functools.partial(TCPServer, app, server, WorkerContext(None), ConnectionState({}))
        self.listeners = [
            BoundedListener(s, max_connections=http.max_connections, request_timeout=http.request_timeout) for s in sockets
        ]
        self.ctx.nursery.start_soon(functools.partial(trio.serve_listeners, serve, self.listeners))
        self.ctx.log.info("HTTP listening", host=host, port=port)

    async def handle(self, message):
        match message:
            case GetAddress():
                return self.address
            case CountHttpConnections():
                return HttpConnections(
                    open=sum(len(listener.open) for listener in self.listeners),
                    evicted=sum(listener.evicted for listener in self.listeners),
                )

    async def _addresses(self) -> Addresses:
        return Addresses(
            dicom=await self._address_of(LISTENER, ""),
            http=f"http://{self.address.host}:{self.address.port}",
            events=await self._address_of(self.events_path, "ws://", "/events"),
        )

    async def _address_of(self, path: str, scheme: str, suffix: str = "") -> str:
        try:
            address = await self.ctx.lookup(path).ask(GetAddress(), timeout=2.0)
        except ActorError:
            return ""  # not started yet, or off
        return f"{scheme}{address.host}:{address.port}{suffix}"
