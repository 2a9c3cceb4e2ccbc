"""The scheduler's statistics (the seed's scheduler_stats), counted since it started."""

import datetime as dt
from collections.abc import Iterable

import attrs

from .types import SchedulerStats, TaskExecutionRecord, TaskState

_SCHEDULED = (TaskState.PENDING, TaskState.RUNNING, TaskState.PAUSED)


@attrs.define
class ExecutionCounters:
    executions: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    time_total: float = 0.0
    time_max: float = 0.0
    last_cycle_at: dt.datetime | None = None  # when due tasks were last started

    def count(self, record: TaskExecutionRecord) -> None:
        self.executions += 1
        self.succeeded += record.state is TaskState.COMPLETED
        self.failed += record.state is TaskState.FAILED
        self.cancelled += record.state is TaskState.CANCELLED
        self.time_total += record.duration
        self.time_max = max(self.time_max, record.duration)

    def snapshot(self, states: Iterable[TaskState], running: int, uptime: float) -> SchedulerStats:
        states = list(states)
        return SchedulerStats(
            scheduled_tasks=sum(state in _SCHEDULED for state in states),
            running_tasks=running,
            pending_tasks=states.count(TaskState.PENDING),
            total_executions=self.executions,
            successful_executions=self.succeeded,
            failed_executions=self.failed,
            cancelled_executions=self.cancelled,
            avg_execution_time=round(self.time_total / self.executions, 6) if self.executions else 0.0,
            max_execution_time=round(self.time_max, 6),
            uptime=round(uptime, 6),
            last_cycle_at=self.last_cycle_at,
        )
