"""The actor system: what every actor of one node shares.

It holds the path registry (actors find each other by path, which is what lets a replay
stand a recorded stand-in where a real actor was), the event bus, the optional trace
recorder and the asyncio portal.
"""

from typing import TYPE_CHECKING

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

    def register(self, mailbox: Mailbox) -> None:
        if mailbox.path in self._mailboxes:
            raise ValueError(f"an actor already lives at {mailbox.path}")
        mailbox.reply_listener = self.recorder
        self._mailboxes[mailbox.path] = mailbox

    def unregister(self, path: str) -> None:
        self._mailboxes.pop(path, None)

    def lookup(self, path: str) -> ActorRef:
        try:
            return ActorRef(self._mailboxes[path])
        except KeyError:
            raise ActorStopped(path, "is not running") from None

    def paths(self) -> list[str]:
        return sorted(self._mailboxes)

    def mailbox(self, path: str) -> Mailbox:
        return self._mailboxes[path]
