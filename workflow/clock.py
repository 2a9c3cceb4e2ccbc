"""Wall-clock time for workflow actors, consistent with Trio's clock.

Locks and schedules speak in wall-clock datetimes (a cron job at 02:30 Berlin time, a
lock acquired at 10:04 UTC) but wait on Trio's clock. `WallClock` links the two: by
default it reads the system clock; pinned to a `start` instant it advances exactly with
`trio.current_time()`, which is what tests under MockClock and trace replays need (the
same inputs at the same virtual moments give the same datetimes).
"""

import datetime as dt
import math

import trio

UTC = dt.timezone.utc


def require_aware(value: dt.datetime, what: str) -> dt.datetime:
    """`value` in UTC; a naive datetime is refused (it names no instant)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


class WallClock:
    def __init__(self, start: dt.datetime | None = None) -> None:
        self._start = require_aware(start, "clock start") if start is not None else None
        self._anchor: float | None = None

    def now(self) -> dt.datetime:
        if self._start is None:
            return dt.datetime.now(UTC)
        if self._anchor is None:
            self._anchor = trio.current_time()
        return self._start + dt.timedelta(seconds=trio.current_time() - self._anchor)

    def deadline(self, instant: dt.datetime) -> float:
        """The Trio-clock deadline at which the wall clock should read `instant`.

        With the system clock, a step of the wall clock while we sleep is noticed only
        at the next wake-up; callers re-check what is due when they wake.
        """
        if instant == dt.datetime.max.replace(tzinfo=UTC):
            return math.inf
        return trio.current_time() + (instant - self.now()).total_seconds()
