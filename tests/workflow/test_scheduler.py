"""The task scheduler under MockClock: order and concurrency, timeouts that stop the task,
retries, failing recurring tasks, triggers, pause/resume/cancel, schedule updates,
history and statistics, DST, and no polling."""

import datetime as dt
import threading
import zoneinfo

import pytest
import trio
import trio.testing

from triopacs.actors import ActorSystem
from triopacs.workflow import (
    CancelTask,
    ClearHistory,
    CronSchedule,
    EnableTask,
    ExecutionTrigger,
    GetExecutionHistory,
    GetRecentExecutions,
    GetSchedulerStats,
    GetTask,
    IntervalSchedule,
    InvalidSchedule,
    InvalidTask,
    InvalidTaskState,
    ListTasks,
    OneTimeSchedule,
    PauseTask,
    RemoveTask,
    ResumeTask,
    ScheduleTask,
    TaskAlreadyRunning,
    TaskExists,
    TaskFailed,
    TaskNotFound,
    TaskRetryScheduled,
    TaskState,
    TaskType,
    TriggerTask,
    UnknownTaskKind,
    UpdateSchedule,
)

from .helpers import frozen_thread_runner
from .scheduler_support import START, Recorder, next_event, scheduler_node, wall_now


def once_in(seconds: float) -> OneTimeSchedule:
    return OneTimeSchedule(execute_at=wall_now() + dt.timedelta(seconds=seconds))


def task(name: str, kind: str = "note", schedule=None, **fields) -> ScheduleTask:
    params = fields.pop("params", {})
    return ScheduleTask(name=name, kind=kind, schedule=schedule or once_in(10), params={"name": name, **params}, **fields)


async def test_due_tasks_start_highest_priority_first(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds, max_concurrent_tasks=1) as scheduler:
        for name, priority in (("low", 1), ("high", 5), ("middle", 3)):
            await scheduler.ask(task(name, priority=priority))
        await trio.sleep(20)
    assert recorder.names() == ["high", "middle", "low"]
    assert recorder.times("low") == [10.0]


async def test_at_most_max_concurrent_tasks_run_at_once(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds, max_concurrent_tasks=2) as scheduler:
        for i in range(5):
            await scheduler.ask(task(f"t{i}", "sleep", params={"seconds": 10}, priority=10 - i))
        await trio.sleep(15)
        assert (await scheduler.ask(GetSchedulerStats())).running_tasks == 2
        await trio.sleep(50)
    assert recorder.most_at_once == 2
    # Two at a time, by priority (two starting together may begin in either order).
    assert sorted((t, name) for name, t in recorder.runs) == [(10, "t0"), (10, "t1"), (20, "t2"), (20, "t3"), (30, "t4")]


async def test_a_timeout_cancels_an_async_task_for_real(autojump_clock):
    recorder = Recorder()
    system = ActorSystem()
    with system.bus.subscribe(TaskFailed) as failures:
        async with scheduler_node(recorder.kinds, system=system) as scheduler:
            slow = await scheduler.ask(task("slow", "sleep", params={"seconds": 3600}, timeout=5))
            failed = await next_event(failures, TaskFailed, task_id=slow.id)
            assert trio.current_time() == 15
            assert failed.record.timed_out and failed.record.duration == 5
            assert failed.error == "timed out after 5s"
            assert recorder.cleaned_up == ["slow"]  # its finally block ran: it was cancelled
            assert (await scheduler.ask(GetTask(task_id=slow.id))).state is TaskState.FAILED


async def test_a_timeout_abandons_a_blocking_task_and_says_so(autojump_clock):
    recorder = Recorder()
    release = threading.Event()
    saw_cancel = threading.Event()

    def stuck(params, ctx):
        release.wait(30)  # real seconds: only until the test lets go
        if ctx.cancelled.is_set():
            saw_cancel.set()

    recorder.kinds.register("stuck", stuck)
    system = ActorSystem()
    with system.bus.subscribe(TaskFailed) as failures:
        async with scheduler_node(recorder.kinds, system=system) as scheduler:
            stuck_task = await scheduler.ask(task("stuck", "stuck", timeout=2))
            failed = await next_event(failures, TaskFailed, task_id=stuck_task.id)
            assert failed.record.timed_out and "worker thread was abandoned" in failed.error
            assert (await scheduler.ask(GetSchedulerStats())).running_tasks == 0  # the slot is free again
            release.set()
            await frozen_thread_runner()(lambda: saw_cancel.wait(30))
    assert saw_cancel.is_set()  # the abandoned function could tell it was given up on


async def test_blocking_task_kinds_run_in_a_worker_thread(autojump_clock):
    recorder = Recorder()
    threads = []

    def blocking(params, ctx):
        threads.append(threading.current_thread().name)
        return None if params["ok"] else "disk full"

    recorder.kinds.register("blocking", blocking)
    async with scheduler_node(recorder.kinds, run_in_thread=frozen_thread_runner()) as scheduler:
        good = await scheduler.ask(task("good", "blocking", params={"ok": True}))
        bad = await scheduler.ask(task("bad", "blocking", params={"ok": False}))
        await trio.sleep(11)
        assert (await scheduler.ask(GetTask(task_id=good.id))).state is TaskState.COMPLETED
        bad = await scheduler.ask(GetTask(task_id=bad.id))
        assert bad.state is TaskState.FAILED and bad.last_execution.error_message == "disk full"
    assert threads and threading.main_thread().name not in threads


async def test_what_a_task_returns_decides_its_outcome(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds) as scheduler:
        outcomes = {
            "none": await scheduler.ask(task("none", params={"result": None})),
            "true": await scheduler.ask(task("true", params={"result": True})),
            "text": await scheduler.ask(task("text", params={"result": "no space left"})),
            "false": await scheduler.ask(task("false", params={"result": False})),
            "raises": await scheduler.ask(task("raises", "fail", params={"message": "bad header"})),
        }
        await trio.sleep(11)
        results = {name: (await scheduler.ask(GetTask(task_id=t.id))).last_execution for name, t in outcomes.items()}
    assert results["none"].succeeded and results["true"].succeeded
    assert results["text"].error_message == "no space left"
    assert results["false"].error_message == "the task reported failure"
    assert results["raises"].error_message == "ValueError: bad header"


async def test_failed_runs_are_retried_after_retry_delay(autojump_clock):
    recorder = Recorder()
    attempts = []

    async def flaky(params, ctx):
        attempts.append((ctx.attempt, ctx.trigger, trio.current_time()))
        return "not yet" if len(attempts) < 3 else None

    recorder.kinds.register("flaky", flaky)
    system = ActorSystem()
    with system.bus.subscribe(TaskRetryScheduled) as retries:
        async with scheduler_node(recorder.kinds, system=system) as scheduler:
            flaky_task = await scheduler.ask(task("flaky", "flaky", max_retries=3, retry_delay=30))
            first = await next_event(retries, TaskRetryScheduled)
            assert first.attempt == 1 and first.at == START + dt.timedelta(seconds=40)
            await trio.sleep(200)
            final = await scheduler.ask(GetTask(task_id=flaky_task.id))
    assert attempts == [(0, ExecutionTrigger.SCHEDULED, 10), (1, ExecutionTrigger.RETRY, 40), (2, ExecutionTrigger.RETRY, 70)]
    assert final.state is TaskState.COMPLETED and (final.success_count, final.failure_count) == (1, 2)


async def test_retries_run_out_for_a_one_time_task(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds) as scheduler:
        doomed = await scheduler.ask(task("doomed", "fail", max_retries=2, retry_delay=5))
        await trio.sleep(100)
        doomed = await scheduler.ask(GetTask(task_id=doomed.id))
    assert recorder.times("doomed") == [10, 15, 20]
    assert doomed.state is TaskState.FAILED and doomed.next_run_at is None


async def test_a_failed_recurring_task_runs_again_at_its_next_time(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds) as scheduler:
        failing = await scheduler.ask(task("failing", "fail", schedule=IntervalSchedule(interval=60)))
        await trio.sleep(190)
        failing = await scheduler.ask(GetTask(task_id=failing.id))
    assert recorder.times("failing") == [60, 120, 180]
    assert failing.state is TaskState.PENDING and failing.failure_count == 3
    assert failing.next_run_at == START + dt.timedelta(seconds=240)


async def test_trigger_runs_a_task_at_once(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds) as scheduler:
        nightly = await scheduler.ask(task("nightly", schedule=CronSchedule.daily_at(2, 0)))
        assert nightly.next_run_at == dt.datetime(2024, 3, 31, 2, 0, tzinfo=dt.timezone.utc)
        await trio.sleep(5)
        await scheduler.ask(TriggerTask(task_id=nightly.id))
        await trio.testing.wait_all_tasks_blocked()
        assert recorder.runs == [("nightly", 5.0)]  # now, not at 02:00
        after = await scheduler.ask(GetTask(task_id=nightly.id))
        assert after.next_run_at == nightly.next_run_at and after.last_execution.trigger is ExecutionTrigger.MANUAL
        sleeper = await scheduler.ask(task("sleeper", "sleep", params={"seconds": 100}, schedule=IntervalSchedule(interval=3600)))
        await scheduler.ask(TriggerTask(task_id=sleeper.id))
        with pytest.raises(TaskAlreadyRunning):
            await scheduler.ask(TriggerTask(task_id=sleeper.id))


async def test_trigger_runs_a_disabled_or_paused_task_once(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds) as scheduler:
        hourly = await scheduler.ask(task("hourly", schedule=IntervalSchedule(interval=3600), enabled=False))
        await scheduler.ask(TriggerTask(task_id=hourly.id))
        await trio.sleep(3 * 3600)
        assert recorder.times("hourly") == [0]  # disabled: only the triggered run
        await scheduler.ask(EnableTask(task_id=hourly.id, enabled=True))
        await scheduler.ask(PauseTask(task_id=hourly.id))
        await scheduler.ask(TriggerTask(task_id=hourly.id))
        await trio.sleep(2 * 3600)
        assert recorder.times("hourly") == [0, 3 * 3600]
        assert (await scheduler.ask(GetTask(task_id=hourly.id))).state is TaskState.PAUSED


async def test_pause_resume_and_cancel(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds) as scheduler:
        minutely = await scheduler.ask(task("minutely", schedule=IntervalSchedule(interval=60)))
        await trio.sleep(30)
        paused = await scheduler.ask(PauseTask(task_id=minutely.id))
        assert paused.state is TaskState.PAUSED
        await trio.sleep(120)  # 60 and 120 pass unnoticed
        resumed = await scheduler.ask(ResumeTask(task_id=minutely.id))
        assert resumed.state is TaskState.PENDING and resumed.next_run_at == START + dt.timedelta(seconds=180)
        await trio.sleep(40)
        assert recorder.times("minutely") == [180]
        cancelled = await scheduler.ask(CancelTask(task_id=minutely.id))
        assert cancelled.state is TaskState.CANCELLED and cancelled.next_run_at is None
        await trio.sleep(600)
        assert recorder.times("minutely") == [180]
        with pytest.raises(InvalidTaskState):
            await scheduler.ask(ResumeTask(task_id=minutely.id))
        with pytest.raises(InvalidTaskState):
            await scheduler.ask(TriggerTask(task_id=minutely.id))
        listed = await scheduler.ask(ListTasks(state=TaskState.CANCELLED))
        assert [t.id for t in listed.tasks] == [minutely.id]


async def test_cancel_stops_a_running_task(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds) as scheduler:
        long = await scheduler.ask(task("long", "sleep", params={"seconds": 3600}, schedule=IntervalSchedule(interval=7200)))
        await trio.sleep(7300)
        assert (await scheduler.ask(GetTask(task_id=long.id))).state is TaskState.RUNNING
        await scheduler.ask(CancelTask(task_id=long.id))
        await trio.testing.wait_all_tasks_blocked()
        assert recorder.cleaned_up == ["long"] and trio.current_time() == 7300
        history = (await scheduler.ask(GetExecutionHistory(task_id=long.id))).records
        assert [r.state for r in history] == [TaskState.CANCELLED] and history[0].duration == 100
        assert (await scheduler.ask(GetSchedulerStats())).cancelled_executions == 1


async def test_pausing_a_running_task_lets_it_finish_then_rests(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds) as scheduler:
        job = await scheduler.ask(task("job", "sleep", params={"seconds": 30}, schedule=IntervalSchedule(interval=60)))
        await trio.sleep(70)
        await scheduler.ask(PauseTask(task_id=job.id))
        await trio.sleep(300)
        job = await scheduler.ask(GetTask(task_id=job.id))
        assert job.state is TaskState.PAUSED and job.last_execution.succeeded
        assert recorder.cleaned_up == ["job"]


async def test_update_schedule_rearms_the_timer(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds) as scheduler:
        weekly = await scheduler.ask(task("weekly", schedule=CronSchedule.weekly_on(1, 3, 0)))
        await trio.sleep(100)
        updated = await scheduler.ask(UpdateSchedule(task_id=weekly.id, schedule=CronSchedule.every_minutes(5)))
        assert updated.next_run_at == START + dt.timedelta(minutes=5)
        await trio.sleep(501)
        assert recorder.times("weekly") == [300, 600]
        with pytest.raises(InvalidSchedule, match="^minute: "):
            await scheduler.ask(UpdateSchedule(task_id=weekly.id, schedule=CronSchedule(minute="75")))
        t0 = trio.current_time()
        once = await scheduler.ask(task("once"))
        await trio.sleep(20)
        assert (await scheduler.ask(GetTask(task_id=once.id))).state is TaskState.COMPLETED
        again = await scheduler.ask(UpdateSchedule(task_id=once.id, schedule=once_in(60)))
        assert again.state is TaskState.PENDING  # a finished one-time task scheduled anew
        await trio.sleep(61)
        assert recorder.times("once") == [t0 + 10, t0 + 80]


async def test_bad_requests_are_refused_with_typed_errors(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds) as scheduler:
        with pytest.raises(UnknownTaskKind, match="no task kind 'backup'"):
            await scheduler.ask(task("x", "backup"))
        with pytest.raises(InvalidSchedule, match="^day_of_week: 9 is out of range"):
            await scheduler.ask(task("x", schedule=CronSchedule(day_of_week="9")))
        with pytest.raises(InvalidSchedule, match="^execute_at must be timezone-aware"):
            await scheduler.ask(task("x", schedule=OneTimeSchedule(execute_at=dt.datetime(2030, 1, 1))))
        with pytest.raises(InvalidSchedule, match="^interval must be"):
            await scheduler.ask(task("x", schedule=IntervalSchedule(interval=-1)))
        with pytest.raises(InvalidTask, match="^timeout"):
            await scheduler.ask(task("x", timeout=-1))
        with pytest.raises(InvalidTask, match="^params must"):
            await scheduler.ask(task("x", params={"when": (1, 2)}))
        await scheduler.ask(task("x", task_id="fixed"))
        with pytest.raises(TaskExists):
            await scheduler.ask(task("x", task_id="fixed"))
        with pytest.raises(TaskNotFound):
            await scheduler.ask(GetTask(task_id="nope"))
        assert len((await scheduler.ask(ListTasks())).tasks) == 1


async def test_history_recent_executions_and_clearing(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds, history_limit=5) as scheduler:
        a = await scheduler.ask(task("a", schedule=IntervalSchedule(interval=10)))
        b = await scheduler.ask(task("b", "fail", schedule=IntervalSchedule(interval=25)))
        await trio.sleep(105)
        history = (await scheduler.ask(GetExecutionHistory(task_id=a.id, limit=3))).records
        assert [r.started_at for r in history] == [START + dt.timedelta(seconds=s) for s in (100, 90, 80)]
        assert len((await scheduler.ask(GetExecutionHistory(task_id=a.id))).records) == 5  # history_limit
        recent = (await scheduler.ask(GetRecentExecutions(limit=3))).records
        newest = START + dt.timedelta(seconds=100)  # a and b both ran then, in either order
        assert {(r.task_id, r.started_at) for r in recent[:2]} == {(a.id, newest), (b.id, newest)}
        assert (recent[2].task_id, recent[2].started_at) == (a.id, START + dt.timedelta(seconds=90))
        cleared = await scheduler.ask(ClearHistory(task_id=a.id, keep_last=2))
        assert cleared.removed == 3
        assert len((await scheduler.ask(GetExecutionHistory(task_id=a.id))).records) == 2
        await scheduler.ask(RemoveTask(task_id=b.id))
        assert {r.task_id for r in (await scheduler.ask(GetRecentExecutions())).records} == {a.id}


async def test_statistics(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds) as scheduler:
        await scheduler.ask(task("s1", "sleep", params={"seconds": 4}))
        await scheduler.ask(task("s2", "sleep", params={"seconds": 8}))
        await scheduler.ask(task("f", "fail"))
        await scheduler.ask(task("later", schedule=once_in(1000)))
        paused = await scheduler.ask(task("paused", schedule=once_in(1000)))
        await scheduler.ask(PauseTask(task_id=paused.id))
        await trio.sleep(30)
        stats = await scheduler.ask(GetSchedulerStats())
    assert (stats.total_executions, stats.successful_executions, stats.failed_executions) == (3, 2, 1)
    assert stats.max_execution_time == 8 and stats.avg_execution_time == 4
    assert (stats.scheduled_tasks, stats.pending_tasks, stats.running_tasks) == (2, 1, 0)
    assert stats.uptime == 30 and stats.last_cycle_at == START + dt.timedelta(seconds=10)


async def test_tasks_list_by_type_and_state(autojump_clock):
    recorder = Recorder()
    recorder.kinds.register("verify", recorder.note, type=TaskType.VERIFICATION)
    async with scheduler_node(recorder.kinds) as scheduler:
        check = await scheduler.ask(task("check", "verify", schedule=CronSchedule.weekly_on(0, 4)))
        other = await scheduler.ask(task("other"))
        assert check.type is TaskType.VERIFICATION and other.type is TaskType.CUSTOM
        assert [t.id for t in (await scheduler.ask(ListTasks(type=TaskType.VERIFICATION))).tasks] == [check.id]
        assert len((await scheduler.ask(ListTasks(state=TaskState.PENDING))).tasks) == 2


async def test_cron_follows_the_configured_zone_across_dst(autojump_clock):
    recorder = Recorder()
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    async with scheduler_node(recorder.kinds, timezone="Europe/Berlin") as scheduler:
        nightly = await scheduler.ask(task("nightly", schedule=CronSchedule.daily_at(2, 30)))
        await trio.sleep(3 * 86400)
        history = (await scheduler.ask(GetExecutionHistory(task_id=nightly.id))).records
    local = [r.started_at.astimezone(berlin).isoformat(timespec="minutes") for r in reversed(history)]
    assert local == ["2024-03-31T03:00+02:00", "2024-04-01T02:30+02:00", "2024-04-02T02:30+02:00"]


async def test_the_scheduler_sleeps_until_the_next_due_time(autojump_clock):
    recorder = Recorder()
    async with scheduler_node(recorder.kinds) as scheduler:
        await scheduler.ask(task("far", schedule=once_in(3 * 86400)))
        before = scheduler.statistics().delivered
        await trio.sleep(3 * 86400 - 1)
        assert scheduler.statistics().delivered == before  # three idle days: not one message
        await trio.sleep(2)
        assert scheduler.statistics().delivered == before + 2  # the timer's Wake, the run's RunFinished
    assert recorder.times("far") == [3 * 86400]
