"""Work on other threads, as virtual time and replays must see it.

A Trio task waiting for another thread looks idle. trio.testing.MockClock's autojump
takes "every task idle" to mean "jump to the next deadline", and a replay that stops the
actors once every task is idle would stop them in the middle of a commit. So every wait
for another thread (an SQLite call, a file removal, the asyncio portal) is counted here,
per Trio run: while one is in flight a mock clock does not jump, and `settled()` waits for
the count to come back to zero. With a real clock the count only costs an integer.
"""

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import trio

T = TypeVar("T")


class _InFlight:
    def __init__(self) -> None:
        self.count = 0
        self.saved_threshold: float | None = None  # the mock clock's autojump, while held
        self.none_left = trio.Event()
        self.none_left.set()


_IN_FLIGHT: "trio.lowlevel.RunVar[_InFlight]" = trio.lowlevel.RunVar("triopacs_threads_in_flight")


def _in_flight() -> _InFlight:
    try:
        return _IN_FLIGHT.get()
    except LookupError:
        state = _InFlight()
        _IN_FLIGHT.set(state)
        return state


@contextmanager
def waiting_on_another_thread() -> Iterator[None]:
    """Hold this around any wait for work running on another thread."""
    state = _in_flight()
    clock = trio.lowlevel.current_clock()
    if state.count == 0:
        state.none_left = trio.Event()
        if hasattr(clock, "autojump_threshold"):
            state.saved_threshold = clock.autojump_threshold
            clock.autojump_threshold = math.inf
    state.count += 1
    try:
        yield
    finally:
        state.count -= 1
        if state.count == 0:
            if state.saved_threshold is not None:
                clock.autojump_threshold = state.saved_threshold
                state.saved_threshold = None
            state.none_left.set()


async def run_sync_in_thread(fn: Callable[..., T], *args: Any) -> T:
    """trio.to_thread.run_sync, counted."""
    with waiting_on_another_thread():
        return await trio.to_thread.run_sync(fn, *args)


async def settled() -> None:
    """Return once every other task is blocked and no thread is working for one of them."""
    from trio.testing import wait_all_tasks_blocked  # only here: trio.testing is heavy

    while True:
        await wait_all_tasks_blocked()
        state = _in_flight()
        if state.count == 0:
            return
        await state.none_left.wait()
