"""Running a task scheduler in tests: a supervisor of its own, a wall clock tied to the
mock clock, task kinds that record what they did."""

import datetime as dt
from contextlib import AsyncExitStack, asynccontextmanager

import trio

from triopacs.actors import ActorSpec, ActorSystem, RestartPolicy, open_supervisor
from triopacs.workflow import SchedulerConfig, TaskKindRegistry, TaskScheduler

START = dt.datetime(2024, 3, 30, 12, 0, tzinfo=dt.timezone.utc)  # a Saturday, Berlin CET
PATH = "/t/scheduler"


def wall_now() -> dt.datetime:
    """What the schedulers' clocks read now (they all count from START at trio time 0)."""
    return START + dt.timedelta(seconds=trio.current_time())


class Recorder:
    """Task kinds that note each run: (name, virtual time) and how many run at once."""

    def __init__(self) -> None:
        self.kinds = TaskKindRegistry()
        self.runs: list[tuple[str, float]] = []
        self.running = 0
        self.most_at_once = 0
        self.cleaned_up: list[str] = []
        self.kinds.register("note", self.note)
        self.kinds.register("sleep", self.sleep)
        self.kinds.register("fail", self.fail)

    async def note(self, params, ctx):
        self.runs.append((params.get("name", ctx.task_name), trio.current_time()))
        return params.get("result")

    async def sleep(self, params, ctx):
        self.runs.append((params.get("name", ctx.task_name), trio.current_time()))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await trio.sleep(params.get("seconds", 10))
        finally:
            self.running -= 1
            self.cleaned_up.append(params.get("name", ctx.task_name))

    async def fail(self, params, ctx):
        self.runs.append((params.get("name", ctx.task_name), trio.current_time()))
        raise ValueError(params.get("message", "broken"))

    def names(self) -> list[str]:
        return [name for name, _ in self.runs]

    def times(self, name: str) -> list[float]:
        return [t for n, t in self.runs if n == name]


@asynccontextmanager
async def scheduler_node(kinds: TaskKindRegistry, database: str | None = None, *, system: ActorSystem | None = None, run_in_thread=None, **config):
    """A supervisor /t running a TaskScheduler at /t/scheduler; yields its ref."""
    async with AsyncExitStack() as stack:
        if system is None:
            system = ActorSystem()
        root = await stack.enter_async_context(open_supervisor(system, "/t", RestartPolicy(max_restarts=5, within=60.0)))
        args = {
            "database": database,
            "config": SchedulerConfig(**config),
            "kinds": kinds,
            "clock_start": wall_now(),
            "run_in_thread": run_in_thread,
        }
        yield await root.start(ActorSpec(name="scheduler", actor=TaskScheduler, args=args))


NEVER = 30 * 86400.0  # virtual seconds: with autojump, a wait that can never end fails here


async def next_event(subscription, kind, **fields):
    """The next event of `kind` with these fields; fails (rather than hangs) if none comes."""
    with trio.fail_after(NEVER):
        async for event in subscription:
            if isinstance(event, kind) and all(getattr(event, k) == v for k, v in fields.items()):
                return event
