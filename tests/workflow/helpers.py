"""Test tools for workflow actors under trio's MockClock.

With `autojump_threshold=0` the mock clock jumps to the next deadline as soon as every
Trio task is blocked - including while one waits for a worker thread (a blocking task
kind). The work would then "take" as long as the next timeout. The runtime's
`virtual_time_held` stops the jumps while such a call is out of Trio, as the database
threads do for theirs, so thread work costs no virtual time and tests stay deterministic.
"""

import datetime as dt
from collections.abc import Callable
from typing import Any

import trio

from triopacs.actors import virtual_time_held

UTC = dt.timezone.utc


def frozen_thread_runner() -> Callable[[Callable[[], Any]], Any]:
    """A run_in_thread for the scheduler whose threads take no virtual time.

    Only for threads that finish on their own: while one runs the clock stands still, so
    a timeout could never fire. Timeout tests use the default runner.
    """

    async def run(fn: Callable[[], Any]) -> Any:
        with virtual_time_held():
            return await trio.to_thread.run_sync(fn)

    return run


def at(text: str) -> dt.datetime:
    """An aware datetime from ISO text (UTC unless an offset is given)."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
