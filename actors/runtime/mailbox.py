"""Mailboxes, references and replies.

A mailbox is a bounded trio memory channel. It belongs to an actor's place in the tree,
not to one incarnation: a restarted actor reads the same mailbox, so references stay
valid across restarts and messages queued during a restart are not lost.
"""

import itertools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol

import attrs
import trio

from .errors import ActorStopped, AskTimeout, MailboxOverrun, UnknownMessage

# The path of the actor whose code is running in this task (None outside any actor).
current_actor: ContextVar[str | None] = ContextVar("current_actor", default=None)

_correlation_ids = itertools.count(1)


class ReplyListener(Protocol):
    def reply_sent(self, reply: "Reply", value: Any, error: BaseException | None) -> None: ...


class Reply:
    """The pending answer to one ask. The responder resolves it once."""

    __slots__ = ("correlation_id", "asker", "responder", "_event", "_value", "_error", "_listener", "_on_resolved")

    def __init__(self, *, asker: str | None, responder: str, listener: ReplyListener | None) -> None:
        self.correlation_id = next(_correlation_ids)
        self.asker = asker
        self.responder = responder
        self._event = trio.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._listener = listener
        self._on_resolved: Callable[[Reply], None] | None = None

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def send(self, value: Any) -> None:
        self._resolve(value, None)

    def fail(self, error: BaseException) -> None:
        self._resolve(None, error)

    def when_resolved(self, callback: "Callable[[Reply], None]") -> None:
        """Call `callback(self)` once this reply is sent or failed (one callback at most)."""
        if self._on_resolved is not None:
            raise RuntimeError(f"reply {self.correlation_id} already has a resolution callback")
        self._on_resolved = callback

    def _resolve(self, value: Any, error: BaseException | None) -> None:
        if self.done:
            raise RuntimeError(f"reply {self.correlation_id} from {self.responder} was already sent")
        self._value, self._error = value, error
        self._event.set()
        if self._on_resolved is not None:
            self._on_resolved(self)
        if self._listener is not None:
            self._listener.reply_sent(self, value, error)

    async def wait(self) -> Any:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value


@attrs.frozen
class Envelope:
    message: Any
    sender: str | None
    reply: Reply | None = None


@attrs.frozen(kw_only=True)
class MailboxStatistics:
    path: str
    depth: int
    capacity: int
    delivered: int
    failed: int
    restarts: int


class Mailbox:
    """The bounded queue in front of one actor, with its counters."""

    def __init__(self, path: str, capacity: int, accepts: tuple[type, ...] = ()) -> None:
        self.path = path
        self.capacity = capacity
        self.accepts = accepts
        self.send_channel, self.receive_channel = trio.open_memory_channel[Envelope](capacity)
        self.delivered = 0
        self.failed = 0
        self.restarts = 0
        self.reply_listener: ReplyListener | None = None

    def check(self, message: object) -> None:
        if self.accepts and not isinstance(message, self.accepts):
            raise UnknownMessage(self.path, message)

    async def put(self, envelope: Envelope) -> None:
        try:
            await self.send_channel.send(envelope)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorStopped(self.path) from None

    def put_nowait(self, envelope: Envelope) -> None:
        try:
            self.send_channel.send_nowait(envelope)
        except trio.WouldBlock:
            raise MailboxOverrun(self.path, self.capacity) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorStopped(self.path) from None

    def close(self) -> None:
        """The actor is gone for good: fail the queued asks, refuse new messages."""
        while True:  # no checkpoint in here, so nothing can be queued behind our back
            try:
                envelope = self.receive_channel.receive_nowait()
            except (trio.WouldBlock, trio.ClosedResourceError, trio.EndOfChannel):
                break
            if envelope.reply is not None and not envelope.reply.done:
                envelope.reply.fail(ActorStopped(self.path))
        self.receive_channel.close()

    def statistics(self) -> MailboxStatistics:
        return MailboxStatistics(
            path=self.path,
            depth=self.send_channel.statistics().current_buffer_used,
            capacity=self.capacity,
            delivered=self.delivered,
            failed=self.failed,
            restarts=self.restarts,
        )


class ActorRef:
    """How to reach an actor: its path and the send side of its mailbox."""

    __slots__ = ("path", "_mailbox")

    def __init__(self, mailbox: Mailbox) -> None:
        self.path = mailbox.path
        self._mailbox = mailbox

    def __repr__(self) -> str:
        return f"<ActorRef {self.path}>"

    async def send(self, message: object) -> None:
        """Deliver `message`, waiting while the mailbox is full (backpressure)."""
        self._mailbox.check(message)
        await self._mailbox.put(Envelope(message, current_actor.get()))

    def send_nowait(self, message: object) -> None:
        """Deliver `message` now or raise MailboxOverrun."""
        self._mailbox.check(message)
        self._mailbox.put_nowait(Envelope(message, current_actor.get()))

    async def ask(self, message: object, *, timeout: float | None = 30.0) -> Any:
        """Send `message` and wait for the actor's answer.

        Raises the actor's ReplyError, ActorCrashed if handling it crashed the actor,
        ActorStopped if the actor is gone, AskTimeout after `timeout` seconds.
        """
        self._mailbox.check(message)
        reply = Reply(asker=current_actor.get(), responder=self.path, listener=self._mailbox.reply_listener)
        envelope = Envelope(message, reply.asker, reply)
        if timeout is None:
            return await self._put_and_wait(envelope, reply)
        with trio.move_on_after(timeout):
            return await self._put_and_wait(envelope, reply)
        raise AskTimeout(self.path, message, timeout)

    async def _put_and_wait(self, envelope: Envelope, reply: Reply) -> Any:
        # Waiting for the answer is the checkpoint; a mailbox with room takes the
        # message at once, without a task switch of its own (one per ask saved).
        try:
            self._mailbox.put_nowait(envelope)
        except MailboxOverrun:
            await self._mailbox.put(envelope)
        return await reply.wait()

    def statistics(self) -> MailboxStatistics:
        return self._mailbox.statistics()
