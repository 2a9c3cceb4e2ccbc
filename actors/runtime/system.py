"""The actor system: what every actor of one node shares.

It holds the path registry (actors find each other by path, which is what lets a replay
stand a recorded stand-in where a real actor was), the event bus, the optional trace
recorder and the asyncio portal.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ActorStopped
from .events import EventBus
from .mailbox import ActorRef, Mailbox
from .trace import TraceRecorder

if TYPE_CHECKING:
    from .portal import AsyncioPortal


class ActorSystem:
    def __init__(
        self,
        *,
        bus: EventBus | None = None,
        recorder: TraceRecorder | None = None,
        portal: "AsyncioPortal | None" = None,
        shutdown_grace: float = 5.0,
    ) -> None:
        self.bus = bus if bus is not None else EventBus()
        self.recorder = recorder
        self.portal = portal
        self.shutdown_grace = shutdown_grace
        self._mailboxes: dict[str, Mailbox] = {}
        # Where a path that is not here may live: another process of the node (workers).
        self.remote: "Callable[[str], Any] | None" = None

    def register(self, mailbox: Mailbox) -> None:
        if mailbox.path in self._mailboxes:
            raise ValueError(f"an actor already lives at {mailbox.path}")
        mailbox.reply_listener = self.recorder
        self._mailboxes[mailbox.path] = mailbox

    def unregister(self, path: str) -> None:
        self._mailboxes.pop(path, None)

    def lookup(self, path: str) -> ActorRef:
        mailbox = self._mailboxes.get(path)
        if mailbox is not None:
            return ActorRef(mailbox)
        remote = self.remote(path) if self.remote is not None else None
        if remote is None:
            raise ActorStopped(path, "is not running")
        return remote  # a RemoteRef (process_link.py): the same ask and send

    def paths(self) -> list[str]:
        return sorted(self._mailboxes)

    def mailbox(self, path: str) -> Mailbox:
        return self._mailboxes[path]
