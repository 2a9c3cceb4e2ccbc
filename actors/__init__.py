"""The actor runtime: typed messages, mailboxes, supervision, events, traces, replay.

    @message("demo.greet")
    class Greet:
        name: str

    class Greeter(Actor):
        accepts = (Greet,)

        async def handle(self, message):
            match message:
                case Greet(name=name):
                    return Greeting(text=f"hello {name}")

    async with open_supervisor(ActorSystem(), "/app") as root:
        greeter = await root.start(ActorSpec(name="greeter", actor=Greeter))
        print(await greeter.ask(Greet(name="world")))
"""

from .actor import Actor, ActorContext
from .codec import converter, dumps, from_wire, loads, to_wire
from .errors import (
    ActorCrashed,
    ActorError,
    ActorStopped,
    AskTimeout,
    Escalation,
    MailboxOverrun,
    ReplyError,
    UnknownMessage,
)
from .events import (
    ActorExited,
    ActorFailed,
    ActorRestarted,
    ActorStarted,
    EventBus,
    Subscription,
    SupervisorEscalated,
)
from .mailbox import ActorRef, MailboxStatistics, Reply
from .messages import is_message, message, message_type, registered, tag_of
from .portal import AsyncioPortal, PortalClosed
from .replay import Mismatch, ReplayError, ReplayResult, replay
from .supervision import (
    ActorSpec,
    Restart,
    RestartPolicy,
    Strategy,
    Supervisor,
    SupervisorSpec,
    open_supervisor,
)
from .system import ActorSystem
from .trace import JsonLinesSink, TraceRecorder, open_trace_file, read_trace

__all__ = [
    "Actor",
    "ActorContext",
    "ActorCrashed",
    "ActorError",
    "ActorExited",
    "ActorFailed",
    "ActorRef",
    "ActorRestarted",
    "ActorSpec",
    "ActorStarted",
    "ActorStopped",
    "ActorSystem",
    "AskTimeout",
    "AsyncioPortal",
    "Escalation",
    "EventBus",
    "JsonLinesSink",
    "MailboxOverrun",
    "MailboxStatistics",
    "Mismatch",
    "PortalClosed",
    "ReplayError",
    "ReplayResult",
    "Reply",
    "ReplyError",
    "Restart",
    "RestartPolicy",
    "Strategy",
    "Subscription",
    "Supervisor",
    "SupervisorEscalated",
    "SupervisorSpec",
    "TraceRecorder",
    "UnknownMessage",
    "converter",
    "dumps",
    "from_wire",
    "is_message",
    "loads",
    "message",
    "message_type",
    "open_supervisor",
    "open_trace_file",
    "read_trace",
    "registered",
    "replay",
    "tag_of",
    "to_wire",
]
