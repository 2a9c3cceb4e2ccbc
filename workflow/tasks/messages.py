"""The task scheduler's messages: requests, replies and events (tags `tasks.*`).

Requests mirror the seed's task_scheduler methods (DES-WKF-003, 4.1.1). Those about one
task answer the task as it is afterwards (a ScheduledTask), or raise a TaskError.
"""

import datetime as dt

import attrs

from ...actors import message
from .schedule import Schedule
from .types import ExecutionTrigger, ScheduledTask, TaskExecutionRecord, TaskState, TaskType
from .types import JsonObject


@message("tasks.schedule")
class ScheduleTask:
    """Add a task running kind `kind` with `params` on `schedule` (seed: schedule(...),
    schedule_once(...)). `task_id` is generated unless given; TaskExists if taken,
    UnknownTaskKind if no such kind is registered."""

    name: str
    kind: str
    schedule: Schedule
    params: JsonObject = attrs.field(factory=dict)
    description: str = ""
    priority: int = 0
    tags: tuple[str, ...] = ()
    timeout: float = 0.0  # seconds; 0 = no limit
    max_retries: int = 0
    retry_delay: float = 60.0
    enabled: bool = True
    task_id: str | None = None


@message("tasks.list")
class ListTasks:
    """Every task, or those of one type and/or in one state."""

    type: TaskType | None = None
    state: TaskState | None = None


@message("tasks.task-list")
class TaskList:
    tasks: tuple[ScheduledTask, ...]


@message("tasks.get")
class GetTask:
    task_id: str


@message("tasks.cancel")
class CancelTask:
    """Stop scheduling the task; a run in progress is cancelled."""

    task_id: str


@message("tasks.pause")
class PauseTask:
    """No more runs until resumed (a run in progress finishes)."""

    task_id: str


@message("tasks.resume")
class ResumeTask:
    """Schedule a paused task again from now (missed runs are not made up). Also brings
    back an orphaned task once its kind is registered."""

    task_id: str


@message("tasks.trigger")
class TriggerTask:
    """Run the task now, whatever its schedule (TaskAlreadyRunning if it is running)."""

    task_id: str


@message("tasks.update-schedule")
class UpdateSchedule:
    task_id: str
    schedule: Schedule


@message("tasks.enable")
class EnableTask:
    """Set the task's `enabled` flag (a disabled task keeps its schedule but never runs
    on it; TriggerTask still runs it)."""

    task_id: str
    enabled: bool


@message("tasks.remove")
class RemoveTask:
    """Forget the task and its history (a running task is cancelled first)."""

    task_id: str


@message("tasks.get-history")
class GetExecutionHistory:
    task_id: str
    limit: int = 100


@message("tasks.get-recent")
class GetRecentExecutions:
    limit: int = 100


@message("tasks.history")
class ExecutionHistory:
    """Executions, newest first."""

    records: tuple[TaskExecutionRecord, ...]


@message("tasks.clear-history")
class ClearHistory:
    task_id: str
    keep_last: int = 0


@message("tasks.history-cleared")
class HistoryCleared:
    removed: int


@message("tasks.get-stats")
class GetSchedulerStats:
    pass


# -- the scheduler's own messages to itself ------------------------------------------------


@message("tasks.wake")
class Wake:
    """Its timer's: something is due now."""


@message("tasks.run-finished")
class RunFinished:
    """A run's outcome, from the task that ran it."""

    task_id: str
    execution_id: str
    state: TaskState
    error: str | None
    timed_out: bool
    duration: float


# -- events on the node's bus ----------------------------------------------------------------


@message("tasks.started")
class TaskStarted:
    task_id: str
    execution_id: str
    attempt: int
    trigger: ExecutionTrigger


@message("tasks.executed")
class TaskExecuted:
    """Every finished run, whatever its outcome (the seed's on_task_complete)."""

    record: TaskExecutionRecord


@message("tasks.failed")
class TaskFailed:
    """A run that failed or timed out (the seed's on_task_error)."""

    task_id: str
    error: str
    record: TaskExecutionRecord


@message("tasks.retry-scheduled")
class TaskRetryScheduled:
    task_id: str
    attempt: int
    at: dt.datetime


@message("tasks.orphaned")
class TaskOrphaned:
    """A restored task names a kind nobody registered; it stays listed, as ORPHANED."""

    task_id: str
    kind: str
