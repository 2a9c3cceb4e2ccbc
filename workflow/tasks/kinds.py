"""Task kinds: the registry of what a task can run.

A stored task cannot hold a Python callable, so it names a *kind* - a registered
function - and carries JSON parameters for it. The function takes the parameters and a
TaskContext, and may be:

- an async function: run in the scheduler's nursery; a timeout cancels it for real;
- a plain (blocking) function: run in a worker thread; a timeout abandons the thread
  (Python cannot stop it), reports the run as timed out and sets `ctx.cancelled`,
  which a cooperative function can poll.

It answers None (or True) for success, a string (or False) for failure with that
message, and an exception for failure with the exception's text.

    from triopacs.workflow import task_kind

    @task_kind("backup", description="copy the index somewhere safe")
    async def backup(params, ctx):
        ...

Kinds live in `default_task_kinds` unless a scheduler is given its own registry.
"""

import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import attrs
import structlog

from ...actors import ActorRef, ActorSystem
from .types import ExecutionTrigger, TaskType

TaskFunction = Callable[[Mapping[str, Any], "TaskContext"], "Awaitable[object] | object"]


@attrs.frozen(kw_only=True)
class TaskContext:
    """What a running task knows about itself and may use of the node."""

    task_id: str
    task_name: str
    kind: str
    attempt: int
    trigger: ExecutionTrigger
    system: ActorSystem
    log: Any  # a structlog logger bound to the task
    cancelled: threading.Event  # set when a timeout abandoned this run (thread kinds)

    def lookup(self, path: str) -> ActorRef:
        """Another actor of the node (async kinds; from a thread use trio.from_thread)."""
        return self.system.lookup(path)


@attrs.frozen(kw_only=True)
class TaskKind:
    name: str
    function: TaskFunction
    type: TaskType = TaskType.CUSTOM
    description: str = ""

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function) or inspect.iscoroutinefunction(
            getattr(self.function, "__call__", None)
        )


class TaskKindRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, TaskKind] = {}

    def register(
        self,
        name: str,
        function: TaskFunction | None = None,
        *,
        type: TaskType = TaskType.CUSTOM,
        description: str = "",
        replace: bool = False,
    ) -> Any:
        """Register `function` as kind `name`; without `function`, a decorator."""
        if function is None:
            return lambda fn: self.register(name, fn, type=type, description=description, replace=replace)
        if not name or not isinstance(name, str):
            raise ValueError("a task kind needs a non-empty name")
        if not callable(function):
            raise TypeError(f"task kind {name!r}: {function!r} is not callable")
        if name in self._kinds and not replace and self._kinds[name].function is not function:
            raise ValueError(f"task kind {name!r} is already registered (pass replace=True to change it)")
        self._kinds[name] = TaskKind(name=name, function=function, type=type, description=description)
        return function

    def unregister(self, name: str) -> None:
        self._kinds.pop(name, None)

    def get(self, name: str) -> TaskKind | None:
        return self._kinds.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[TaskKind]:
        return iter(list(self._kinds.values()))

    def names(self) -> list[str]:
        return sorted(self._kinds)


default_task_kinds = TaskKindRegistry()


def task_kind(
    name: str,
    *,
    type: TaskType = TaskType.CUSTOM,
    description: str = "",
    registry: TaskKindRegistry | None = None,
    replace: bool = False,
) -> Callable[[TaskFunction], TaskFunction]:
    """Decorator: register the function as task kind `name` (in default_task_kinds)."""
    target = registry if registry is not None else default_task_kinds
    return lambda fn: target.register(name, fn, type=type, description=description, replace=replace)


def log_for(task_id: str, name: str) -> Any:
    return structlog.get_logger().bind(task_id=task_id, task=name)
