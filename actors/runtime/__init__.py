"""The actor runtime: typed messages, mailboxes, supervision, events, traces, replay,
and the threads actors reach blocking libraries through (database threads, the asyncio portal).

Nothing here knows DICOM: the runtime can be embedded and tested on its own (the
layering test keeps it that way).

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

import importlib
from typing import TYPE_CHECKING, Any

# Exports load on first use: importing one runtime piece (say, for a message class)
# does not pull in the codec, replay and their dependencies.
_EXPORTS = {
    "Actor": "actor",
    "ActorContext": "actor",
    "ActorCrashed": "errors",
    "ActorError": "errors",
    "ActorExited": "events",
    "ActorFailed": "events",
    "ActorRef": "mailbox",
    "ActorRestarted": "events",
    "ActorSpec": "supervision",
    "ActorStarted": "events",
    "ActorStopped": "errors",
    "ActorSystem": "system",
    "AskTimeout": "errors",
    "DatabaseClosed": "database_thread",
    "DatabaseThread": "database_thread",
    "AsyncioPortal": "portal",
    "DirectoryResource": "resources",
    "Escalation": "errors",
    "EventBus": "events",
    "FileResource": "resources",
    "JsonLinesSink": "trace",
    "MailboxOverrun": "errors",
    "MailboxStatistics": "mailbox",
    "Mismatch": "replayer",
    "PortalClosed": "portal",
    "ReplayError": "replayer",
    "ReplayResult": "replayer",
    "Reply": "mailbox",
    "ReplyError": "errors",
    "Restart": "supervision",
    "RestartPolicy": "supervision",
    "Strategy": "supervision",
    "Subscription": "events",
    "Supervisor": "supervision",
    "SupervisorEscalated": "events",
    "SupervisorSpec": "supervision",
    "TraceRecorder": "trace",
    "UncopyableResource": "resources",
    "UnknownMessage": "errors",
    "UsedResource": "resources",
    "converter": "codec",
    "dumps": "codec",
    "from_wire": "codec",
    "is_message": "messages",
    "loads": "codec",
    "message": "messages",
    "message_type": "messages",
    "open_supervisor": "supervision",
    "open_trace_file": "trace",
    "read_trace": "trace",
    "registered": "messages",
    "replay": "replayer",
    "tag_of": "messages",
    "to_wire": "codec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .actor import Actor, ActorContext
    from .codec import converter, dumps, from_wire, loads, to_wire
    from .database_thread import DatabaseClosed, DatabaseThread
    from .errors import ActorCrashed, ActorError, ActorStopped, AskTimeout, Escalation, MailboxOverrun, ReplyError, UnknownMessage
    from .events import ActorExited, ActorFailed, ActorRestarted, ActorStarted, EventBus, Subscription, SupervisorEscalated
    from .mailbox import ActorRef, MailboxStatistics, Reply
    from .messages import is_message, message, message_type, registered, tag_of
    from .portal import AsyncioPortal, PortalClosed
    from .replayer import Mismatch, ReplayError, ReplayResult, replay
    from .resources import DirectoryResource, FileResource, UncopyableResource, UsedResource
    from .supervision import ActorSpec, Restart, RestartPolicy, Strategy, Supervisor, SupervisorSpec, open_supervisor
    from .system import ActorSystem
    from .trace import JsonLinesSink, TraceRecorder, open_trace_file, read_trace
