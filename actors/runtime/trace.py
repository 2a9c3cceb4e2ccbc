"""Trace recording: one JSON object per line for every delivered message and reply.

See docs/traces.md for the format. Times are seconds on the trio clock since the trace
began, so a replay under MockClock can deliver inputs at the recorded moments.
"""

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import trio

from .codec import converter, to_wire
from .mailbox import Envelope, Reply
from .messages import is_message, qualified_name

TRACE_VERSION = 1


def wire_value(value: Any) -> dict[str, Any]:
    """`{"type", "payload"}` for a reply or message value, whatever it is."""
    if value is None:
        return {"type": None, "payload": None}
    if is_message(value):
        return to_wire(value)
    try:
        return {"type": "value", "payload": converter.unstructure(value)}
    except Exception:  # not worth losing the trace over
        return {"type": f"unregistered:{qualified_name(type(value))}", "payload": repr(value)}


def wire_error(error: BaseException) -> dict[str, Any]:
    args = [a for a in error.args if isinstance(a, (str, int, float, bool, type(None)))]
    return {"type": qualified_name(type(error)), "message": str(error), "args": args}


def _callable_name(fn: Callable[..., Any]) -> str:
    """`module:QualName` of a function or method, else its repr (a partial, an object)."""
    target = getattr(fn, "__func__", fn)
    if hasattr(target, "__module__") and hasattr(target, "__qualname__"):
        return f"{target.__module__}:{target.__qualname__}"
    return repr(fn)


class TraceRecorder:
    """Turns runtime happenings into trace records and hands them to `sink`."""

    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        self._sink = sink
        self._t0: float | None = None

    def _now(self) -> float:
        now = trio.current_time()
        if self._t0 is None:
            self._t0 = now
        return round(now - self._t0, 9)

    def begin(self, **about: str) -> None:
        """Write the header: the trace format's version and whatever `about` says of the
        program that records (the node puts its version there)."""
        self._now()
        self._sink({"kind": "trace", "version": TRACE_VERSION, **about})

    def actor_started(
        self, path: str, actor_class: type, args: dict[str, Any] | None, *, built_by: Callable[..., Any] | None = None
    ) -> None:
        """`built_by`: the factory that built the actor when it was not its class."""
        record = {"kind": "actor", "t": self._now(), "path": path, "class": qualified_name(actor_class), "args": args}
        if built_by is not None:
            record["factory"] = _callable_name(built_by)
        self._sink(record)

    def delivered(self, envelope: Envelope, recipient: str) -> None:
        record = {
            "kind": "message",
            "t": self._now(),
            "from": envelope.sender,
            "to": recipient,
            "id": envelope.reply.correlation_id if envelope.reply is not None else None,
        }
        record.update(wire_value(envelope.message))
        self._sink(record)

    def reply_sent(self, reply: Reply, value: Any, error: BaseException | None) -> None:
        record: dict[str, Any] = {
            "kind": "reply",
            "t": self._now(),
            "from": reply.responder,
            "to": reply.asker,
            "id": reply.correlation_id,
        }
        if error is not None:
            record["error"] = wire_error(error)
        else:
            record.update(wire_value(value))
        self._sink(record)


    def effect(self, issuer: str | None, kind: str, detail: dict[str, Any]) -> None:
        """Something an actor did to the world outside the actor system (sent to a peer,
        say): no message, but an output a replay compares like one."""
        self._sink({"kind": "effect", "t": self._now(), "from": issuer, "to": kind, "payload": detail})


class JsonLinesSink:
    """Writes records to a text file, one compact JSON object per line."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, record: dict[str, Any]) -> None:
        self._stream.write(json.dumps(record, separators=(",", ":"), sort_keys=True))
        self._stream.write("\n")

    def close(self) -> None:
        self._stream.flush()
        self._stream.close()


def open_trace_file(path: Path) -> JsonLinesSink:
    path.parent.mkdir(parents=True, exist_ok=True)
    return JsonLinesSink(open(path, "w", encoding="utf-8"))


def read_trace(source: Path | Iterable[str]) -> Iterator[dict[str, Any]]:
    lines: Iterable[str] = open(source, encoding="utf-8") if isinstance(source, Path) else source
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"trace line {number} is not JSON: {exc}") from None
