"""Cron expressions: parsing the five fields, and the next matching instant in a time zone.

Rules (standard Unix cron; each is pinned by tests/workflow/test_cron.py):

- Five fields: minute 0-59, hour 0-23, day_of_month 1-31, month 1-12 or jan-dec,
  day_of_week 0-7 or sun-sat, where 0 and 7 are both Sunday. Names are case-insensitive.
- Each field is a comma list of items; an item is `*`, a value, or a range `a-b`
  (a <= b), optionally with a step: `*/15`, `8-18/2`, `5/10` (= 5-max/10).
- Day of month and day of week: when BOTH fields are restricted (anything but a bare
  `*`), a day matches if EITHER matches (`0 0 1,15 * mon` runs on the 1st, the 15th and
  every Monday). When one is `*`, the other alone decides. Unlike Vixie cron, `*/2` is a
  restriction like any other (Vixie treats every field starting with `*` as unrestricted).
- Time zone: fields are wall-clock time in the given zone. A time skipped by a DST
  spring-forward runs at the end of the gap (02:30 -> 03:00 on the night clocks jump from
  02:00 to 03:00), once; a time repeated by a fall-back runs at its first occurrence
  only. So a daily 02:30 job runs exactly once every day.

Evaluation is croniter's, fed a canonical form of the fields we parsed (sorted numbers,
or `*` only where the text was `*`), so croniter's own parsing quirks never decide what
an expression means, and its day-of-month/day-of-week union applies exactly when both
fields are restricted. croniter works on naive wall time; the zone is handled here.
"""

import calendar
import datetime as dt
import functools
from collections.abc import Sequence

import attrs
from croniter import croniter

UTC = dt.timezone.utc

FIELD_NAMES = ("minute", "hour", "day_of_month", "month", "day_of_week")

_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_DAYS = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


@attrs.frozen
class _FieldSpec:
    name: str
    low: int
    high: int
    names: dict[str, int] = attrs.field(factory=dict)


_SPECS = (
    _FieldSpec("minute", 0, 59),
    _FieldSpec("hour", 0, 23),
    _FieldSpec("day_of_month", 1, 31),
    _FieldSpec("month", 1, 12, _MONTHS),
    _FieldSpec("day_of_week", 0, 7, _DAYS),
)


class CronError(ValueError):
    """An invalid cron expression; `field` names the offending field."""

    def __init__(self, field: str, text: str, reason: str) -> None:
        super().__init__(f"{field}: {reason} (in {text!r})")
        self.field = field
        self.text = text
        self.reason = reason


def _value(spec: _FieldSpec, text: str, whole: str) -> int:
    token = text.strip().lower()
    if token in spec.names:
        return spec.names[token]
    if not token.isdigit():
        raise CronError(spec.name, whole, f"{text!r} is not a number{' or a name' if spec.names else ''}")
    number = int(token)
    if not spec.low <= number <= spec.high:
        raise CronError(spec.name, whole, f"{number} is out of range {spec.low}-{spec.high}")
    return number


def _item(spec: _FieldSpec, item: str, whole: str) -> set[int]:
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(spec.name, whole, f"step {step_text!r} must be a positive number")
        step = int(step_text)
    # An open end in the day-of-week field stops at Saturday (6); 7 is only an alias of 0.
    top = 6 if spec.name == "day_of_week" else spec.high
    if base == "*":
        low, high = spec.low, top
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _value(spec, first, whole), _value(spec, last, whole)
        if low > high:
            raise CronError(spec.name, whole, f"range {base!r} runs backwards")
    else:
        low = _value(spec, base, whole)
        high = top if slash else low
    values = set(range(low, high + 1, step))
    if spec.name == "day_of_week":
        values = {0 if v == 7 else v for v in values}
    return values


def parse_field(index: int, text: str) -> frozenset[int]:
    """The values field `index` (0 = minute) matches; CronError naming the field if bad."""
    spec = _SPECS[index]
    if not text or text.strip() != text or any(c.isspace() for c in text):
        raise CronError(spec.name, text, "a field must be one word without spaces")
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(spec.name, text, "empty item in the list")
        values |= _item(spec, item, text)
    return frozenset(values)


@attrs.frozen
class ParsedCron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def canonical(self) -> str:
        """The expression croniter evaluates: numbers only, `*` only where the text was."""

        def listed(values: frozenset[int], restricted: bool = True) -> str:
            return ",".join(str(v) for v in sorted(values)) if restricted else "*"

        return " ".join(
            (
                listed(self.minutes),
                listed(self.hours),
                listed(self.days, self.days_restricted),
                listed(self.months),
                listed(self.weekdays, self.weekdays_restricted),
            )
        )

    def day_matches(self, day: dt.date) -> bool:
        """The day-of-month / day-of-week rule (the OR when both are restricted)."""
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays


_LONGEST_MONTH = {month: 29 if month == 2 else calendar.monthrange(2001, month)[1] for month in range(1, 13)}


@functools.lru_cache(maxsize=1024)
def parse(fields: Sequence[str]) -> ParsedCron:
    if len(fields) != 5:
        raise CronError("expression", " ".join(fields), f"expected 5 fields, got {len(fields)}")
    values = [parse_field(index, text) for index, text in enumerate(fields)]
    parsed = ParsedCron(*values, days_restricted=fields[2] != "*", weekdays_restricted=fields[4] != "*")
    if parsed.days_restricted and not parsed.weekdays_restricted:
        if not any(day <= _LONGEST_MONTH[month] for month in parsed.months for day in parsed.days):
            raise CronError("day_of_month", fields[2], "no such day in the chosen month(s)")
    return parsed


def _resolve(naive: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The instant wall time `naive` names in `zone`: its first occurrence if repeated,
    the end of the gap if skipped."""
    first = naive.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return first.astimezone(UTC)
    # Skipped by a spring-forward: find the transition, the first instant whose wall time
    # is later than `naive` (between the two readings of `naive`, a gap of <= a day).
    low = int(naive.replace(tzinfo=zone, fold=1).timestamp())
    high = int(first.timestamp())
    if low > high:
        low, high = high, low
    while low < high:
        middle = (low + high) // 2
        if dt.datetime.fromtimestamp(middle, zone).replace(tzinfo=None) > naive:
            high = middle
        else:
            low = middle + 1
    return dt.datetime.fromtimestamp(low, UTC)


def next_after(parsed: ParsedCron, after: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The first instant strictly after `after` (aware) at which `parsed` fires in `zone`."""
    wall = after.astimezone(zone).replace(tzinfo=None)
    iterator = croniter(parsed.canonical(), wall, day_or=True)
    while True:
        candidate = iterator.get_next(dt.datetime)
        instant = _resolve(candidate, zone)
        # A wall time repeated by a fall-back already fired at its first occurrence; when
        # `after` lies in the second pass, that occurrence is in the past: skip it.
        if instant > after:
            return instant
