"""Test tools for workflow actors under trio's MockClock.

With `autojump_threshold=0` the mock clock jumps to the next deadline as soon as every
Trio task is blocked - including while one waits for a worker thread (aiosqlite behind
the asyncio portal, a blocking task kind). A database write would then "take" as long as
the next timeout. `FrozenWhileAway` stops the jumps while such a call is out of Trio, so
thread work costs no virtual time and tests stay deterministic.
"""

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import trio

from triopacs.actors import AsyncioPortal

UTC = dt.timezone.utc


class FrozenWhileAway:
    """Counts calls that are out in other threads; the clock does not autojump meanwhile."""

    def __init__(self) -> None:
        self._away = 0
        self._threshold = 0.0

    def _clock(self) -> Any:
        return trio.lowlevel.current_clock()

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        clock = self._clock()
        if self._away == 0:
            self._threshold = clock.autojump_threshold
            clock.autojump_threshold = math.inf
        self._away += 1
        try:
            return await fn(*args)
        finally:
            self._away -= 1
            if self._away == 0:
                clock.autojump_threshold = self._threshold


class MockClockPortal(AsyncioPortal):
    """The asyncio portal, with database calls taking no virtual time."""

    def __init__(self) -> None:
        super().__init__(name="test-portal")
        self._frozen = FrozenWhileAway()

    async def run(self, fn, *args):  # type: ignore[override]
        return await self._frozen.call(super().run, fn, *args)


def frozen_thread_runner() -> Callable[[Callable[[], Any]], Any]:
    """A run_in_thread for the scheduler whose threads take no virtual time.

    Only for threads that finish on their own: while one runs the clock stands still, so
    a timeout could never fire. Timeout tests use the default runner.
    """
    frozen = FrozenWhileAway()

    async def run(fn: Callable[[], Any]) -> Any:
        return await frozen.call(trio.to_thread.run_sync, fn)

    return run


def at(text: str) -> dt.datetime:
    """An aware datetime from ISO text (UTC unless an offset is given)."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
