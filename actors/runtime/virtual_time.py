"""Holding a MockClock's virtual time while work is out of Trio, in another thread.

A Trio task waiting on another thread looks idle, and trio.testing.MockClock jumps
virtual time forward whenever every task is idle: a replay would deliver its next
recorded input while a database thread is still committing the previous one, and a
test's timeout could fire during a database write. While at least one call is out,
`virtual_time_held()` turns the autojump off; the last one out turns it back on. The
count is kept per clock, so any number of threads and portals can hold it at once. With
a real clock this does nothing.
"""

import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import attrs
import trio


@attrs.define
class _Hold:
    calls: int = 0
    saved_threshold: float = 0.0


_holds: "weakref.WeakKeyDictionary[object, _Hold]" = weakref.WeakKeyDictionary()


@contextmanager
def virtual_time_held() -> Iterator[None]:
    clock = trio.lowlevel.current_clock()
    if not hasattr(clock, "autojump_threshold"):
        yield
        return
    hold = _holds.setdefault(clock, _Hold())
    if hold.calls == 0:
        hold.saved_threshold = clock.autojump_threshold
        clock.autojump_threshold = math.inf
    hold.calls += 1
    try:
        yield
    finally:
        hold.calls -= 1
        if hold.calls == 0:
            clock.autojump_threshold = hold.saved_threshold
