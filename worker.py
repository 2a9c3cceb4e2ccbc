"""An association worker process (actors/node/workers.py says why and how).

    python -m triopacs.worker LINK_FD HANDOFF_FD

started by a `WorkerHost` of the node, never by hand. Its tree, under the node's own
paths so that every actor finds the others where it always does:

    /node
    ├── /node/services/tiers/local   the hot tier's writer side: C-STOREs of this process place here
    └── /node/associations/a<N>      the associations the node's listener handed over

Any other path (the index, the locks, the listener, ...) is the node's, reached over the
link; this process's events are published on the node's bus.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
from typing import Any

import structlog
import trio

from .actors import ActorSpec, ActorSystem, EventBus, RestartPolicy, SupervisorSpec, open_supervisor
from .actors.node.tiers import TierActor
from .actors.node.workers import SETUP
from .actors.runtime.process_link import ProcessLink, RemoteRef
from .actors.runtime.supervision import Restart
from .config import Config
from .log import configure_logging

log = structlog.get_logger()


class _LinkedBus(EventBus):
    """Publishes here and on the node's bus."""

    def __init__(self, link: ProcessLink) -> None:
        super().__init__()
        self.link = link

    def publish(self, event: object) -> None:
        super().publish(event)
        self.link.event_nowait(event)


class _WorkerSide:
    """What the node asks of this process: its setup first, then its associations'
    paths (a storage commitment report on the association it came on)."""

    def __init__(self) -> None:
        self.setup_send, self.setup_receive = trio.open_memory_channel[Config](1)
        self.ready = trio.Event()
        self.system: ActorSystem | None = None

    async def ask(self, to: str, message: Any, sender: str | None) -> Any:
        if to == SETUP:
            await self.setup_send.send(message)
            await self.ready.wait()
            return "ready"
        assert self.system is not None
        return await self.system.lookup(to).ask(message, timeout=None)

    async def tell(self, to: str, message: Any, sender: str | None) -> None:
        assert self.system is not None
        await self.system.lookup(to).send(message)

    async def event(self, event: Any) -> None:
        pass  # the node sends none


async def serve_worker(link_fd: int, handoff_fd: int) -> None:
    from .supervisor import ASSOCIATIONS, ROOT, association_factory, tier_definitions

    link = ProcessLink(trio.SocketStream(trio.socket.from_stdlib_socket(socket.socket(fileno=link_fd))), "node")
    handoff = trio.socket.from_stdlib_socket(socket.socket(fileno=handoff_fd))
    side = _WorkerSide()
    async with trio.open_nursery() as nursery:

        async def until_the_node_goes() -> None:
            await link.serve(side)
            nursery.cancel_scope.cancel()  # the node closed the link (or died): stop

        nursery.start_soon(until_the_node_goes)
        config = await side.setup_receive.receive()
        configure_logging(config.log.level, config.log.format)
        system = ActorSystem(bus=_LinkedBus(link), shutdown_grace=config.node.shutdown_grace)
        system.remote = lambda path: RemoteRef(path, link)
        side.system = system
        hot = tier_definitions(config)[0]
        tree = [
            SupervisorSpec(name="services", children=[SupervisorSpec(name="tiers", children=[
                ActorSpec(
                    name=hot.name, actor=TierActor, capacity=256,
                    args={"definition": hot, "staging": str(config.data_dir / "staging"), "max_concurrency": 64},
                ),
            ])]),
            SupervisorSpec(name="associations"),
        ]
        make_association = association_factory(config)
        async with open_supervisor(system, ROOT, RestartPolicy(max_restarts=3, within=30.0), tree) as root:
            associations = root.children["associations"]
            side.ready.set()
            while True:
                header, ancillary, _, _ = await handoff.recvmsg(1024, socket.CMSG_SPACE(4))
                if not header:
                    break  # the node closed its end
                stream = _stream(ancillary)
                if stream is None:
                    continue
                about = json.loads(header)
                association_id, peer = about["association_id"], about["peer"]
                spec = ActorSpec(
                    name=association_id,
                    actor=lambda s=stream, a=association_id, p=peer: make_association(s, a, p, f"{ASSOCIATIONS}/listener"),
                    restart=Restart.NEVER,
                    capacity=8,
                )
                try:
                    await associations.start(spec)
                except Exception:
                    log.exception("could not start an association", peer=peer)
                    await stream.aclose()
        nursery.cancel_scope.cancel()


def _stream(ancillary) -> trio.SocketStream | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fd = int.from_bytes(data[:4], sys.byteorder, signed=True)
            return trio.SocketStream(trio.socket.from_stdlib_socket(socket.socket(fileno=fd)))
    return None


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    # Ctrl-C reaches the whole process group: the node stops its workers itself, in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    trio.run(serve_worker, int(args[0]), int(args[1]))


if __name__ == "__main__":
    main()
