"""The node's built-in maintenance tasks: their kinds, and keeping the scheduler's tasks
in line with the configuration.

`register_builtin_kinds` adds the `cleanup`, `verification` and `worklist-expiry` kinds to a registry
(the node uses default_task_kinds), so tasks of them can be scheduled by name with
JSON parameters like any other. An application that registered a kind of the same name
first keeps its own.

`BuiltinTasks` is a small actor started after the scheduler. When it starts (and on
`ApplyBuiltinTasks`) it makes the scheduler hold what the configuration says, under
fixed task ids (`builtin-cleanup`, `builtin-verification`, `builtin-worklist-expiry`,
`builtin-archive`, `builtin-migration`):

- enabled in the configuration: the task is scheduled if missing; a changed schedule
  is updated in place; changed parameters replace the task (its execution history
  goes with it; the run reports stay with the index); a task disabled or cancelled
  through the scheduler is enabled or scheduled afresh, because the configuration is
  what the operator asked for at start. A task paused through the scheduler stays
  paused.
- disabled: an existing task is disabled (kept, with its history; `TriggerTask` still
  runs it by hand). A task that never existed is not created.
"""

from collections.abc import Sequence

import attrs

from ..actors import Actor, message
from .cleanup import KIND as CLEANUP, cleanup
from .tasks.schedule_text import parse_schedule_text, same_schedule
from .tasks.kinds import TaskKindRegistry
from .tasks.messages import EnableTask, GetTask, RemoveTask, ScheduleTask, UpdateSchedule
from .tasks.types import JsonObject, ScheduledTask, TaskError, TaskNotFound, TaskState, TaskType
from .verification import KIND as VERIFICATION, verification
from .worklist_expiry import KIND as WORKLIST_EXPIRY, worklist_expiry
from .migration import KIND as MIGRATION, migration
from .archive import KIND as ARCHIVE, archive

BUILTIN_KINDS = {
    CLEANUP: (cleanup, TaskType.CLEANUP, "delete studies whose retention has run out"),
    VERIFICATION: (verification, TaskType.VERIFICATION, "check stored files against the index"),
    WORKLIST_EXPIRY: (worklist_expiry, TaskType.CLEANUP, "delete worklist items past their time"),
    MIGRATION: (migration, TaskType.MIGRATION, "move instances between storage tiers by last access"),
    ARCHIVE: (archive, TaskType.ARCHIVE, "copy old studies to an archive tier as packages"),
}


def register_builtin_kinds(registry: TaskKindRegistry) -> list[str]:
    """Register the built-in kinds where their names are free; the names registered."""
    added = []
    for name, (function, kind_type, description) in BUILTIN_KINDS.items():
        existing = registry.get(name)
        if existing is None or existing.function is function:
            registry.register(name, function, type=kind_type, description=description, replace=True)
            added.append(name)
    return added


@attrs.frozen(kw_only=True)
class BuiltinTask:
    """One built-in task as the configuration describes it."""

    task_id: str
    name: str
    kind: str
    schedule: str  # cron or interval text (schedule_text.py)
    params: JsonObject = attrs.field(factory=dict)
    enabled: bool = False
    description: str = ""


@message("builtin-tasks.apply")
class ApplyBuiltinTasks:
    """Make the scheduler's built-in tasks match the configuration again."""


@message("builtin-tasks.applied")
class BuiltinTasksApplied:
    changes: tuple[str, ...]  # what was done, one line each


class BuiltinTasks(Actor):
    # It acts on the scheduler, which is played from a recording in replays.
    replayable = False
    accepts = (ApplyBuiltinTasks,)

    def __init__(self, tasks: Sequence[BuiltinTask], scheduler_path: str) -> None:
        self.tasks = tuple(tasks)
        self.scheduler_path = scheduler_path

    async def on_start(self) -> None:
        await self._apply()

    async def handle(self, message):
        match message:
            case ApplyBuiltinTasks():
                return BuiltinTasksApplied(changes=tuple(await self._apply()))

    async def _apply(self) -> list[str]:
        changes = []
        for task in self.tasks:
            try:
                change = await self._apply_one(task)
            except TaskError as error:  # one task the scheduler refuses must not stop the node
                self.ctx.log.error("built-in task not scheduled", task_id=task.task_id, error=str(error))
                changes.append(f"{task.task_id}: refused: {error}")
                continue
            if change:
                self.ctx.log.info("built-in task " + change, task_id=task.task_id, schedule=task.schedule)
                changes.append(f"{task.task_id}: {change}")
        return changes

    async def _apply_one(self, wanted: BuiltinTask) -> str:
        scheduler = self.ctx.lookup(self.scheduler_path)
        try:
            current: ScheduledTask | None = await scheduler.ask(GetTask(task_id=wanted.task_id))
        except TaskNotFound:
            current = None
        if not wanted.enabled:
            if current is not None and current.enabled:
                await scheduler.ask(EnableTask(task_id=wanted.task_id, enabled=False))
                return "disabled"
            return ""
        schedule = parse_schedule_text(wanted.schedule)
        if current is not None and (current.kind != wanted.kind or current.params != wanted.params or current.state is TaskState.CANCELLED):
            await scheduler.ask(RemoveTask(task_id=wanted.task_id))
            await self._schedule(wanted)
            return "rescheduled with new settings"
        if current is None:
            await self._schedule(wanted)
            return "scheduled"
        change = []
        if not same_schedule(current.schedule, schedule):
            await scheduler.ask(UpdateSchedule(task_id=wanted.task_id, schedule=schedule))
            change.append("schedule updated")
        if not current.enabled:
            await scheduler.ask(EnableTask(task_id=wanted.task_id, enabled=True))
            change.append("enabled")
        return ", ".join(change)

    async def _schedule(self, task: BuiltinTask) -> None:
        await self.ctx.lookup(self.scheduler_path).ask(
            ScheduleTask(
                task_id=task.task_id,
                name=task.name,
                kind=task.kind,
                params=task.params,
                description=task.description,
                schedule=parse_schedule_text(task.schedule),
                tags=("builtin",),
            )
        )
