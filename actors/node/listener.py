"""The DICOM listener: accepts TCP connections and starts one association actor each.

Association actors are its siblings under /node/associations, temporary children that
are never restarted: a failed association is over, and takes nothing else with it.

Two limits, counted here (docs/limits.md):

- A connection that has not yet sent its A-ASSOCIATE-RQ is *waiting*. At most
  `max_waiting` of them exist, and at most `max_waiting_per_address` from one address;
  a new connection past either limit closes the oldest waiting one (of that address).
  So idle or trickling connections cannot lock anyone out: a real client sends its
  request within milliseconds of connecting, long before it is the oldest. ARTIM closes
  the waiting ones that never ask.
- An association counts against `max_associations` from its A-ASSOCIATE-RQ on: the
  association asks (`AdmitAssociation`) and one past the limit is rejected (transient,
  local limit exceeded) as PS3.8 says to.

With TLS on (`tls`), a second socket serves DICOM TLS (PS3.15 Annex B): each connection
gets its handshake in a task of its own, within `handshake_timeout`, before it becomes a
waiting connection like any other. At most `max_waiting` handshakes run at once; one
more cancels the oldest, so stalled handshakes cannot hold the port. A handshake that
fails (an untrusted or expired certificate, plain TCP, too slow) is logged with its
reason and published as `TlsRefused`. TLS associations are served in the node's process,
never handed to a worker: a TLS session cannot change processes.

Nothing a peer does restarts the listener: an error on one connection (a reset before
the peer's address could be read, a refused start) is that connection's end alone.
"""

import errno
import itertools
import ssl
from collections import Counter
from collections.abc import Callable, Iterator

import attrs
import trio

from ...client.tls import handshake_failure, subject_text
from ...client.tls_stream import TlsStream
from ..runtime.actor import Actor
from ..runtime.messages import message
from ..runtime.supervision import ActorSpec, Restart
from ...storage import audit_records
from .activity import TlsRefused
from .audit import audit
from .workers import TakeConnection

# Accept errors that mean "try again in a moment" (too many open files, memory).
_TRANSIENT_ACCEPT_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


@message("listener.get-address")
class GetAddress:
    pass


@message("listener.address")
class ListeningOn:
    host: str
    port: int
    tls_port: int | None = None  # the DICOM TLS port, when TLS is on


@message("listener.admit")
class AdmitAssociation:
    """An association's A-ASSOCIATE-RQ has arrived: may it be served?"""

    association_id: str


@message("listener.admission")
class Admission:
    admitted: bool
    reason: str = ""


@message("listener.connection-ended")
class ConnectionEnded:
    association_id: str


@message("association.drop-connection")
class DropConnection:
    """Close a connection that has not asked to associate (sent by the listener)."""

    reason: str


@message("listener.count")
class CountConnections:
    pass


@message("listener.counts")
class ConnectionCounts:
    waiting: int
    associations: int
    evicted: int  # waiting connections closed to make room, since the listener started


# (stream, association id, peer "host:port", the listener's path) -> the association
# actor; a TLS stream comes with its peer's certificate subject (tls_subject=..., "" if none)
AssociationFactory = Callable[..., Actor]


@attrs.frozen(kw_only=True)
class TlsListening:
    """The TLS port: its server context (client/tls.py) and how long a handshake may take."""

    port: int
    context: ssl.SSLContext
    handshake_timeout: float = 10.0
    plain_port: bool = True  # the plain TCP port stays open beside it


class Listener(Actor):
    replayable = False
    accepts = (GetAddress, AdmitAssociation, ConnectionEnded, CountConnections)

    def __init__(
        self,
        *,
        bind: str,
        port: int,
        max_associations: int,
        make_association: AssociationFactory,
        max_waiting: int = 256,
        max_waiting_per_address: int = 32,
        names: Iterator[int] | None = None,
        workers: tuple[str, ...] = (),
        tls: TlsListening | None = None,
        audit_path: str | None = None,
        ae_title: str = "",
    ) -> None:
        """`workers`: the worker hosts (actors/node/workers.py) that serve the
        associations; none: they run here, as siblings of the listener."""
        self.bind = bind
        self.port = port
        self.max_associations = max_associations
        self.max_waiting = max_waiting
        self.max_waiting_per_address = max_waiting_per_address
        self.make_association = make_association
        # Shared by every incarnation (the node passes one): names stay unique after a restart.
        self._names = names if names is not None else itertools.count(1)
        self._waiting: dict[str, str] = {}  # association id -> peer host, oldest first
        self._waiting_by_host: Counter[str] = Counter()
        self._associations: set[str] = set()
        self._evicted = 0
        self.workers = workers
        self._hosting: dict[str, str] = {}  # association id -> the worker serving it
        self._handed: Counter[str] = Counter()  # connections given to each worker
        self.tls = tls
        self.audit_path = audit_path  # TLS refusals are recorded there, when [audit] is on
        self.ae_title = ae_title
        self._handshakes: dict[int, trio.CancelScope] = {}  # running TLS handshakes, oldest first
        self._handshake_names = itertools.count(1)

    async def on_start(self) -> None:
        # After a restart the associations already running are counted as admitted.
        siblings = self.ctx.parent.children if self.ctx.parent else {}
        own_name = self.ctx.path.rsplit("/", 1)[-1]
        self._associations = {name for name in siblings if name != own_name}
        # trio sets TCP_NODELAY on every accepted stream: no 40 ms Nagle stalls.
        plain = await trio.open_tcp_listeners(self.port, host=self.bind) if self.tls is None or self.tls.plain_port else []
        secure = await trio.open_tcp_listeners(self.tls.port, host=self.bind) if self.tls is not None else []
        host, port = (plain or secure)[0].socket.getsockname()[:2]
        tls_port = secure[0].socket.getsockname()[1] if secure else None
        self.address = ListeningOn(host=host, port=port if plain else tls_port, tls_port=tls_port)
        for listener in plain:
            self.ctx.nursery.start_soon(self._accept_forever, listener, self._start_association)
        for listener in secure:
            self.ctx.nursery.start_soon(self._accept_forever, listener, self._start_handshake)
        self.ctx.log.info("listening", host=host, port=port if plain else None, tls_port=tls_port)

    async def handle(self, message):
        match message:
            case GetAddress():
                return self.address
            case AdmitAssociation(association_id=association_id):
                return self._admit(association_id)
            case ConnectionEnded(association_id=association_id):
                self._forget(association_id)
                self._associations.discard(association_id)
                self._hosting.pop(association_id, None)
            case CountConnections():
                return ConnectionCounts(
                    waiting=len(self._waiting), associations=len(self._associations), evicted=self._evicted
                )

    def _admit(self, association_id: str) -> Admission:
        was_waiting = self._forget(association_id)
        if not was_waiting:
            return Admission(admitted=False, reason="the connection was closed to make room")
        if len(self._associations) >= self.max_associations:
            return Admission(admitted=False, reason=f"{self.max_associations} associations are being served")
        self._associations.add(association_id)
        return Admission(admitted=True)

    def _forget(self, association_id: str) -> bool:
        host = self._waiting.pop(association_id, None)
        if host is None:
            return False
        self._waiting_by_host[host] -= 1
        if not self._waiting_by_host[host]:
            del self._waiting_by_host[host]
        return True

    def _make_room(self, host: str) -> None:
        """Close the oldest waiting connection (of `host`, when it is at its own limit)."""
        if self._waiting_by_host[host] >= self.max_waiting_per_address:
            oldest = next(name for name, waiting_host in self._waiting.items() if waiting_host == host)
        elif len(self._waiting) >= self.max_waiting:
            oldest = next(iter(self._waiting))
        else:
            return
        self.ctx.log.info(
            "closing a connection that sent no A-ASSOCIATE-RQ, to make room", association=oldest, host=self._waiting[oldest]
        )
        self._forget(oldest)
        self._evicted += 1
        assert self.ctx.parent is not None
        try:
            self.ctx.lookup(self.ctx.parent.child_path(oldest)).send_nowait(
                DropConnection(reason="too many connections waiting to associate")
            )
        except Exception:  # noqa: BLE001 - gone already, or its mailbox is full: ARTIM ends it
            pass

    async def _accept_forever(self, listener: trio.SocketListener, serve) -> None:
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
                await serve(stream)

    async def _start_handshake(self, stream: trio.SocketStream) -> None:
        """Run the TLS handshake beside the accept loop; past max_waiting handshakes the
        oldest is cancelled."""
        if len(self._handshakes) >= self.max_waiting:
            oldest = next(iter(self._handshakes))
            self._handshakes.pop(oldest).cancel()
        name = next(self._handshake_names)
        scope = trio.CancelScope(deadline=trio.current_time() + self.tls.handshake_timeout)
        self._handshakes[name] = scope
        self.ctx.nursery.start_soon(self._handshake, stream, scope, name)

    async def _handshake(self, stream: trio.SocketStream, scope: trio.CancelScope, name: int) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
        except OSError:
            await stream.aclose()
            self._handshakes.pop(name, None)
            return
        peer = f"{host}:{port}"
        secure = TlsStream(stream, self.tls.context, server_side=True)
        failure = None
        with scope:
            try:
                await secure.do_handshake()
            except Exception as error:  # noqa: BLE001 - whatever a peer's bytes cause ends its connection alone
                failure = handshake_failure(error)
        self._handshakes.pop(name, None)
        if scope.cancelled_caught:
            failure = f"no TLS handshake within {self.tls.handshake_timeout:g} s" if trio.current_time() >= scope.deadline else "closed to make room for newer TLS handshakes"
        if failure is not None:
            self.ctx.log.warning("TLS connection refused", peer=peer, reason=failure)
            self.ctx.publish(TlsRefused(peer=peer, reason=failure))
            await trio.aclose_forcefully(stream)
            await audit(self.ctx, audit_records.tls_refused(self.ae_title, audit_records.Peer(host=host), failure), self.audit_path)
            return
        subject = subject_text(secure.getpeercert())
        await self._start_association(secure, peer=peer, tls_subject=subject)

    async def _start_association(self, stream, *, peer: str | None = None, tls_subject: str | None = None) -> None:
        """Start the connection's actor. Whatever goes wrong stays this connection's problem."""
        association_id = f"a{next(self._names)}"
        if peer is None:
            try:
                host, port = stream.socket.getpeername()[:2]
            except OSError as error:  # reset before we got to it: nothing to serve
                self.ctx.log.debug("connection gone before it was served", error=str(error))
                await stream.aclose()
                return
            peer = f"{host}:{port}"
        host = peer.rsplit(":", 1)[0]
        self._make_room(host)
        # Waiting from now on: its A-ASSOCIATE-RQ may arrive before start() returns.
        self._waiting[association_id] = host
        self._waiting_by_host[host] += 1
        if self.workers and tls_subject is None:
            await self._hand_off(stream, association_id, peer)
            return
        extra = {} if tls_subject is None else {"tls_subject": tls_subject}
        spec = ActorSpec(
            name=association_id,
            actor=lambda: self.make_association(stream, association_id, peer, self.ctx.path, **extra),
            restart=Restart.NEVER,
            capacity=8,
        )
        try:
            assert self.ctx.parent is not None
            await self.ctx.parent.start(spec)
        except Exception:
            self.ctx.log.exception("could not start an association", peer=peer)
            self._forget(association_id)
            await stream.aclose()

    async def _hand_off(self, stream: trio.SocketStream, association_id: str, peer: str) -> None:
        """Pass the connection to the worker serving the fewest (of those, the one given
        the fewest so far); close our copy of it."""
        serving = Counter(self._hosting.values())
        worker = min(self.workers, key=lambda path: (serving[path], self._handed[path]))
        self._handed[worker] += 1
        try:
            await self.ctx.lookup(worker).ask(
                TakeConnection(association_id=association_id, peer=peer, fd=stream.socket.fileno()), timeout=10
            )
            self._hosting[association_id] = worker
        except Exception as error:  # noqa: BLE001 - a worker restarting: this connection's end alone
            self.ctx.log.warning("could not hand a connection to a worker", worker=worker, peer=peer, error=str(error))
            self._forget(association_id)
        finally:
            await stream.aclose()  # the worker has its own descriptor now
