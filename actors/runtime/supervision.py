"""Supervisors: a nursery of children plus a restart policy.

One-for-one restarts only the child that failed; one-for-all stops every sibling and
starts them all again in order. A child that fails more than `max_restarts` times within
`within` seconds makes its supervisor give up: it stops its children and raises
Escalation to its own parent, which treats that as a failure of the subtree. A clean
return and a cancellation are not failures. Restarts wait an exponential backoff.
"""

import enum
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
import trio

from .actor import Actor, format_failure, run_incarnation
from .errors import Escalation
from .events import ActorExited, ActorFailed, ActorRestarted, ActorStarted, SupervisorEscalated
from .mailbox import ActorRef, Mailbox
from .system import ActorSystem

log = structlog.get_logger()


class Strategy(enum.Enum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"


class Restart(enum.Enum):
    ON_FAILURE = "on_failure"
    NEVER = "never"  # for children whose failure is final, e.g. one association


@attrs.frozen(kw_only=True)
class RestartPolicy:
    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    within: float = 5.0
    backoff_initial: float = 0.05
    backoff_max: float = 2.0

    def backoff(self, recent_failures: int) -> float:
        return min(self.backoff_max, self.backoff_initial * 2**recent_failures)


@attrs.frozen(kw_only=True)
class ActorSpec:
    name: str
    actor: Callable[..., Actor]
    args: Mapping[str, Any] = attrs.field(factory=dict)
    capacity: int = 64
    restart: Restart = Restart.ON_FAILURE


@attrs.frozen(kw_only=True)
class SupervisorSpec:
    name: str
    policy: RestartPolicy = RestartPolicy()
    children: Sequence["ActorSpec | SupervisorSpec"] = ()
    restart: Restart = Restart.ON_FAILURE


def unwrap(exc: BaseException) -> BaseException:
    """The single exception inside nested one-member groups, or exc itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def split_cancelled(exc: BaseException) -> tuple[BaseException | None, BaseException | None]:
    """(failure, cancellation) parts of what a child raised."""
    if isinstance(exc, BaseExceptionGroup):
        cancelled, rest = exc.split(trio.Cancelled)
        failure = unwrap(rest) if rest is not None else None
        if failure is not None and not isinstance(failure, Exception):
            return None, exc  # KeyboardInterrupt and friends are not ours to handle
        return failure, cancelled
    if isinstance(exc, Exception):
        return exc, None
    return None, exc


class _ReadyFlag:
    """Passes `started()` through to the starter and remembers that it happened."""

    def __init__(self, task_status: trio.TaskStatus[Any]) -> None:
        self._task_status = task_status
        self.ready = False

    def started(self, value: Any = None) -> None:
        self.ready = True
        self._task_status.started(value)


class _ActorChild:
    def __init__(self, spec: ActorSpec, path: str, system: ActorSystem) -> None:
        self.spec = spec
        self.path = path
        self.mailbox = Mailbox(path, spec.capacity, getattr(spec.actor, "accepts", ()))
        system.register(self.mailbox)
        self.handle: ActorRef | Supervisor = ActorRef(self.mailbox)
        self.failures: deque[float] = deque()
        self._incarnations = 0

    async def run_once(self, system: ActorSystem, status: _ReadyFlag, parent: "Supervisor") -> None:
        actor = self.spec.actor(**self.spec.args)
        if self._incarnations == 0 and system.recorder is not None:
            if isinstance(self.spec.actor, type):
                system.recorder.actor_started(self.path, type(actor), _recordable(self.spec.args))
            else:
                # The spec's args are the factory's, not the class's: a replay could not
                # rebuild the actor from them, so the record names the factory instead.
                system.recorder.actor_started(self.path, type(actor), None, built_by=self.spec.actor)
        self._incarnations += 1
        system.bus.publish(ActorStarted(path=self.path, restarts=self.mailbox.restarts))
        await run_incarnation(actor, self.mailbox, system, status, parent)  # type: ignore[arg-type]

    def count_restart(self) -> int:
        self.mailbox.restarts += 1
        return self.mailbox.restarts

    def finish(self, system: ActorSystem) -> None:
        self.mailbox.close()
        system.unregister(self.path)


class _SupervisorChild:
    def __init__(self, spec: SupervisorSpec, path: str, system: ActorSystem) -> None:
        self.spec = spec
        self.path = path
        self.handle = Supervisor(system, path, spec.policy, spec.children)
        self.failures: deque[float] = deque()

    async def run_once(self, system: ActorSystem, status: _ReadyFlag, parent: "Supervisor") -> None:
        await self.handle._run(status)  # type: ignore[arg-type]

    def count_restart(self) -> int:
        self.handle.restarts += 1
        return self.handle.restarts

    def finish(self, system: ActorSystem) -> None:
        self.handle._finish_children()


def _recordable(args: Mapping[str, Any]) -> dict[str, Any] | None:
    """Constructor arguments as JSON values, or None when some cannot be recorded."""
    from .codec import converter

    try:
        import json

        value = converter.unstructure(dict(args))
        json.dumps(value)
        return value
    except Exception:
        return None


class Supervisor:
    def __init__(
        self,
        system: ActorSystem,
        path: str,
        policy: RestartPolicy = RestartPolicy(),
        children: Sequence[ActorSpec | SupervisorSpec] = (),
    ) -> None:
        self.system = system
        self.path = path
        self.policy = policy
        self.restarts = 0
        self._specs = list(children)
        self._children: dict[str, _ActorChild | _SupervisorChild] = {}
        self._nursery: trio.Nursery | None = None
        self._restart_times: deque[float] = deque()
        self._escalation: Escalation | None = None
        self._restart_all = False
        self._specs_added = False

    def __repr__(self) -> str:
        return f"<Supervisor {self.path} {self.policy.strategy.value}>"

    @property
    def children(self) -> "dict[str, ActorRef | Supervisor]":
        return {name: child.handle for name, child in self._children.items()}

    def child_path(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}"

    async def start(self, spec: ActorSpec | SupervisorSpec, *, path: str | None = None) -> Any:
        """Start a child; returns its ActorRef (or Supervisor) once it is ready.

        The child's path is this supervisor's path plus its name, unless `path` is given
        (replay uses that to rebuild actors at their recorded paths).
        """
        if self._nursery is None:
            raise RuntimeError(f"{self.path} is not running")
        child = self._add(spec, path)
        try:
            await self._nursery.start(self._watch, child)
        except BaseException:
            self._remove(child)
            raise
        return child.handle

    def _add(self, spec: ActorSpec | SupervisorSpec, path: str | None = None) -> _ActorChild | _SupervisorChild:
        if path is None:
            if "/" in spec.name or not spec.name:
                raise ValueError(f"bad child name {spec.name!r}")
            path = self.child_path(spec.name)
        if spec.name in self._children:
            raise ValueError(f"{self.path} already has a child named {spec.name!r}")
        child: _ActorChild | _SupervisorChild
        if isinstance(spec, SupervisorSpec):
            child = _SupervisorChild(spec, path, self.system)
        else:
            child = _ActorChild(spec, path, self.system)
        self._children[spec.name] = child
        return child

    def _remove(self, child: _ActorChild | _SupervisorChild) -> None:
        if self._children.get(child.spec.name) is child:
            del self._children[child.spec.name]
        child.finish(self.system)

    def _finish_children(self) -> None:
        for child in list(self._children.values()):
            self._remove(child)

    async def _run(self, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the children until cancelled or until giving up (raises Escalation).

        Children outlive a failed run: when our parent restarts us, the same mailboxes
        come back, so refs stay valid. Whoever gives up on us for good finishes them.
        """
        if not self._specs_added:
            for spec in self._specs:
                self._add(spec)
            self._specs_added = True
        else:
            self._drop_temporary_children()
        self._restart_times.clear()
        self._escalation = None
        reported = False
        try:
            while True:
                self._restart_all = False
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    for child in list(self._children.values()):
                        await nursery.start(self._watch, child, not reported)
                    if not reported:
                        task_status.started(self)
                        reported = True
                    await trio.sleep_forever()
                if self._escalation is not None:
                    raise self._escalation
                if self._restart_all:
                    await self._restart_everyone()
        finally:
            self._nursery = None

    def _drop_temporary_children(self) -> None:
        for child in list(self._children.values()):
            if child.spec.restart is Restart.NEVER:
                self._remove(child)

    async def _restart_everyone(self) -> None:
        # Temporary children do not come back; the others restart in their original order.
        self._drop_temporary_children()
        delay = max(self.policy.backoff(len(self._restart_times) - 1), 0.0)
        await trio.sleep(delay)
        for child in self._children.values():
            restarts = child.count_restart()
            self.system.bus.publish(ActorRestarted(path=child.path, restarts=restarts, delay=delay))

    async def _watch(
        self,
        child: _ActorChild | _SupervisorChild,
        fail_fast: bool = True,
        *,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run `child` for good: restart it per policy, report when it is first ready.

        With `fail_fast`, a failure before the first `started()` goes to the starter
        instead of being restarted (a child that cannot start is a configuration error).
        """
        status = _ReadyFlag(task_status)
        while True:
            try:
                await child.run_once(self.system, status, self)
            except BaseException as exc:
                failure, cancelled = split_cancelled(exc)
                if failure is None:
                    raise
                if fail_fast and not status.ready:
                    raise failure from None
                self._report_failure(child, failure)
                if cancelled is not None:
                    raise cancelled from None
                if child.spec.restart is Restart.NEVER:
                    self._remove(child)
                    return
                if not self._count_failure(child, failure):
                    return  # escalating: our nursery is being cancelled
                if self.policy.strategy is Strategy.ONE_FOR_ALL:
                    self._restart_all = True
                    assert self._nursery is not None
                    self._nursery.cancel_scope.cancel()
                    return
                delay = self.policy.backoff(len(child.failures) - 1)
                await trio.sleep(delay)
                restarts = child.count_restart()
                self.system.bus.publish(ActorRestarted(path=child.path, restarts=restarts, delay=delay))
                if status.ready:
                    status = _ReadyFlag(trio.TASK_STATUS_IGNORED)
            else:
                self.system.bus.publish(ActorExited(path=child.path))
                self._remove(child)
                return

    def _report_failure(self, child: _ActorChild | _SupervisorChild, failure: BaseException) -> None:
        log.error("actor failed", actor=child.path, supervisor=self.path, exc_info=failure)
        self.system.bus.publish(ActorFailed(path=child.path, error=repr(failure), traceback=format_failure(failure)))

    def _count_failure(self, child: _ActorChild | _SupervisorChild, failure: BaseException) -> bool:
        """Note one more restart; False (and escalate) when the policy's limit is passed."""
        now = trio.current_time()
        horizon = now - self.policy.within
        for times in (self._restart_times, child.failures):
            while times and times[0] < horizon:
                times.popleft()
        if len(self._restart_times) >= self.policy.max_restarts:
            self._escalation = Escalation(self.path, child.path, failure)
            log.critical("supervisor gives up", supervisor=self.path, child=child.path)
            self.system.bus.publish(SupervisorEscalated(path=self.path, child=child.path, error=repr(failure)))
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()
            return False
        self._restart_times.append(now)
        child.failures.append(now)
        return True


@asynccontextmanager
async def open_supervisor(
    system: ActorSystem,
    path: str = "",
    policy: RestartPolicy = RestartPolicy(),
    children: Sequence[ActorSpec | SupervisorSpec] = (),
) -> AsyncIterator[Supervisor]:
    """Run a root supervisor for the duration of the block.

    If the tree gives up, the block is cancelled and Escalation is raised from it.
    """
    supervisor = Supervisor(system, path, policy, children)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor._run)
            try:
                yield supervisor
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        single = unwrap(group)
        if single is group:
            raise
        raise single from None
    finally:
        supervisor._finish_children()
