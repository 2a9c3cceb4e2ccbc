"""Replay a recorded trace against fresh actors and report what they do differently.

The actors under test are rebuilt from the trace's `actor` records (class and recorded
constructor arguments) or from factories you pass. Every message another party sent them
is delivered again at its recorded time; every actor they talk to that is not under test
is played by a stand-in that answers asks with the recorded replies. What the actors under
test send - messages, replies and effects on the world outside (TraceRecorder.effect),
per (sender, recipient) stream - is compared with the recording. Run it under `trio.testing.MockClock(autojump_threshold=0)` so recorded times
cost nothing and timers fire deterministically.
"""

import difflib
import inspect
import json
import typing
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from .actor import Actor
from .codec import converter, from_wire
from .mailbox import Envelope, Mailbox, current_actor
from .messages import resolve
from .portal import AsyncioPortal
from .supervision import ActorSpec, RestartPolicy, open_supervisor
from .system import ActorSystem
from .trace import TraceRecorder, read_trace

Record = dict[str, Any]


class ReplayError(Exception):
    """The trace cannot be replayed as asked (not a mismatch: a setup problem)."""


class RecordedError(Exception):
    """Stands for a recorded error whose type could not be rebuilt."""


@attrs.frozen(kw_only=True)
class Mismatch:
    stream: str  # "message /a -> /b" or "reply /a -> /b"
    recorded: tuple[str, ...]
    replayed: tuple[str, ...]

    def diff(self) -> str:
        lines = difflib.unified_diff(
            list(self.recorded), list(self.replayed), f"recorded {self.stream}", f"replayed {self.stream}", lineterm=""
        )
        return "\n".join(lines)


@attrs.frozen(kw_only=True)
class ReplayResult:
    actors: tuple[str, ...]
    inputs: int
    compared: int
    mismatches: tuple[Mismatch, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def report(self) -> str:
        head = f"replayed {self.inputs} input(s) into {', '.join(self.actors)}; compared {self.compared} output(s)"
        if self.ok:
            return f"{head}: identical"
        parts = [f"{head}: {len(self.mismatches)} stream(s) differ"]
        parts.extend(mismatch.diff() for mismatch in self.mismatches)
        return "\n".join(parts)


def _comparable(record: Record) -> str:
    """The part of a record that behaviour determines (not times or correlation ids)."""
    keep = {key: record.get(key) for key in ("type", "payload", "error")}
    if keep["error"] is None:
        del keep["error"]
    else:
        keep = {"error": {"type": record["error"]["type"], "message": record["error"]["message"]}}
    return json.dumps(keep, sort_keys=True, separators=(",", ":"))


def _streams(records: Iterable[Record], senders: Collection[str]) -> dict[str, list[str]]:
    streams: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if record.get("kind") in ("message", "reply", "effect") and record.get("from") in senders:
            streams[f"{record['kind']} {record['from']} -> {record['to']}"].append(_comparable(record))
    return streams


def _rebuild_error(error: Record) -> BaseException:
    try:
        cls = resolve(error["type"])
        if isinstance(cls, type) and issubclass(cls, BaseException):
            exc = cls.__new__(cls)
            BaseException.__init__(exc, error["message"])
            return exc
    except Exception:
        pass
    return RecordedError(f"{error['type']}: {error['message']}")


def _rebuild_value(record: Record) -> Any:
    if "error" in record:
        raise _rebuild_error(record["error"])
    if record.get("type") is None:
        return None
    if record["type"] == "value":
        return record["payload"]
    return from_wire(record)


def _factory_from_record(record: Record) -> Callable[[], Actor]:
    if record.get("args") is None:
        raise ReplayError(f"cannot rebuild {record['path']}: its constructor arguments were not recorded; pass a factory")
    cls = resolve(record["class"])
    hints = typing.get_type_hints(cls.__init__) if inspect.isfunction(cls.__init__) else {}
    args = {name: converter.structure(value, hints[name]) if name in hints else value for name, value in record["args"].items()}
    return lambda: cls(**args)


class _StandIn(Mailbox):
    """Plays an actor that is not under test: takes messages, answers asks as recorded."""

    def __init__(self, path: str, answers: Mapping[str | None, deque[Record]], recorder: TraceRecorder) -> None:
        super().__init__(path, capacity=1)
        self._answers = answers
        self._recorder = recorder

    async def put(self, envelope: Envelope) -> None:
        self.put_nowait(envelope)

    def put_nowait(self, envelope: Envelope) -> None:
        self._recorder.delivered(envelope, self.path)
        reply = envelope.reply
        if reply is None:
            return
        queue = self._answers.get(envelope.sender)
        if not queue:
            reply.fail(RecordedError(f"the recording has no answer from {self.path} for this ask"))
            return
        try:
            reply.send(_rebuild_value(queue.popleft()))
        except BaseException as exc:
            reply.fail(exc)


class _ReplaySystem(ActorSystem):
    def __init__(self, targets: Collection[str], recorded: list[Record], recorder: TraceRecorder, portal: AsyncioPortal) -> None:
        super().__init__(recorder=recorder, portal=portal)
        self._targets = set(targets)
        self._answers = _stand_in_answers(recorded, self._targets)
        self._stand_ins: dict[str, _StandIn] = {}

    def lookup(self, path: str) -> Any:
        if path in self._targets:
            return super().lookup(path)
        if path not in self._stand_ins:
            stand_in = _StandIn(path, self._answers[path], self.recorder)  # type: ignore[arg-type]
            stand_in.reply_listener = self.recorder
            self._stand_ins[path] = stand_in
        from .mailbox import ActorRef

        return ActorRef(self._stand_ins[path])


def _stand_in_answers(records: list[Record], targets: set[str]) -> dict[str, dict[str | None, deque[Record]]]:
    """For each stand-in, per asker, the recorded replies in the order they were given."""
    replies = {r["id"]: r for r in records if r.get("kind") == "reply"}
    answers: dict[str, dict[str | None, deque[Record]]] = defaultdict(lambda: defaultdict(deque))
    for record in records:
        if record.get("kind") == "message" and record.get("from") in targets and record["to"] not in targets:
            reply = replies.get(record.get("id"))
            if reply is not None:
                answers[record["to"]][record["from"]].append(reply)
    return answers


def _replayable(record: Record) -> bool:
    try:
        cls = resolve(record["class"])
    except Exception:
        return False
    return bool(getattr(cls, "replayable", True))


async def replay(
    trace: Path | Iterable[str] | Iterable[Record],
    *,
    actors: Collection[str] | None = None,
    factories: Mapping[str, Callable[[], Actor]] | None = None,
) -> ReplayResult:
    records = _load(trace)
    factories = dict(factories or {})
    started = {r["path"]: r for r in records if r.get("kind") == "actor"}
    if actors is None:
        targets = [path for path, record in started.items() if path in factories or _replayable(record)]
    else:
        targets = list(actors)
    if not targets:
        raise ReplayError("nothing to replay: the trace records no replayable actor")
    for path in targets:
        if path not in factories:
            if path not in started:
                raise ReplayError(f"{path} does not appear in the trace")
            factories[path] = _factory_from_record(started[path])

    replayed: list[Record] = []
    recorder = TraceRecorder(replayed.append)
    recorder.begin()
    t0 = trio.current_time()
    inputs = [
        r for r in records if r.get("kind") == "message" and r["to"] in targets and r.get("from") not in targets
    ]
    asked = {r["id"] for r in records if r.get("kind") == "reply"}

    async with AsyncioPortal() as portal:
        system = _ReplaySystem(targets, records, recorder, portal)
        # Recorded crashes recur in a faithful replay; restart like a default supervisor
        # would, but never give up, so the rest of the trace is still compared.
        policy = RestartPolicy(max_restarts=2**31)
        async with open_supervisor(system, "", policy) as root, trio.open_nursery() as askers:
            for path in sorted(targets, key=lambda p: started.get(p, {}).get("t", 0.0)):
                await root.start(ActorSpec(name=path, actor=factories[path]), path=path)
            for record in inputs:
                await trio.sleep_until(t0 + record["t"])
                message = from_wire(record)
                ref = system.lookup(record["to"])
                token = current_actor.set(record.get("from"))
                try:
                    if record.get("id") in asked:
                        askers.start_soon(_ask_quietly, ref, message)
                    else:
                        await ref.send(message)
                finally:
                    current_actor.reset(token)
            last = max((r.get("t", 0.0) for r in records), default=0.0)
            await trio.sleep_until(t0 + last)
            from trio.testing import wait_all_tasks_blocked  # only here: trio.testing is heavy

            await wait_all_tasks_blocked()
            askers.cancel_scope.cancel()

    expected = _streams(records, targets)
    actual = _streams(replayed, targets)
    mismatches = [
        Mismatch(stream=name, recorded=tuple(expected.get(name, ())), replayed=tuple(actual.get(name, ())))
        for name in sorted(set(expected) | set(actual))
        if expected.get(name, []) != actual.get(name, [])
    ]
    return ReplayResult(
        actors=tuple(targets),
        inputs=len(inputs),
        compared=sum(len(v) for v in expected.values()),
        mismatches=tuple(mismatches),
    )


def _load(trace: Path | Iterable[str] | Iterable[Record]) -> list[Record]:
    if isinstance(trace, Path):
        return list(read_trace(trace))
    items = list(trace)
    if items and isinstance(items[0], dict):
        return items  # already parsed
    return list(read_trace(items))  # type: ignore[arg-type]


async def _ask_quietly(ref: Any, message: object) -> None:
    try:
        await ref.ask(message, timeout=None)
    except Exception:
        pass  # the error reply is recorded and compared like any other reply
