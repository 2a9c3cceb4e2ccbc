"""When a task runs: every N seconds, on a cron expression, or once.

The three kinds follow the seed's interval_schedule, cron_schedule and
one_time_schedule (DES-WKF-004, 5.1.1). All three answer `next_after(after, zone)`: the
first run strictly after an instant, or None when there is none. Times are aware
datetimes; durations are seconds (float), as everywhere in Trio.

Every schedule has `validate()`, which raises ValueError (CronError naming the field for
a cron expression, a message naming `start_at` for a naive datetime...). `CronSchedule.parse`
and the helpers validate at once; the scheduler validates whatever reaches it and answers
a bad schedule with InvalidSchedule. (Building a schedule does not validate by itself, so
that every message carrying one can be rebuilt from a trace as it was.)
"""

import datetime as dt
import math
from typing import TypeAlias

import attrs
from cattrs.strategies import configure_tagged_union

from ...actors.runtime.codec import converter
from . import cron
from ..clock import UTC, require_aware
from .cron import CronError

__all__ = ["CronError", "CronSchedule", "IntervalSchedule", "OneTimeSchedule", "Schedule", "parse_schedule"]


@attrs.frozen(kw_only=True)
class IntervalSchedule:
    """Every `interval` seconds, on the grid start_at + k * interval (k >= 0).

    Without `start_at`, the scheduler anchors the grid when the task is scheduled: the
    first run comes one interval later (`anchored`).
    """

    interval: float = 3600.0
    start_at: dt.datetime | None = None

    def validate(self) -> "IntervalSchedule":
        number = isinstance(self.interval, (int, float)) and not isinstance(self.interval, bool)
        if not (number and self.interval > 0 and math.isfinite(self.interval)):
            raise ValueError(f"interval must be a positive number of seconds, got {self.interval!r}")
        if self.start_at is not None:
            require_aware(self.start_at, "start_at")
        return self

    def anchored(self, now: dt.datetime) -> "IntervalSchedule":
        if self.start_at is not None:
            return self
        return attrs.evolve(self, start_at=now + dt.timedelta(seconds=self.interval))

    def next_after(self, after: dt.datetime, zone: dt.tzinfo = UTC) -> dt.datetime | None:
        start = self.start_at if self.start_at is not None else after + dt.timedelta(seconds=self.interval)
        if start > after:
            return start
        elapsed = (after - start) / dt.timedelta(microseconds=1)
        step = round(self.interval * 1_000_000)
        periods = int(elapsed // step) + 1
        return start + dt.timedelta(microseconds=periods * step)

    def to_string(self) -> str:
        start = f" from {self.start_at.isoformat()}" if self.start_at is not None else ""
        return f"every {self.interval:g}s{start}"


@attrs.frozen(kw_only=True)
class CronSchedule:
    """A cron expression, field by field (see `cron` for the exact rules).

    `parse` and the helpers check every field at once; a CronSchedule built directly is
    checked by `validate()`, which the scheduler calls when it receives it. Either way a
    bad field raises CronError naming it.
    """

    minute: str = "*"
    hour: str = "*"
    day_of_month: str = "*"
    month: str = "*"
    day_of_week: str = "*"

    def validate(self) -> "CronSchedule":
        for index, (name, text) in enumerate(zip(cron.FIELD_NAMES, self.fields, strict=True)):
            if not isinstance(text, str):
                raise CronError(name, repr(text), "must be text")
            cron.parse_field(index, text)
        cron.parse(self.fields)  # cross-field checks (a day that never occurs)
        return self

    @property
    def fields(self) -> tuple[str, str, str, str, str]:
        return (self.minute, self.hour, self.day_of_month, self.month, self.day_of_week)

    @classmethod
    def every_minutes(cls, n: int) -> "CronSchedule":
        """At minutes 0, n, 2n, ... of every hour (the step restarts each hour, as in cron;
        use IntervalSchedule for an exact period that does not divide 60)."""
        _check_step("minute", n, 59)
        return cls(minute=f"*/{n}").validate()

    @classmethod
    def every_hours(cls, n: int) -> "CronSchedule":
        _check_step("hour", n, 23)
        return cls(minute="0", hour=f"*/{n}").validate()

    @classmethod
    def daily_at(cls, hour: int, minute: int = 0) -> "CronSchedule":
        return cls(minute=str(minute), hour=str(hour)).validate()

    @classmethod
    def weekly_on(cls, day_of_week: int, hour: int = 0, minute: int = 0) -> "CronSchedule":
        """`day_of_week` 0-6 with Sunday = 0 (7 is accepted as Sunday too)."""
        return cls(minute=str(minute), hour=str(hour), day_of_week=str(day_of_week)).validate()

    @classmethod
    def parse(cls, expression: str) -> "CronSchedule":
        """From the usual text form ("0 2 * * 1-5") or a macro (@hourly, @daily, ...)."""
        text = _MACROS.get(expression.strip().lower(), expression)
        fields = text.split()
        if len(fields) != 5:
            raise CronError("expression", expression, f"expected 5 fields (minute hour day_of_month month day_of_week), got {len(fields)}")
        return cls(**dict(zip(cron.FIELD_NAMES, fields, strict=True))).validate()

    def to_string(self) -> str:
        return " ".join(self.fields)

    def __str__(self) -> str:
        return self.to_string()

    def next_after(self, after: dt.datetime, zone: dt.tzinfo = UTC) -> dt.datetime | None:
        return cron.next_after(cron.parse(self.fields), require_aware(after, "after"), zone)


_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _check_step(field: str, n: int, largest: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= largest:
        raise CronError(field, str(n), f"step must be a whole number from 1 to {largest}")


@attrs.frozen(kw_only=True)
class OneTimeSchedule:
    """Once, at `execute_at` (at once if that is already past when scheduled)."""

    execute_at: dt.datetime

    def validate(self) -> "OneTimeSchedule":
        require_aware(self.execute_at, "execute_at")
        return self

    def next_after(self, after: dt.datetime, zone: dt.tzinfo = UTC) -> dt.datetime | None:
        return self.execute_at if self.execute_at > after else None

    def to_string(self) -> str:
        return f"once at {self.execute_at.isoformat()}"


Schedule: TypeAlias = IntervalSchedule | CronSchedule | OneTimeSchedule

_TAGS = {IntervalSchedule: "interval", CronSchedule: "cron", OneTimeSchedule: "once"}

# In messages and traces a schedule says what it is: {"kind": "cron", "minute": ...}.
configure_tagged_union(Schedule, converter, tag_generator=_TAGS.__getitem__, tag_name="kind")


def schedule_kind(schedule: Schedule) -> str:
    return _TAGS[type(schedule)]


def parse_schedule(kind: str, fields: dict) -> Schedule:
    """A schedule from its tag and fields (the inverse of the wire form)."""
    return converter.structure({"kind": kind, **fields}, Schedule)  # type: ignore[arg-type]


def first_run(schedule: Schedule, now: dt.datetime, zone: dt.tzinfo) -> dt.datetime | None:
    """When a task with `schedule`, scheduled at `now`, runs first."""
    if isinstance(schedule, OneTimeSchedule):
        return schedule.execute_at
    return schedule.next_after(now, zone)
