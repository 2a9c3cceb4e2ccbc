"""Test tools for workflow actors under trio's MockClock.

With `autojump_threshold=0` the mock clock jumps to the next deadline as soon as every
Trio task is blocked - including while one waits for a worker thread (a database call, a
blocking task kind). The runtime counts such waits and holds the clock still meanwhile
(actors/runtime/threads.py), so thread work costs no virtual time and tests stay
deterministic; these helpers route the tests' thread work through it.
"""

import datetime as dt
from collections.abc import Callable
from typing import Any

from triopacs.actors.runtime.threads import run_sync_in_thread

UTC = dt.timezone.utc


def frozen_thread_runner() -> Callable[[Callable[[], Any]], Any]:
    """A run_in_thread for the scheduler whose threads take no virtual time.

    Only for threads that finish on their own: while one runs the clock stands still, so
    a timeout could never fire. Timeout tests use the default runner.
    """
    return run_sync_in_thread


def at(text: str) -> dt.datetime:
    """An aware datetime from ISO text (UTC unless an offset is given)."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
