"""The task scheduler actor (seed DES-WKF-003).

- No polling: one timer task in the actor's nursery sleeps until the earliest due time
  and then sends the actor a Wake. Every change that can move that time (a new task, a
  trigger, a resume, a finished run freeing a slot) re-arms it, so `TriggerTask` runs a
  task at once and a task due in three days costs nothing until then.
- Due tasks start highest priority first, at most `max_concurrent_tasks` at a time; the
  rest start as slots free up, again by priority.
- Each run is a task in the actor's nursery under its own cancel scope: CancelTask
  cancels it for real, and a timeout cancels it (task_runner.py). The run reports back
  with a RunFinished message, so every change of a task happens while handling one
  message, one at a time.
- With a database, every change is written through before the request is answered, and
  tasks, schedules and history are restored at start (persistence.py). The scheduler is
  the one writer of that file, through its own database thread, one call per change.
"""

import datetime as dt
import threading
import uuid
from collections import deque
from functools import partial

import attrs
import trio

from ...actors import Actor, DatabaseThread
from ..clock import WallClock
from .persistence import clear_history, delete_task, load_all, open_workflow_db, save_execution, save_tasks
from .schedule import IntervalSchedule, Schedule, first_run
from .kinds import TaskContext, TaskKindRegistry, default_task_kinds, log_for
from .messages import (
    CancelTask,
    ClearHistory,
    EnableTask,
    ExecutionHistory,
    GetExecutionHistory,
    GetRecentExecutions,
    GetSchedulerStats,
    GetTask,
    HistoryCleared,
    ListTasks,
    PauseTask,
    RemoveTask,
    ResumeTask,
    RunFinished,
    ScheduleTask,
    TaskExecuted,
    TaskFailed,
    TaskList,
    TaskOrphaned,
    TaskRetryScheduled,
    TaskStarted,
    TriggerTask,
    UpdateSchedule,
    Wake,
)
from .runner import RunOutcome, ThreadRunner, run_in_worker_thread, run_kind
from .stats import ExecutionCounters
from .transitions import after_run, due_order, rescheduled, restored
from .types import (
    ExecutionTrigger,
    InvalidSchedule,
    InvalidTask,
    InvalidTaskState,
    ScheduledTask,
    SchedulerConfig,
    SchedulerStats,
    TaskAlreadyRunning,
    TaskExecutionRecord,
    TaskExists,
    TaskNotFound,
    TaskState,
    UnknownTaskKind,
    request_problems,
)


@attrs.define(kw_only=True)
class _Run:
    execution_id: str
    attempt: int
    trigger: ExecutionTrigger
    started_at: dt.datetime
    started_mono: float
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    resume_paused: bool = False  # paused while running: rest as PAUSED afterwards
    cancel_reason: str = "cancelled"


class TaskScheduler(Actor):
    # Driven by the wall clock and by what its tasks do to the world (and it opens a real
    # database): a replay plays it from the recording rather than re-running tasks.
    replayable = False
    accepts = (
        ScheduleTask,
        ListTasks,
        GetTask,
        CancelTask,
        PauseTask,
        ResumeTask,
        TriggerTask,
        UpdateSchedule,
        EnableTask,
        RemoveTask,
        GetExecutionHistory,
        GetRecentExecutions,
        ClearHistory,
        GetSchedulerStats,
        Wake,
        RunFinished,
    )

    def __init__(
        self,
        database: str | None = None,
        config: SchedulerConfig = SchedulerConfig(),
        kinds: TaskKindRegistry | None = None,
        clock_start: dt.datetime | None = None,
        run_in_thread: ThreadRunner | None = None,
    ) -> None:
        """`database`: the SQLite file to keep tasks in (None: memory only). `kinds`:
        where task kinds are looked up (default_task_kinds). `clock_start` pins the wall
        clock to Trio's clock (tests, replays). `run_in_thread` runs blocking kinds."""
        self.database = database
        self.config = config
        self.kinds = kinds if kinds is not None else default_task_kinds
        self.clock_start = clock_start
        self.run_in_thread = run_in_thread or run_in_worker_thread

    # -- life --------------------------------------------------------------------------------

    async def on_start(self) -> None:
        self._clock = WallClock(self.clock_start)
        self._clock.now()
        self._zone = self.config.zone
        self._started_mono = trio.current_time()
        self._tasks: dict[str, ScheduledTask] = {}
        self._history: dict[str, deque[TaskExecutionRecord]] = {}
        self._recent: deque[TaskExecutionRecord] = deque(maxlen=self.config.history_limit)
        self._running: dict[str, _Run] = {}
        self._triggered: dict[str, dt.datetime] = {}
        self._counters = ExecutionCounters()
        self._rearm = trio.Event()
        self._db: DatabaseThread | None = None
        if self.database is not None:
            db = DatabaseThread(partial(open_workflow_db, self.database), name="scheduler-db")
            await db.start()
            self._db = db
            if self.config.restore_on_startup:
                await self._restore()
        self.ctx.nursery.start_soon(self._timer)

    async def on_stop(self) -> None:
        # Runs still going are interrupted: say so, and have them run again when we are back.
        try:
            now = self._clock.now()
            for task_id, run in list(self._running.items()):
                outcome = RunOutcome(TaskState.CANCELLED, "interrupted: the scheduler stopped while it ran")
                await self._finish(task_id, run, outcome, trio.current_time() - run.started_mono, now, publish=False)
        except Exception as error:  # a restart restores what it can; do not mask why we stop
            self.ctx.log.error("could not record interrupted runs", error=repr(error))
        finally:
            if self._db is not None:
                db, self._db = self._db, None
                await db.aclose()

    async def _persist(self, fn, *args) -> object:
        if self._db is None:
            return None
        return await self._db.run(fn, *args)

    async def _restore(self) -> None:
        tasks, records = await self._persist(load_all, self.config.history_limit)  # type: ignore[misc]
        now = self._clock.now()
        changed = []
        for stored in tasks:
            task = restored(stored, stored.kind in self.kinds, now, self._zone)
            if stored.state is TaskState.RUNNING:
                self.ctx.log.warning("task was interrupted by a stop; it runs again", task_id=task.id, task=task.name)
            if task.state is TaskState.ORPHANED:
                self.ctx.log.error("restored task names an unregistered kind", task_id=task.id, task=task.name, kind=task.kind)
                self.ctx.publish(TaskOrphaned(task_id=task.id, kind=task.kind))
            if task != stored:
                changed.append(task)
            self._tasks[task.id] = task
            self._history[task.id] = deque(maxlen=self.config.history_limit)
        for record in records:
            if record.task_id in self._history:
                self._history[record.task_id].append(record)
                self._recent.append(record)
        if changed:
            await self._persist(save_tasks, changed)
        orphaned = sum(t.state is TaskState.ORPHANED for t in self._tasks.values())
        self.ctx.log.info("tasks restored", tasks=len(tasks), orphaned=orphaned)

    # -- requests ----------------------------------------------------------------------------

    async def handle(self, message):
        try:
            return await self._handle(message)
        finally:
            self._rearm.set()

    async def _handle(self, message):
        now = self._clock.now()
        match message:
            case ScheduleTask():
                return await self._schedule(message, now)
            case ListTasks(type=kind, state=state):
                tasks = [t for t in self._tasks.values() if (kind is None or t.type is kind) and (state is None or t.state is state)]
                return TaskList(tasks=tuple(tasks))
            case GetTask(task_id=task_id):
                return self._task(task_id)
            case CancelTask(task_id=task_id):
                return await self._cancel(self._task(task_id), now)
            case PauseTask(task_id=task_id):
                return await self._pause(self._task(task_id), now)
            case ResumeTask(task_id=task_id):
                return await self._resume(self._task(task_id), now)
            case TriggerTask(task_id=task_id):
                return await self._trigger(self._task(task_id), now)
            case UpdateSchedule(task_id=task_id, schedule=schedule):
                return await self._update_schedule(self._task(task_id), schedule, now)
            case EnableTask(task_id=task_id, enabled=enabled):
                task = attrs.evolve(self._task(task_id), enabled=enabled, updated_at=now)
                if enabled and task.state is TaskState.PENDING and task.next_run_at is not None and task.next_run_at <= now:
                    task = rescheduled(task, now, self._zone)  # runs missed while disabled are not made up
                await self._save(task)
                await self._start_due()
                return self._tasks[task_id]
            case RemoveTask(task_id=task_id):
                await self._remove(self._task(task_id))
            case GetExecutionHistory(task_id=task_id, limit=limit):
                self._task(task_id)
                return ExecutionHistory(records=tuple(reversed(self._history[task_id]))[:limit])
            case GetRecentExecutions(limit=limit):
                return ExecutionHistory(records=tuple(reversed(self._recent))[:limit])
            case ClearHistory(task_id=task_id, keep_last=keep_last):
                return await self._clear_history(self._task(task_id), keep_last)
            case GetSchedulerStats():
                return self._stats()
            case Wake():
                await self._start_due()
            case RunFinished():
                await self._run_finished(message, now)

    def _task(self, task_id: str) -> ScheduledTask:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(f"no task {task_id!r}") from None

    async def _save(self, *tasks: ScheduledTask) -> None:
        for task in tasks:
            self._tasks[task.id] = task
        await self._persist(save_tasks, tasks)

    async def _schedule(self, request: ScheduleTask, now: dt.datetime) -> ScheduledTask:
        kind = self.kinds.get(request.kind)
        if kind is None:
            raise UnknownTaskKind(f"no task kind {request.kind!r} is registered (known: {', '.join(self.kinds.names()) or 'none'})")
        problem = request_problems(request.params, request.timeout, request.max_retries, request.retry_delay, request.priority)
        if problem is not None:
            raise InvalidTask(problem)
        task_id = request.task_id or uuid.uuid4().hex
        if task_id in self._tasks:
            raise TaskExists(f"a task {task_id!r} already exists")
        schedule = self._checked(request.schedule, now)
        task = ScheduledTask(
            id=task_id,
            name=request.name,
            description=request.description,
            type=kind.type,
            kind=request.kind,
            params=request.params,
            schedule=schedule,
            enabled=request.enabled,
            priority=request.priority,
            tags=request.tags,
            timeout=request.timeout,
            max_retries=request.max_retries,
            retry_delay=request.retry_delay,
            created_at=now,
            updated_at=now,
            next_run_at=first_run(schedule, now, self._zone),
        )
        self._history[task_id] = deque(maxlen=self.config.history_limit)
        await self._save(task)
        self.ctx.log.info("task scheduled", task_id=task_id, task=task.name, kind=task.kind, next_run_at=str(task.next_run_at))
        await self._start_due()
        return self._tasks[task_id]

    def _checked(self, schedule: Schedule, now: dt.datetime) -> Schedule:
        """The schedule as the task will keep it (an interval anchored at `now`)."""
        try:
            schedule.validate()
        except ValueError as error:
            raise InvalidSchedule(str(error)) from None
        return schedule.anchored(now) if isinstance(schedule, IntervalSchedule) else schedule

    async def _cancel(self, task: ScheduledTask, now: dt.datetime) -> ScheduledTask:
        if task.state is TaskState.CANCELLED:
            return task
        run = self._running.get(task.id)
        if run is not None:
            run.cancel_reason = "cancelled by request"
            run.scope.cancel()
        self._triggered.pop(task.id, None)
        await self._save(attrs.evolve(task, state=TaskState.CANCELLED, next_run_at=None, updated_at=now))
        return self._tasks[task.id]

    async def _pause(self, task: ScheduledTask, now: dt.datetime) -> ScheduledTask:
        self._triggered.pop(task.id, None)
        if task.state is TaskState.RUNNING:
            self._running[task.id].resume_paused = True
            return task
        if task.state is TaskState.PAUSED:
            return task
        if task.state is not TaskState.PENDING:
            raise InvalidTaskState(f"task {task.id!r} is {task.state.value}: only a pending or running task can be paused")
        await self._save(attrs.evolve(task, state=TaskState.PAUSED, updated_at=now))
        return self._tasks[task.id]

    async def _resume(self, task: ScheduledTask, now: dt.datetime) -> ScheduledTask:
        if task.state is TaskState.RUNNING:
            self._running[task.id].resume_paused = False
            return task
        if task.state is TaskState.PENDING:
            return task
        if task.state is TaskState.ORPHANED and task.kind not in self.kinds:
            raise UnknownTaskKind(f"task {task.id!r} runs kind {task.kind!r}, which is still not registered")
        if task.state not in (TaskState.PAUSED, TaskState.ORPHANED):
            raise InvalidTaskState(f"task {task.id!r} is {task.state.value}: only a paused or orphaned task can be resumed")
        await self._save(attrs.evolve(rescheduled(task, now, self._zone), state=TaskState.PENDING))
        await self._start_due()
        return self._tasks[task.id]

    async def _trigger(self, task: ScheduledTask, now: dt.datetime) -> ScheduledTask:
        if task.state is TaskState.CANCELLED:
            raise InvalidTaskState(f"task {task.id!r} is cancelled")
        if task.kind not in self.kinds:
            raise UnknownTaskKind(f"task {task.id!r} runs kind {task.kind!r}, which is not registered")
        if task.id in self._running:
            raise TaskAlreadyRunning(f"task {task.id!r} is running")
        self._triggered.setdefault(task.id, now)
        await self._start_due()
        return self._tasks[task.id]

    async def _update_schedule(self, task: ScheduledTask, schedule, now: dt.datetime) -> ScheduledTask:
        if task.state is TaskState.CANCELLED:
            raise InvalidTaskState(f"task {task.id!r} is cancelled")
        task = rescheduled(attrs.evolve(task, schedule=self._checked(schedule, now)), now, self._zone)
        if task.state in (TaskState.COMPLETED, TaskState.FAILED):
            task = attrs.evolve(task, state=TaskState.PENDING)
        await self._save(task)
        await self._start_due()
        return self._tasks[task.id]

    async def _remove(self, task: ScheduledTask) -> None:
        run = self._running.get(task.id)
        if run is not None:
            run.cancel_reason = "cancelled: the task was removed"
            run.scope.cancel()
        self._triggered.pop(task.id, None)
        del self._tasks[task.id]
        removed = {r.execution_id for r in self._history.pop(task.id, ())}
        self._recent = deque((r for r in self._recent if r.execution_id not in removed), maxlen=self._recent.maxlen)
        await self._persist(delete_task, task.id)

    async def _clear_history(self, task: ScheduledTask, keep_last: int) -> HistoryCleared:
        history = self._history[task.id]
        keep = list(history)[-keep_last:] if keep_last > 0 else []
        removed = {r.execution_id for r in history} - {r.execution_id for r in keep}
        self._history[task.id] = deque(keep, maxlen=self.config.history_limit)
        self._recent = deque((r for r in self._recent if r.execution_id not in removed), maxlen=self._recent.maxlen)
        stored = await self._persist(clear_history, task.id, keep_last)
        return HistoryCleared(removed=max(len(removed), stored or 0))  # type: ignore[arg-type]

    # -- running -----------------------------------------------------------------------------

    def _due(self, now: dt.datetime) -> list[tuple[ScheduledTask, dt.datetime]]:
        due = []
        for task in self._tasks.values():
            if task.id in self._running:
                continue
            if task.id in self._triggered:
                due.append((task, self._triggered[task.id]))
            elif task.state is TaskState.PENDING and task.enabled and task.next_run_at is not None and task.next_run_at <= now:
                due.append((task, task.next_run_at))
        return sorted(due, key=lambda item: due_order(*item))

    async def _start_due(self) -> None:
        now = self._clock.now()
        free = self.config.max_concurrent_tasks - len(self._running)
        starting = self._due(now)[: max(free, 0)]
        if not starting:
            return
        started = []
        for task, _ in starting:
            manual = self._triggered.pop(task.id, None) is not None
            trigger = ExecutionTrigger.MANUAL if manual else ExecutionTrigger.RETRY if task.retry_attempt else ExecutionTrigger.SCHEDULED
            run = _Run(
                execution_id=uuid.uuid4().hex,
                attempt=task.retry_attempt,
                trigger=trigger,
                started_at=now,
                started_mono=trio.current_time(),
                resume_paused=task.state is TaskState.PAUSED,
            )
            self._running[task.id] = run
            started.append((attrs.evolve(task, state=TaskState.RUNNING, last_run_at=now, updated_at=now), run))
        self._counters.last_cycle_at = now
        await self._save(*(task for task, _ in started))
        for task, run in started:
            self.ctx.log.info("task started", task_id=task.id, task=task.name, attempt=run.attempt, trigger=run.trigger.value)
            self.ctx.publish(TaskStarted(task_id=task.id, execution_id=run.execution_id, attempt=run.attempt, trigger=run.trigger))
            self.ctx.nursery.start_soon(self._run, task, run)

    async def _run(self, task: ScheduledTask, run: _Run) -> None:
        kind = self.kinds.get(task.kind)
        outcome = RunOutcome(TaskState.FAILED, f"task kind {task.kind!r} is not registered")
        ctx = TaskContext(
            task_id=task.id,
            task_name=task.name,
            kind=task.kind,
            attempt=run.attempt,
            trigger=run.trigger,
            system=self.ctx.system,
            log=log_for(task.id, task.name),
            cancelled=threading.Event(),
        )
        with run.scope:
            if kind is not None:
                outcome = await run_kind(kind, task.params, ctx, task.timeout, self.run_in_thread)
        if run.scope.cancel_called:
            ctx.cancelled.set()
            outcome = RunOutcome(TaskState.CANCELLED, run.cancel_reason)
        finished = RunFinished(
            task_id=task.id,
            execution_id=run.execution_id,
            state=outcome.state,
            error=outcome.error,
            timed_out=outcome.timed_out,
            duration=round(trio.current_time() - run.started_mono, 6),
        )
        await self.ctx.ref.send(finished)

    async def _run_finished(self, message: RunFinished, now: dt.datetime) -> None:
        run = self._running.get(message.task_id)
        if run is None or run.execution_id != message.execution_id:
            return  # a run we already wrote off
        outcome = RunOutcome(message.state, message.error, message.timed_out)
        await self._finish(message.task_id, run, outcome, message.duration, now, publish=True)
        await self._start_due()

    async def _finish(self, task_id: str, run: _Run, outcome: RunOutcome, duration: float, now: dt.datetime, *, publish: bool) -> None:
        del self._running[task_id]
        record = TaskExecutionRecord(
            execution_id=run.execution_id,
            task_id=task_id,
            attempt=run.attempt,
            trigger=run.trigger,
            started_at=run.started_at,
            finished_at=now,
            state=outcome.state,
            error_message=outcome.error,
            duration=duration,
            timed_out=outcome.timed_out,
        )
        self._counters.count(record)
        task = self._tasks.get(task_id)
        if task is None:
            return  # removed while it ran
        task, retry_at = after_run(task, record, run.resume_paused, now, self._zone)
        self._tasks[task_id] = task
        self._history[task_id].append(record)
        self._recent.append(record)
        await self._persist(save_execution, task, record, self.config.history_limit)
        log = self.ctx.log.bind(task_id=task_id, task=task.name, state=record.state.value, duration=duration)
        if record.state is TaskState.FAILED:
            log.warning("task failed", error=record.error_message, next_run_at=str(task.next_run_at))
        else:
            log.info("task finished", next_run_at=str(task.next_run_at))
        if not publish:
            return
        self.ctx.publish(TaskExecuted(record=record))
        if record.state is TaskState.FAILED:
            self.ctx.publish(TaskFailed(task_id=task_id, error=record.error_message or "", record=record))
        if retry_at is not None:
            self.ctx.publish(TaskRetryScheduled(task_id=task_id, attempt=task.retry_attempt, at=retry_at))

    def _stats(self) -> SchedulerStats:
        states = (t.state for t in self._tasks.values())
        return self._counters.snapshot(states, len(self._running), trio.current_time() - self._started_mono)

    # -- the timer ---------------------------------------------------------------------------

    def _next_deadline(self) -> float:
        if len(self._running) >= self.config.max_concurrent_tasks:
            return float("inf")  # a finishing run wakes us
        if any(task_id not in self._running for task_id in self._triggered):
            return float("-inf")
        times = [
            t.next_run_at
            for t in self._tasks.values()
            if t.state is TaskState.PENDING and t.enabled and t.next_run_at is not None and t.id not in self._running
        ]
        return self._clock.deadline(min(times)) if times else float("inf")

    async def _timer(self) -> None:
        while True:
            with trio.move_on_at(self._next_deadline()) as scope:
                await self._rearm.wait()
            if scope.cancelled_caught:
                await self.ctx.ref.send(Wake())
                await self._rearm.wait()  # until the Wake has been handled
            self._rearm = trio.Event()
