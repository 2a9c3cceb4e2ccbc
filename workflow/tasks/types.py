"""Scheduled tasks: types, states, the task record, executions, statistics, configuration and
errors (seed DES-WKF-003 / DES-WKF-004). Durations are seconds; times are aware datetimes.
"""

import datetime as dt
import enum
import json
import math
import zoneinfo
from collections.abc import Iterable
from typing import NewType

import attrs

from ...actors import ReplyError, message
from .schedule import OneTimeSchedule, Schedule


class TaskType(enum.Enum):
    CLEANUP = "cleanup"  # remove old studies by retention policy
    ARCHIVE = "archive"  # move studies to secondary storage
    MIGRATION = "migration"  # move instances between storage tiers (HSM)
    VERIFICATION = "verification"  # integrity and consistency checks
    CUSTOM = "custom"


class TaskState(enum.Enum):
    PENDING = "pending"  # waiting for its next run
    RUNNING = "running"
    COMPLETED = "completed"  # a one-time task that succeeded
    FAILED = "failed"  # a one-time task whose last attempt failed
    CANCELLED = "cancelled"
    PAUSED = "paused"
    ORPHANED = "orphaned"  # restored from the database, but its kind is not registered


class ExecutionTrigger(enum.Enum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"  # TriggerTask
    RETRY = "retry"  # after a failure, retry_delay later


@message("tasks.execution")
class TaskExecutionRecord:
    """One run of a task (the seed's task_execution_record)."""

    execution_id: str
    task_id: str
    attempt: int  # 0 for the first try, n for the n-th retry
    trigger: ExecutionTrigger
    started_at: dt.datetime
    finished_at: dt.datetime
    state: TaskState  # COMPLETED, FAILED or CANCELLED
    error_message: str | None = None
    duration: float = 0.0  # seconds
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        return self.state is TaskState.COMPLETED


# A task's parameters: a JSON object. A NewType of dict, so cattrs passes the values through
# as they are, and tools that build values from type hints (hypothesis) can make one.
JsonObject = NewType("JsonObject", dict)


def request_problems(params: object, timeout: float, max_retries: int, retry_delay: float, priority: int = 0) -> str | None:
    """What is wrong with a task's settings, if anything (the scheduler answers InvalidTask)."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        return f"priority must be a whole number, got {priority!r}"
    for name, value in (("timeout", timeout), ("max_retries", max_retries), ("retry_delay", retry_delay)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
            return f"{name} must be a finite number >= 0, got {value!r}"
    if not isinstance(max_retries, int):
        return f"max_retries must be a whole number, got {max_retries!r}"
    if not isinstance(params, dict):
        return "params must be a JSON object (a dict)"
    try:
        text = json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as error:
        return f"params must be JSON: {error}"
    if json.loads(text) != params:
        return "params must survive a JSON round trip (no tuples, only string keys)"
    return None


def _tags(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(value)))


@message("tasks.task")
class ScheduledTask:
    """A task as the scheduler holds it (the seed's scheduled_task).

    A task runs a registered *kind* (task_kinds.py) with its JSON `params`; that is
    what makes tasks storable and restorable, where a bare callable would not be.
    """

    id: str
    name: str
    kind: str
    schedule: Schedule
    params: JsonObject = attrs.field(factory=dict)
    description: str = ""
    type: TaskType = TaskType.CUSTOM
    state: TaskState = TaskState.PENDING
    enabled: bool = True
    priority: int = 0  # higher runs first
    tags: tuple[str, ...] = attrs.field(default=(), converter=_tags)
    timeout: float = 0.0  # 0 = no limit
    max_retries: int = 0
    retry_delay: float = 60.0
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    next_run_at: dt.datetime | None = None
    last_run_at: dt.datetime | None = None
    last_execution: TaskExecutionRecord | None = None
    execution_count: int = 0
    success_count: int = 0
    failure_count: int = 0
    retry_attempt: int = 0  # retries already made after the last failure

    @property
    def recurring(self) -> bool:
        return not isinstance(self.schedule, OneTimeSchedule)


@message("tasks.stats")
class SchedulerStats:
    """The seed's scheduler_stats (times in seconds), since this scheduler started."""

    scheduled_tasks: int = 0  # pending, running or paused
    running_tasks: int = 0
    pending_tasks: int = 0
    total_executions: int = 0
    successful_executions: int = 0
    failed_executions: int = 0
    cancelled_executions: int = 0
    avg_execution_time: float = 0.0
    max_execution_time: float = 0.0
    uptime: float = 0.0
    last_cycle_at: dt.datetime | None = None  # when due tasks were last started


def time_zone(name: str) -> dt.tzinfo:
    """The zone called `name`. UTC needs no time zone database (a machine may have none)."""
    if name == "UTC":
        return dt.timezone.utc
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"{name!r} is not a known IANA time zone (is the tz database installed?)") from None


def _zone(_: object, attribute: attrs.Attribute, value: str) -> None:
    try:
        time_zone(value)
    except ValueError as error:
        raise ValueError(f"{attribute.name}: {error}") from None


@attrs.frozen(kw_only=True)
class SchedulerConfig:
    """The seed's task_scheduler_config, minus what an actor does not need.

    check_interval is gone on purpose: the scheduler sleeps until the next due time.
    persistence_path is the scheduler's `database` argument.
    """

    max_concurrent_tasks: int = 4
    timezone: str = attrs.field(default="UTC", validator=_zone)  # cron fields are wall time here
    restore_on_startup: bool = True
    history_limit: int = 100  # executions kept per task (memory and database)

    def __attrs_post_init__(self) -> None:
        if self.max_concurrent_tasks < 1:
            raise ValueError("max_concurrent_tasks must be >= 1")
        if self.history_limit < 1:
            raise ValueError("history_limit must be >= 1")

    @property
    def zone(self) -> dt.tzinfo:
        return time_zone(self.timezone)


class TaskError(ReplyError):
    """A scheduler request refused."""


class TaskNotFound(TaskError):
    pass


class TaskExists(TaskError):
    pass


class UnknownTaskKind(TaskError):
    pass


class InvalidTaskState(TaskError):
    """The request makes no sense in the task's state (resume a cancelled task...)."""


class TaskAlreadyRunning(TaskError):
    pass


class InvalidTask(TaskError):
    """Settings the scheduler cannot take: a negative timeout, parameters that are not JSON."""


class InvalidSchedule(TaskError):
    """A schedule the scheduler cannot take: a naive datetime, a bad time zone."""
