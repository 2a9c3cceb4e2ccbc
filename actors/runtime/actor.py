"""The actor: state plus `handle(message)`, run one message at a time by the runtime.

An actor class lists the messages it accepts in `accepts` (its closed union); refs refuse
anything else at the sender, and `handle` dispatches with `match`. What `handle` returns
answers an ask. Work that must outlive one message (a socket reader, a timer) runs in
`ctx.nursery`, which lives exactly as long as this incarnation of the actor.
"""

import inspect
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
import trio

from .errors import ActorCrashed, ActorStopped, ReplyError, UnknownMessage
from .mailbox import ActorRef, Envelope, Mailbox, Reply, current_actor
from .resources import Resource, check_declaration

if TYPE_CHECKING:
    from .supervision import Supervisor
    from .system import ActorSystem


class Actor:
    accepts: ClassVar[tuple[type, ...]] = ()
    # False for actors driven by the outside world (sockets) rather than by messages:
    # a replay treats what they sent as recorded input instead of re-running them.
    replayable: ClassVar[bool] = True
    # The constructor arguments that name something outside the process (a file, a
    # directory, a socket) and what a replay may replace each with (runtime/resources.py).
    # {} says "nothing outside"; None, the default, says nothing, and such an actor is
    # never rebuilt from a trace: a replay could not keep it off live data.
    resources: ClassVar[Mapping[str, Resource] | None] = None

    ctx: "ActorContext"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.resources  # inherited too: a subclass may have changed the constructor
        if declared:
            check_declaration(cls, declared, inspect.signature(cls.__init__).parameters)

    async def on_start(self) -> None:
        """Get ready; the actor's ref is handed out only after this returns."""

    async def handle(self, message: Any) -> Any:
        raise UnknownMessage(self.ctx.path, message)

    async def on_stop(self) -> None:
        """Release resources; runs shielded, within the system's shutdown grace, once the
        tasks in ctx.nursery have ended."""


class ActorContext:
    """What an actor may use of the runtime: its identity, the system, its task scope."""

    def __init__(
        self, system: "ActorSystem", mailbox: Mailbox, nursery: trio.Nursery, parent: "Supervisor | None" = None
    ) -> None:
        self.system = system
        self.parent = parent  # the supervisor running this actor (to start siblings)
        self.path = mailbox.path
        self.ref = ActorRef(mailbox)
        self.nursery = nursery
        self.log = structlog.get_logger().bind(actor=self.path)
        self.sender: str | None = None
        self._envelope: Envelope | None = None
        # Asks taken over by defer_reply() and not answered yet: failed if this incarnation
        # ends. A reply leaves the set as soon as it is answered, or every answer (a page
        # of C-FIND responses, a store's outcome) would stay alive with it.
        self._deferred: set[Reply] = set()
        self._stopping = False
        self._receive_scope: trio.CancelScope | None = None

    def lookup(self, path: str) -> ActorRef:
        return self.system.lookup(path)

    def publish(self, event: object) -> None:
        self.system.bus.publish(event)

    def record_effect(self, kind: str, detail: dict[str, Any]) -> None:
        """Note in the trace (when one is recorded) something done to the world outside the
        actor system; a replay compares these like messages. The issuer is the task's
        actor identity: work an actor runs under a name of its own notes as that."""
        recorder = self.system.recorder
        if recorder is not None:
            recorder.effect(current_actor.get() or self.path, kind, detail)

    def defer_reply(self) -> Reply:
        """Take over answering the current ask; answer later with reply.send/fail."""
        envelope = self._envelope
        if envelope is None or envelope.reply is None:
            raise RuntimeError(f"{self.path}: the current message is not an ask")
        reply = envelope.reply
        if reply not in self._deferred and not reply.done:
            self._deferred.add(reply)
            reply.when_resolved(self._deferred.discard)
        return reply

    def stop(self) -> None:
        """End this actor cleanly after the current message (a clean exit is no failure)."""
        self._stopping = True
        if self._receive_scope is not None:
            self._receive_scope.cancel()

    def _fail_deferred(self, error: BaseException) -> None:
        for reply in list(self._deferred):  # failing one takes it out of the set
            reply.fail(error)

    def _answers_elsewhere(self, reply: Reply) -> bool:
        """Whether `reply` was deferred (pending, or answered already) rather than left
        for what handle() returns."""
        return reply.done or reply in self._deferred


async def run_incarnation(
    actor: Actor,
    mailbox: Mailbox,
    system: "ActorSystem",
    task_status: trio.TaskStatus[None],
    parent: "Supervisor | None" = None,
) -> None:
    """Run one life of `actor` on `mailbox` until it stops, crashes or is cancelled."""
    current_actor.set(mailbox.path)
    structlog.contextvars.bind_contextvars(actor=mailbox.path)
    ctx: ActorContext | None = None
    try:
        async with trio.open_nursery() as nursery:
            ctx = ActorContext(system, mailbox, nursery, parent)
            actor.ctx = ctx
            try:
                await actor.on_start()
                task_status.started()
                await _serve(actor, ctx, mailbox, system)
            except BaseException as exc:
                failure = ActorCrashed(mailbox.path, exc) if isinstance(exc, Exception) else ActorStopped(mailbox.path)
                ctx._fail_deferred(failure)
                raise
            finally:
                # The background tasks end before on_stop runs, so on_stop may release
                # what they use (a connection, a socket) without pulling it from under them.
                nursery.cancel_scope.cancel()
    finally:
        if ctx is not None:
            with trio.move_on_after(system.shutdown_grace, shield=True):
                await actor.on_stop()
    ctx._fail_deferred(ActorStopped(mailbox.path))


async def _serve(actor: Actor, ctx: ActorContext, mailbox: Mailbox, system: "ActorSystem") -> None:
    receive = mailbox.receive_channel
    while not ctx._stopping:
        envelope = None
        with trio.CancelScope() as ctx._receive_scope:
            envelope = await receive.receive()
        ctx._receive_scope = None
        if envelope is None:  # stop() interrupted the wait
            break
        # Even when stop() came in meanwhile, a dequeued message is handled, never dropped.
        await _deliver(actor, ctx, mailbox, system, envelope)


async def _deliver(actor: Actor, ctx: ActorContext, mailbox: Mailbox, system: "ActorSystem", envelope: Envelope) -> None:
    message = envelope.message
    reply = envelope.reply
    if system.recorder is not None:
        system.recorder.delivered(envelope, mailbox.path)
    mailbox.delivered += 1
    ctx.sender, ctx._envelope = envelope.sender, envelope
    try:
        if mailbox.accepts and not isinstance(message, mailbox.accepts):
            raise UnknownMessage(mailbox.path, message)
        result = await actor.handle(message)
    except ReplyError as error:
        mailbox.failed += 1
        if reply is not None:
            reply.fail(error)
        else:
            ctx.log.warning("message refused", message=type(message).__name__, error=str(error))
        return
    except Exception as exc:
        mailbox.failed += 1
        if reply is not None and not reply.done:
            reply.fail(ActorCrashed(mailbox.path, exc))
        raise
    except BaseException:
        if reply is not None and not ctx._answers_elsewhere(reply):
            reply.fail(ActorStopped(mailbox.path))
        raise
    finally:
        ctx.sender, ctx._envelope = None, None
    if reply is not None and not ctx._answers_elsewhere(reply):
        reply.send(result)


def format_failure(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
