"""Schedules written as one line of text, as a config file holds them.

- an interval: `every 90s`, `every 30m`, `every 6h`, `every 1d`, `every 2w` (a number,
  fractions allowed, and a unit: seconds, minutes, hours, days, weeks);
- a cron expression: `0 2 * * *`, `*/15 8-18 * * mon-fri`, or a macro such as `@daily`
  (workflow/tasks/cron.py has the rules; fields are read in the scheduler's time zone).

    parse_schedule_text("every 6h")   -> IntervalSchedule(interval=21600.0)
    parse_schedule_text("0 4 * * 0")  -> CronSchedule(minute="0", hour="4", ..., day_of_week="0")
"""

import re

from .schedule import CronSchedule, IntervalSchedule, Schedule

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_INTERVAL = re.compile(r"every\s+(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)


def parse_schedule_text(text: str) -> Schedule:
    """The schedule `text` describes; ValueError (a CronError for cron) saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a schedule is a cron expression ('0 2 * * *') or an interval ('every 6h')")
    stripped = text.strip()
    interval = _INTERVAL.fullmatch(stripped)
    if interval is not None:
        return IntervalSchedule(interval=float(interval[1]) * _UNITS[interval[2].lower()]).validate()
    if stripped.lower().startswith("every"):
        raise ValueError(f"{text!r}: an interval looks like 'every 30m', 'every 6h' or 'every 1d' (units s, m, h, d, w)")
    return CronSchedule.parse(stripped)


def same_schedule(a: Schedule, b: Schedule) -> bool:
    """Whether two schedules run at the same times, ignoring where an interval's grid was
    anchored (the scheduler anchors it when the task is scheduled)."""
    if isinstance(a, IntervalSchedule) and isinstance(b, IntervalSchedule):
        return a.interval == b.interval
    return a == b
