"""Running one execution of a task kind, with a timeout that really stops it.

An async kind runs under a Trio cancel scope: at the timeout it is cancelled at its next
checkpoint and its cleanup runs. A blocking kind runs in a worker thread; at the timeout
the thread is abandoned (`abandon_on_cancel`), the run is reported as timed out with a
note that the thread may still be running, and `ctx.cancelled` is set for functions that
check it.
"""

import functools
import math
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from .kinds import TaskContext, TaskKind
from .types import TaskState

ThreadRunner = Callable[[Callable[[], Any]], Awaitable[Any]]


async def run_in_worker_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)


@attrs.frozen
class RunOutcome:
    state: TaskState  # COMPLETED or FAILED (cancellation is decided by the scheduler)
    error: str | None = None
    timed_out: bool = False


def outcome_of(result: object) -> RunOutcome:
    """What a kind's return value means: None/True = success, str/False = failure."""
    if result is None or result is True:
        return RunOutcome(TaskState.COMPLETED)
    if result is False:
        return RunOutcome(TaskState.FAILED, "the task reported failure")
    if isinstance(result, str):
        return RunOutcome(TaskState.FAILED, result or "the task reported failure without a message")
    return RunOutcome(TaskState.FAILED, f"the task returned {type(result).__name__}; expected None, a bool or an error message")


async def run_kind(
    kind: TaskKind,
    params: dict[str, Any],
    ctx: TaskContext,
    timeout: float,
    run_in_thread: ThreadRunner = run_in_worker_thread,
) -> RunOutcome:
    """Run `kind` once; never raises an Exception (failures are outcomes)."""
    deadline = trio.current_time() + timeout if timeout > 0 else math.inf
    result: object = None
    try:
        with trio.move_on_at(deadline) as scope:
            if kind.is_async:
                result = await kind.function(params, ctx)  # type: ignore[misc]
            else:
                result = await run_in_thread(functools.partial(kind.function, params, ctx))
    except Exception as error:
        ctx.log.warning("task raised", error=repr(error), exc_info=error)
        return RunOutcome(TaskState.FAILED, f"{type(error).__name__}: {error}")
    if scope.cancelled_caught:
        ctx.cancelled.set()
        note = "" if kind.is_async else "; its worker thread was abandoned and may still be running"
        return RunOutcome(TaskState.FAILED, f"timed out after {timeout:g}s{note}", timed_out=True)
    return outcome_of(result)
