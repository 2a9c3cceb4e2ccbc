"""The event bus: typed events for observers (logs, metrics, tests, the web stream).

Publishing never blocks: each subscriber has a bounded queue, and a subscriber that
falls behind loses events (counted in `dropped`) instead of slowing the node down.
"""

from collections.abc import AsyncIterator
from contextlib import contextmanager
from collections.abc import Iterator

import trio

from .messages import message


@message("runtime.actor-started")
class ActorStarted:
    path: str
    restarts: int


@message("runtime.actor-exited")
class ActorExited:
    path: str


@message("runtime.actor-failed")
class ActorFailed:
    path: str
    error: str
    traceback: str


@message("runtime.actor-restarted")
class ActorRestarted:
    path: str
    restarts: int
    delay: float


@message("runtime.supervisor-escalated")
class SupervisorEscalated:
    path: str
    child: str
    error: str


class Subscription:
    """One observer's queue. Iterate it; `dropped` counts what it missed, and
    `overflowed` is set at the first miss (an observer that must see everything, such
    as a stream client, gives up then)."""

    def __init__(self, types: tuple[type, ...], capacity: int) -> None:
        self.types = types
        self.dropped = 0
        self.overflowed = trio.Event()
        self._send, self._receive = trio.open_memory_channel[object](capacity)

    def wants(self, event: object) -> bool:
        return not self.types or isinstance(event, self.types)

    def offer(self, event: object) -> None:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1
            self.overflowed.set()
        except trio.BrokenResourceError:
            pass

    async def receive(self) -> object:
        return await self._receive.receive()

    def receive_nowait(self) -> object:
        return self._receive.receive_nowait()

    def __aiter__(self) -> AsyncIterator[object]:
        return self._receive.__aiter__()

    def close(self) -> None:
        self._send.close()
        self._receive.close()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self.published = 0

    def publish(self, event: object) -> None:
        self.published += 1
        for subscription in self._subscriptions:
            if subscription.wants(event):
                subscription.offer(event)

    @contextmanager
    def subscribe(self, *types: type, capacity: int = 256) -> Iterator[Subscription]:
        """Receive events of `types` (all events if none given) while the block runs."""
        subscription = Subscription(types, capacity)
        self._subscriptions.append(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.remove(subscription)
            subscription.close()
