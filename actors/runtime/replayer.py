"""Replay a recorded trace against fresh actors and report what they do differently.

The actors under test are rebuilt from the trace's `actor` records (class and recorded
constructor arguments) or from factories you pass. Every message another party sent them
is delivered again at its recorded time; every actor they talk to that is not under test
is played by a stand-in that answers asks with the recorded replies. What the actors under
test send - messages, replies and effects on the world outside (TraceRecorder.effect),
per (sender, recipient) stream - is compared with the recording. Run it under `trio.testing.MockClock(autojump_threshold=0)` so recorded times
cost nothing and timers fire deterministically.

A replay never touches live data. An actor is rebuilt from its record only when its class
declares its external resources (Actor.resources); each declared argument then points into
a scratch directory (runtime/resources.py) or at what the caller gives. Anything else is
rebuilt only by a factory the caller passes.
"""

import difflib
import inspect
import json
import shutil
import tempfile
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
from .resources import ResourceRefused, Scratch, UsedResource, Wanted
from .supervision import ActorSpec, RestartPolicy, open_supervisor
from .system import ActorSystem
from .threads import settled
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
    resources: tuple[UsedResource, ...] = ()  # what each declared resource really was
    built_by_caller: tuple[str, ...] = ()  # actors the caller's factories built
    scratch: str | None = None  # the scratch directory, if one was needed
    scratch_kept: bool = False  # False: it was removed when the replay ended

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def report(self) -> str:
        head = f"replayed {self.inputs} input(s) into {', '.join(self.actors)}; compared {self.compared} output(s)"
        verdict = "identical" if self.ok else f"{len(self.mismatches)} stream(s) differ"
        parts = [f"{head}: {verdict}", *self.where()]
        parts.extend(mismatch.diff() for mismatch in self.mismatches)
        return "\n".join(parts)

    def where(self) -> list[str]:
        """Where the replay ran, one line per declared resource and per caller's factory."""
        lines = [f"  {used.describe()}" for used in self.resources]
        lines.extend(f"  {path}: built by the caller's factory" for path in self.built_by_caller)
        if not lines:
            return ["ran in memory: no replayed actor declares an external resource"]
        if self.scratch is None:
            return ["ran on what the caller gave, not on live data:", *lines]
        fate = "kept" if self.scratch_kept else "removed afterwards"
        return [f"ran in the scratch directory {self.scratch} ({fate}), not on live data:", *lines]


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


@attrs.frozen(kw_only=True)
class _Rebuild:
    """How to build one actor under test from its record."""

    path: str
    cls: type
    args: dict[str, Any]  # as recorded (JSON values)

    def resources(self) -> Mapping[str, Any]:
        return self.cls.resources or {}

    def factory(self, resources: Mapping[str, UsedResource]) -> Callable[[], Actor]:
        """Build with the recorded arguments, each declared resource replaced (scratch paths
        are structured like the recorded values; what the caller gives goes in as it is)."""
        hints = typing.get_type_hints(self.cls.__init__) if inspect.isfunction(self.cls.__init__) else {}
        values = dict(self.args)
        values.update({name: use.used for name, use in resources.items() if use.how != "given"})
        given = {name: use.used for name, use in resources.items() if use.how == "given"}
        try:
            args = {name: converter.structure(value, hints[name]) if name in hints else value for name, value in values.items()}
        except Exception as error:
            raise ReplayError(f"cannot rebuild {self.path}: its recorded arguments do not fit {self.cls.__qualname__}: {error}") from None
        args.update(given)
        cls = self.cls
        return lambda: cls(**args)


def _rebuild_plan(record: Record) -> _Rebuild:
    path = record["path"]
    if record.get("factory") is not None:
        raise ReplayError(
            f"cannot rebuild {path} from the trace: it was built by {record['factory']}, not by its class with"
            " recorded arguments; pass a factory for it"
        )
    if record.get("args") is None:
        raise ReplayError(f"cannot rebuild {path}: its constructor arguments were not recorded; pass a factory")
    try:
        cls = resolve(record["class"])
    except Exception as error:
        raise ReplayError(f"cannot rebuild {path}: its class {record['class']} cannot be imported ({error})") from None
    if getattr(cls, "resources", None) is None:
        raise ReplayError(
            f"cannot rebuild {path}: {record['class']} does not declare its external resources (Actor.resources,"
            " {} for none), so a replay cannot keep it off live data; declare them or pass a factory"
        )
    try:
        inspect.signature(cls).bind(**record["args"])
    except TypeError as error:
        raise ReplayError(f"cannot rebuild {path}: its recorded arguments do not fit {record['class']}: {error}") from None
    return _Rebuild(path=path, cls=cls, args=dict(record["args"]))


def _choose_resources(
    plans: Iterable[_Rebuild], given: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, dict[str, UsedResource]], list[Wanted]]:
    """Per plan, the resources the caller gave or that were recorded as None; and the
    rest, which the scratch directory must provide."""
    chosen: dict[str, dict[str, UsedResource]] = defaultdict(dict)
    wanted = []
    for plan in plans:
        caller = given.get(plan.path, {})
        unknown = sorted(set(caller) - set(plan.resources()))
        if unknown:
            raise ReplayError(f"resources given for {plan.path} name {unknown}, which it does not declare")
        for name, resource in plan.resources().items():
            live = plan.args.get(name)
            if name in caller:
                chosen[plan.path][name] = UsedResource(actor=plan.path, argument=name, live=live, used=caller[name], how="given")
            elif live is None:
                chosen[plan.path][name] = UsedResource(actor=plan.path, argument=name, live=None, used=None, how="none")
            else:
                wanted.append(Wanted(actor=plan.path, argument=name, resource=resource, live=Path(str(live)).resolve()))
    return chosen, wanted


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
    """Whether a default replay (no `actors=`) takes this actor: only what it can rebuild
    from its record. One a factory built (an association over its socket) is played by
    a stand-in unless the caller names it and passes a factory."""
    if record.get("factory") is not None:
        return False
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
    resources: Mapping[str, Mapping[str, Any]] | None = None,
    scratch: Path | None = None,
    start_empty: bool = False,
) -> ReplayResult:
    """Replay `trace` into fresh actors and compare what they send with the recording.

    `factories={path: callable}` builds an actor the caller's way (its resources are the
    caller's business). Every other actor under test is rebuilt from its record, its
    declared resources pointing at `resources={path: {argument: value}}` where the caller
    gives one, else into `scratch` (a new or empty directory, kept; default a temporary
    one, removed): at copies of the live files and directories as they are now, or at
    empty ones with `start_empty`.
    """
    records = _load(trace)
    factories = dict(factories or {})
    given = {path: dict(values) for path, values in (resources or {}).items()}
    started = {r["path"]: r for r in records if r.get("kind") == "actor"}
    if actors is None:
        targets = [path for path, record in started.items() if path in factories or _replayable(record)]
    else:
        targets = list(actors)
    if not targets:
        for record in started.values():
            if record.get("factory") is not None and _replayable({**record, "factory": None}):
                _rebuild_plan(record)  # says which factory built it and what to pass
        raise ReplayError("nothing to replay: the trace records no replayable actor")
    for path in given:
        if path not in targets or path in factories:
            raise ReplayError(f"resources are given for {path}, which is not rebuilt from the trace")
    plans = []
    for path in targets:
        if path not in factories:
            if path not in started:
                raise ReplayError(f"{path} does not appear in the trace")
            plans.append(_rebuild_plan(started[path]))

    chosen, wanted = _choose_resources(plans, given)
    workspace = _Workspace(scratch) if wanted else None
    try:
        if workspace is not None:
            try:
                for use in Scratch(workspace.open(), copy=not start_empty).replace_all(wanted):
                    chosen[use.actor][use.argument] = use
            except ResourceRefused as refusal:
                raise ReplayError(f"cannot replace a resource: {refusal}") from None
        for plan in plans:
            factories[plan.path] = plan.factory(chosen.get(plan.path, {}))
        result = await _run(records, targets, started, factories)
    finally:
        if workspace is not None:
            workspace.close()
    order = {path: index for index, path in enumerate(targets)}
    return attrs.evolve(
        result,
        resources=tuple(sorted((u for by in chosen.values() for u in by.values()), key=lambda u: (order[u.actor], u.argument))),
        built_by_caller=tuple(path for path in targets if path not in {plan.path for plan in plans}),
        scratch=str(workspace.root) if workspace is not None else None,
        scratch_kept=workspace is not None and workspace.keep,
    )


class _Workspace:
    """The scratch directory: the caller's (new or empty, kept) or a temporary one."""

    def __init__(self, path: Path | None) -> None:
        self.keep = path is not None
        self.root = path.resolve() if path is not None else None

    def open(self) -> Path:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="replay-")).resolve()
        elif self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            raise ReplayError(f"the scratch directory {self.root} must be new or empty")
        return self.root  # the caller's is made once it is known to lie apart from live data

    def close(self) -> None:
        if not self.keep and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


async def _run(
    records: list[Record], targets: list[str], started: Mapping[str, Record], factories: Mapping[str, Callable[[], Actor]]
) -> ReplayResult:
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
            await settled()  # work still on other threads (a commit, a file removal) finishes first
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
