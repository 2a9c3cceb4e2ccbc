"""A link between two actor systems in different processes of one node.

Each side can ask or tell an actor of the other by path, and send it events. Frames are
length-prefixed; their bodies are pickled, which is faithful for every message, reply
and error an actor may pass and costs little. That is sound only because both ends are
the same program, started by the node over a socketpair it made: no frame ever comes
from the network. (A link between machines would carry the typed JSON codec instead -
codec.py - which is what every message is registered for.)

What arrives is handed to the side's `Handler`: `ask` returns the answer (or raises
the error to send back), `tell` and `event` return nothing. Each incoming ask runs in
its own task, so one slow answer never holds up the frames behind it.
"""

from __future__ import annotations

import itertools
import pickle
import struct
from typing import Any, Protocol

import attrs
import trio

from .errors import ActorError, AskTimeout, MailboxOverrun, ReplyError
from .mailbox import current_actor

_HEADER = struct.Struct("!I")
MAX_FRAME = 256 * 1024 * 1024  # a frame is one message: anything larger is a broken peer


class LinkBroken(ActorError):
    """The other process is gone (or sent something that is not a frame)."""


class RemoteFailure(ActorError):
    """An error from the other side that could not be rebuilt as its own type."""


class RemoteRefusal(ReplyError):
    """A ReplyError from the other side that could not be rebuilt as its own type."""


class Handler(Protocol):
    async def ask(self, to: str, message: Any, sender: str | None) -> Any: ...
    async def tell(self, to: str, message: Any, sender: str | None) -> None: ...
    async def event(self, event: Any) -> None: ...


@attrs.frozen
class _Ask:
    id: int
    to: str
    message: Any
    sender: str | None


@attrs.frozen
class _Tell:
    to: str
    message: Any
    sender: str | None


@attrs.frozen
class _Answer:
    id: int
    value: Any = None
    error: bytes | None = None  # the pickled error, when it pickles
    error_text: str = ""  # its type and message, always
    refusal: bool = False  # a ReplyError: the actor refused, it did not fail


@attrs.frozen
class _Event:
    event: Any


class ProcessLink:
    def __init__(self, stream: trio.abc.Stream, name: str, *, capacity: int = 4096) -> None:
        """`capacity`: frames waiting to be written before a sender waits too (or, for
        tell_nowait, is refused)."""
        self.stream = stream
        self.name = name
        self._ids = itertools.count(1)
        self._pending: dict[int, trio.MemorySendChannel[_Answer]] = {}
        self._outgoing, self._to_write = trio.open_memory_channel[object](capacity)
        self._buffer = bytearray()
        self.broken: BaseException | None = None

    # -- sending -------------------------------------------------------------------------

    async def ask(self, to: str, message: Any, sender: str | None = None) -> Any:
        ask_id = next(self._ids)
        send, receive = trio.open_memory_channel[_Answer](1)
        self._pending[ask_id] = send
        try:
            await self._send(_Ask(ask_id, to, message, sender))
            answer = await receive.receive()
        except trio.EndOfChannel:
            raise LinkBroken(f"{self.name}: the link closed before {to} answered") from None
        finally:
            self._pending.pop(ask_id, None)
        if answer.error_text:
            raise _rebuilt(answer)
        return answer.value

    async def tell(self, to: str, message: Any, sender: str | None = None) -> None:
        await self._send(_Tell(to, message, sender))

    def tell_nowait(self, to: str, message: Any, sender: str | None = None) -> None:
        """Queue a tell without waiting; MailboxOverrun when the link is that far behind."""
        self._check()
        try:
            self._outgoing.send_nowait(_Tell(to, message, sender))
        except trio.WouldBlock:
            raise MailboxOverrun(f"{self.name} (link)", self._outgoing.statistics().max_buffer_size) from None

    def event_nowait(self, event: Any) -> bool:
        """Queue an event for the other side; False (dropped) when the link is behind,
        as the event bus drops for a slow subscriber."""
        if self.broken is not None:
            return False
        try:
            self._outgoing.send_nowait(_Event(event))
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        return True

    async def _send(self, frame: object) -> None:
        self._check()
        await self._outgoing.send(frame)

    def _check(self) -> None:
        if self.broken is not None:
            raise LinkBroken(f"{self.name}: {self.broken}")

    async def _write_forever(self) -> None:
        """Pickle and write what is queued, everything queued at once in one write."""
        async for frame in self._to_write:
            frames = [frame]
            while True:
                try:
                    frames.append(self._to_write.receive_nowait())
                except trio.WouldBlock:
                    break
            data = bytearray()
            for each in frames:
                body = pickle.dumps(each, protocol=pickle.HIGHEST_PROTOCOL)
                data += _HEADER.pack(len(body))
                data += body
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                self.broken = LinkBroken(f"{self.name}: {error}")
                return

    # -- receiving -----------------------------------------------------------------------

    async def serve(self, handler: Handler, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Read frames until the other side closes; then fail the asks still waiting.
        Returns normally on a clean close; raises LinkBroken on garbage."""
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_forever)
                while (frame := await self._next_frame()) is not None:
                    match frame:
                        case _Ask():
                            nursery.start_soon(self._answer, handler, frame)
                        case _Tell(to=to, message=message, sender=sender):
                            nursery.start_soon(handler.tell, to, message, sender)
                        case _Event(event=event):
                            await handler.event(event)
                        case _Answer(id=ask_id):
                            waiting = self._pending.pop(ask_id, None)
                            if waiting is not None:
                                waiting.send_nowait(frame)
                nursery.cancel_scope.cancel()  # the other side is gone: its asks need no answer
        finally:
            self.broken = self.broken or LinkBroken("closed")
            for waiting in list(self._pending.values()):
                waiting.close()
            self._pending.clear()

    async def _answer(self, handler: Handler, ask: _Ask) -> None:
        try:
            value = await handler.ask(ask.to, ask.message, ask.sender)
            answer = _Answer(ask.id, value=value)
        except Exception as error:  # noqa: BLE001 - every failure is the asker's answer
            answer = _Answer(
                ask.id, error=_pickled(error), error_text=f"{type(error).__name__}: {error}", refusal=isinstance(error, ReplyError)
            )
        try:
            await self._send(answer)
        except LinkBroken:
            pass  # the asker's process is gone

    async def _next_frame(self) -> object | None:
        while True:
            if len(self._buffer) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self._buffer)
                if size > MAX_FRAME:
                    raise LinkBroken(f"{self.name}: a frame of {size} bytes")
                end = _HEADER.size + size
                if len(self._buffer) >= end:
                    body = bytes(self._buffer[_HEADER.size : end])
                    del self._buffer[:end]
                    try:
                        return pickle.loads(body)
                    except Exception as error:  # noqa: BLE001 - not a frame of ours
                        raise LinkBroken(f"{self.name}: an unreadable frame: {type(error).__name__}") from None
            try:
                chunk = await self.stream.receive_some(1 << 20)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                chunk = b""
            if not chunk:
                return None
            self._buffer += chunk


class RemoteRef:
    """An actor of the other process, as `ActorSystem.lookup` hands it out for a path
    that lives there: the same ask/send as a local ActorRef, over the link."""

    __slots__ = ("path", "_link")

    def __init__(self, path: str, link: ProcessLink) -> None:
        self.path = path
        self._link = link

    def __repr__(self) -> str:
        return f"<RemoteRef {self.path} via {self._link.name}>"

    async def send(self, message: object) -> None:
        await self._link.tell(self.path, message, current_actor.get())

    def send_nowait(self, message: object) -> None:
        self._link.tell_nowait(self.path, message, current_actor.get())

    async def ask(self, message: object, *, timeout: float | None = 30.0) -> Any:
        if timeout is None:
            return await self._link.ask(self.path, message, current_actor.get())
        with trio.move_on_after(timeout):
            return await self._link.ask(self.path, message, current_actor.get())
        raise AskTimeout(self.path, message, timeout)


def _pickled(error: BaseException) -> bytes | None:
    """The error as its class, args and attributes: rebuilt without calling its
    constructor, whose signature may be anything (attributes that do not pickle stay
    behind)."""
    state = {}
    for name, value in vars(error).items():
        try:
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - e.g. a cause holding a socket
            continue
        state[name] = value
    try:
        return pickle.dumps((type(error), error.args, state), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a class defined where pickle cannot find it
        return None


def _rebuilt(answer: _Answer) -> BaseException:
    if answer.error is not None:
        try:
            cls, args, state = pickle.loads(answer.error)
            error = cls.__new__(cls)
            BaseException.__init__(error, *args)
            error.__dict__.update(state)
            return error
        except Exception:  # noqa: BLE001 - fall back to a stand-in of its kind
            pass
    return RemoteRefusal(answer.error_text) if answer.refusal else RemoteFailure(answer.error_text)
