"""What a task becomes after a run, and which due task goes first: pure functions.

After a run (seed 4.1.2 "record result, calculate next run"):
- success: a one-time task is COMPLETED; a recurring one waits for its next time.
- failure with retries left (retry_attempt < max_retries): the same task runs again
  `retry_delay` seconds later, as attempt n + 1.
- failure with no retries left: a one-time task is FAILED; a recurring one goes on at
  its next scheduled time - a failure never stops a recurring task.
- cancelled: the task stays CANCELLED; a run interrupted because the scheduler stopped
  runs again as soon as it is back.
The next scheduled time is always the first one after the run ended: runs missed while
the task ran (or the node was down) are not made up one by one.
"""

import datetime as dt

import attrs

from .schedule import first_run
from .types import ScheduledTask, TaskExecutionRecord, TaskState

_FINISHED = (TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED)


def after_run(
    task: ScheduledTask, record: TaskExecutionRecord, resume_paused: bool, now: dt.datetime, zone: dt.tzinfo
) -> tuple[ScheduledTask, dt.datetime | None]:
    """The task once `record` is done, and the retry time if a retry was scheduled."""
    succeeded = record.state is TaskState.COMPLETED
    failed = record.state is TaskState.FAILED
    task = attrs.evolve(
        task,
        last_execution=record,
        updated_at=now,
        execution_count=task.execution_count + 1,
        success_count=task.success_count + succeeded,
        failure_count=task.failure_count + failed,
    )
    if task.state is TaskState.CANCELLED:
        return attrs.evolve(task, next_run_at=None), None
    resting = TaskState.PAUSED if resume_paused else TaskState.PENDING
    if record.state is TaskState.CANCELLED:  # interrupted by a stop, not by the user: again
        return attrs.evolve(task, state=resting, next_run_at=record.started_at), None
    if failed and task.retry_attempt < task.max_retries:
        retry_at = now + dt.timedelta(seconds=task.retry_delay)
        return attrs.evolve(task, state=resting, next_run_at=retry_at, retry_attempt=task.retry_attempt + 1), retry_at
    task = attrs.evolve(task, retry_attempt=0)
    if not task.recurring:
        return attrs.evolve(task, state=TaskState.COMPLETED if succeeded else TaskState.FAILED, next_run_at=None), None
    return attrs.evolve(task, state=resting, next_run_at=task.schedule.next_after(now, zone)), None


def rescheduled(task: ScheduledTask, now: dt.datetime, zone: dt.tzinfo) -> ScheduledTask:
    """The task scheduled afresh from `now` (resume, new schedule, restored orphan)."""
    return attrs.evolve(task, next_run_at=first_run(task.schedule, now, zone), retry_attempt=0, updated_at=now)


def due_order(task: ScheduledTask, due_at: dt.datetime) -> tuple:
    """Sort key: highest priority first, then the longest overdue, then the oldest task."""
    created = task.created_at or dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return (-task.priority, due_at, created, task.id)


def restored(task: ScheduledTask, kind_known: bool, now: dt.datetime, zone: dt.tzinfo) -> ScheduledTask:
    """A task as loaded from the database, ready to go on.

    RUNNING means the node stopped mid-run without recording it: it runs again at once.
    An unknown kind makes an unfinished task ORPHANED (it never runs); a known kind
    brings an orphan back to PENDING.
    """
    if task.state is TaskState.RUNNING:
        task = attrs.evolve(task, state=TaskState.PENDING, next_run_at=task.last_run_at or now)
    if not kind_known and task.state not in _FINISHED:
        return attrs.evolve(task, state=TaskState.ORPHANED, updated_at=now) if task.state is not TaskState.ORPHANED else task
    if kind_known and task.state is TaskState.ORPHANED:
        next_run = task.next_run_at or first_run(task.schedule, now, zone)
        return attrs.evolve(task, state=TaskState.PENDING, next_run_at=next_run, updated_at=now)
    return task
