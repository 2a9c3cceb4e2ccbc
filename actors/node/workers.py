"""Association worker processes: all cores for DICOM networking.

One trio thread serves every association of a process, so a node in one process uses
one core. With `[node] workers = N` the listener hands each accepted connection to one of
N worker processes, each running its association actors and their storage path (the
hot tier's writer and `Place` are the worker's own, on its own threads). Everything
else stays where it is, one owner each - the index, the lock manager, the AE registry,
storage commitment, the other tiers, the scheduler: a worker reaches them by the same
paths and typed messages, over a `ProcessLink` (actors/runtime/process_link.py), and
they reach its associations the same way. The worker's events are published on the
node's bus.

`/node/workers/w<i>` is a `WorkerHost` under the node's supervisor: it starts its
process, passes it the accepted sockets (SCM_RIGHTS over a socketpair) and answers its
asks. A worker process that dies fails its host, the supervisor starts a new one; the
connections it served close with it (the kernel closes its sockets) and nothing else
is touched. Stopping the host closes the link, and the worker stops its associations
and exits.
"""

from __future__ import annotations

import array
import json
import socket
import sys
from collections.abc import Sequence
from typing import Any

import trio

from ..runtime.actor import Actor, ActorContext
from ..runtime.events import ActorExited, ActorFailed
from ..runtime.messages import message
from ..runtime.process_link import ProcessLink, RemoteRef

SETUP = "setup"  # the worker's first ask: what it needs to build its tree
START_TIMEOUT = 60.0


@message("worker.take-connection")
class TakeConnection:
    """Serve this accepted connection (a file descriptor of the node's process, passed
    on; the listener closes its own once this is answered)."""

    association_id: str
    peer: str
    fd: int


@message("worker.connection-taken")
class ConnectionTaken:
    worker: str


@message("worker.get-statistics")
class GetWorkerStatistics:
    pass


@message("worker.statistics")
class WorkerStatistics:
    pid: int
    connections: int  # handed to this process since it started


class WorkerDied(Exception):
    pass


class WorkerRoutes:
    """Which worker serves which association: how the node's own actors reach an
    association a worker runs (storage commitment reporting on it, the listener
    dropping it). The node's `ActorSystem.remote`."""

    def __init__(self) -> None:
        self._links: dict[str, ProcessLink] = {}

    def add(self, path: str, link: ProcessLink) -> None:
        self._links[path] = link

    def discard(self, path: str) -> None:
        self._links.pop(path, None)

    def forget_link(self, link: ProcessLink) -> None:
        for path in [p for p, each in self._links.items() if each is link]:
            del self._links[path]

    def __call__(self, path: str) -> RemoteRef | None:
        link = self._links.get(path)
        return RemoteRef(path, link) if link is not None else None


class WorkerHost(Actor):
    accepts = (TakeConnection, GetWorkerStatistics)
    replayable = False  # its inputs are a process and sockets

    def __init__(
        self, *, setup: Any, routes: WorkerRoutes, associations: str, command: Sequence[str] | None = None
    ) -> None:
        """`setup`: what the worker gets when it asks SETUP (the node's configuration);
        `associations`: the path its associations live under."""
        self.setup = setup
        self.routes = routes
        self.associations = associations
        self.command = list(command) if command is not None else [sys.executable, "-m", "triopacs.worker"]

    async def on_start(self) -> None:
        link_here, link_there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # Datagram-like: each passed socket travels with its own small header.
        handoff_here, handoff_there = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = (link_there.fileno(), handoff_there.fileno())
        try:
            self.process = await trio.lowlevel.open_process([*self.command, *map(str, fds)], pass_fds=fds)
        finally:
            link_there.close()
            handoff_there.close()
        self.link = ProcessLink(trio.SocketStream(trio.socket.from_stdlib_socket(link_here)), self.ctx.path)
        self.handoff = trio.socket.from_stdlib_socket(handoff_here)
        await self.ctx.nursery.start(self.link.serve, _NodeSide(self.ctx, self))
        self.ctx.nursery.start_soon(self._watch)
        with trio.fail_after(START_TIMEOUT):
            await self.link.ask(SETUP, self.setup)
        self.connections = 0
        self.ctx.log.info("worker process started", pid=self.process.pid)

    async def handle(self, message):
        match message:
            case TakeConnection(association_id=association_id, peer=peer, fd=fd):
                header = json.dumps({"association_id": association_id, "peer": peer}).encode()
                await self.handoff.sendmsg([header], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
                self.routes.add(f"{self.associations}/{association_id}", self.link)
                self.connections += 1
                return ConnectionTaken(worker=self.ctx.path)
            case GetWorkerStatistics():
                return WorkerStatistics(pid=self.process.pid, connections=self.connections)

    def association_ended(self, path: str) -> None:
        self.routes.discard(path)

    async def _watch(self) -> None:
        code = await self.process.wait()
        raise WorkerDied(f"worker process {self.process.pid} exited with status {code}")

    async def on_stop(self) -> None:
        process = getattr(self, "process", None)
        if process is None:
            return
        if hasattr(self, "link"):
            self.routes.forget_link(self.link)
            self.handoff.close()
            await self.link.stream.aclose()  # the worker reads the end and stops
        with trio.move_on_after(max(self.ctx.system.shutdown_grace - 1.0, 1.0)):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


class _NodeSide:
    """What a worker asks of the node: delivered to the actor at the path, through its mailbox."""

    def __init__(self, ctx: ActorContext, host: WorkerHost) -> None:
        self.ctx = ctx
        self.host = host

    async def ask(self, to: str, message: Any, sender: str | None) -> Any:
        return await self.ctx.lookup(to).ask(message, timeout=None)

    async def tell(self, to: str, message: Any, sender: str | None) -> None:
        await self.ctx.lookup(to).send(message)

    async def event(self, event: Any) -> None:
        if isinstance(event, (ActorExited, ActorFailed)) and event.path.startswith(self.host.associations + "/"):
            self.host.association_ended(event.path)
        self.ctx.publish(event)

