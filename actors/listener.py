"""The DICOM listener: accepts TCP connections and starts one association actor each.

Association actors are its siblings under /node/associations, temporary children that
are never restarted: a failed association is over, and takes nothing else with it. Past
the configured limit a connection still gets an association actor, which reads the
A-ASSOCIATE-RQ and rejects it (transient, local limit exceeded) as PS3.8 says to.
"""

import errno
from collections.abc import Callable

import trio

from .actor import Actor
from .messages import message
from .supervision import ActorSpec, Restart

# Accept errors that mean "try again in a moment" (too many open files, memory).
_TRANSIENT_ACCEPT_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


@message("listener.get-address")
class GetAddress:
    pass


@message("listener.address")
class ListeningOn:
    host: str
    port: int


AssociationFactory = Callable[[trio.SocketStream, str, str, bool], Actor]


class Listener(Actor):
    replayable = False
    accepts = (GetAddress,)

    def __init__(self, *, bind: str, port: int, max_associations: int, make_association: AssociationFactory) -> None:
        self.bind = bind
        self.port = port
        self.max_associations = max_associations
        self.make_association = make_association
        self._count = 0

    async def on_start(self) -> None:
        # trio sets TCP_NODELAY on every accepted stream: no 40 ms Nagle stalls.
        listeners = await trio.open_tcp_listeners(self.port, host=self.bind)
        host, port = listeners[0].socket.getsockname()[:2]
        self.address = ListeningOn(host=host, port=port)
        for listener in listeners:
            self.ctx.nursery.start_soon(self._accept_forever, listener)
        self.ctx.log.info("listening", host=host, port=port)

    async def handle(self, message):
        match message:
            case GetAddress():
                return self.address

    def active_associations(self) -> int:
        return sum(1 for name in self.ctx.parent.children if name != "listener") if self.ctx.parent else 0

    async def _accept_forever(self, listener: trio.SocketListener) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as error:
                    if error.errno not in _TRANSIENT_ACCEPT_ERRORS:
                        raise
                    self.ctx.log.error("cannot accept a connection now", error=str(error))
                    await trio.sleep(0.1)  # the resource may free up; don't spin
                    continue
                await self._start_association(stream)

    async def _start_association(self, stream: trio.SocketStream) -> None:
        self._count += 1
        association_id = f"a{self._count}"
        host, port = stream.socket.getpeername()[:2]
        peer = f"{host}:{port}"
        over_limit = self.active_associations() >= self.max_associations
        spec = ActorSpec(
            name=association_id,
            actor=lambda: self.make_association(stream, association_id, peer, over_limit),
            restart=Restart.NEVER,
            capacity=8,
        )
        try:
            assert self.ctx.parent is not None
            await self.ctx.parent.start(spec)
        except Exception:
            self.ctx.log.exception("could not start an association", peer=peer)
            await stream.aclose()
