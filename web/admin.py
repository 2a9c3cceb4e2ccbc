"""What the admin API asks of the node: each answer is built from typed messages to the
node's actors (the index, the tiers, the scheduler, the lock manager, the listener and
the association actors). Nothing here opens a database or reads the data directory."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import attrs
import trio

from ..actors import ActorContext, ActorError, ReplyError
from ..actors.node.association import AssociationDescription, DescribeAssociation
from ..actors.node.index import CountIndex, DeleteStudy, DescribeStudy, ListStudiesStoredBefore
from ..actors.node.listener import CountConnections
from ..actors.node.tiers import TIERS_PATH
from ..actors.node.tiers.messages import GetTierStatistics, TierStatistics
from ..config import Config
from ..protocol.uid import is_valid_uid
from ..supervisor import ASSOCIATIONS, INDEX, LOCKS, SCHEDULER
from ..version import __version__
from ..workflow import LockType, study_lock
from ..workflow.locks.messages import GetAllLocks, GetLockStats
from ..workflow.tasks.messages import (
    CancelTask,
    GetExecutionHistory,
    GetSchedulerStats,
    ListTasks,
    PauseTask,
    ResumeTask,
    TriggerTask,
)
from ..workflow.tasks.types import ScheduledTask, TaskError, TaskExecutionRecord, TaskNotFound
from .metrics import Activity
from .metrics_actor import GetActivity, ListOpenAssociations
from .openapi import API_VERSION
from .phase import NodePhase
from .problems import bad_request, conflict, not_found, unavailable
from .redact import redacted
from .views import (
    AssociationList,
    AssociationView,
    Component,
    ConfigView,
    Endpoints,
    Health,
    LockList,
    LockView,
    Probe,
    RunView,
    Statistics,
    StudyDetail,
    StudyList,
    StudyRemoved,
    StudySummaryView,
    SystemStatus,
    TaskHistory,
    TaskList,
    TaskView,
    TierView,
    Version,
)

ASK_TIMEOUT = 5.0  # an actor that cannot answer a status question in this time is reported down
LISTENER = f"{ASSOCIATIONS}/listener"
NEVER = 1e18  # "stored before" the end of time: every study


@attrs.frozen(kw_only=True)
class Addresses:
    dicom: str
    http: str
    events: str


class Admin:
    def __init__(self, ctx: ActorContext, config: Config, phase: NodePhase, metrics_path: str, addresses: Callable[[], Awaitable[Addresses]]) -> None:
        self.ctx = ctx
        self.config = config
        self.phase = phase
        self.metrics_path = metrics_path
        self.addresses = addresses
        self.started = trio.current_time()

    async def ask(self, path: str, message: object, timeout: float = ASK_TIMEOUT):
        try:
            return await self.ctx.lookup(path).ask(message, timeout=timeout)
        except ActorError as error:
            raise unavailable(f"{path} is not available", str(error)) from None

    # --- probes -------------------------------------------------------------------------

    async def health(self) -> Health:
        checks: list[Component] = []
        async with trio.open_nursery() as nursery:
            for name, path, message, summary in self._components():
                nursery.start_soon(self._check, checks, name, path, message, summary)
        checks.sort(key=lambda c: c.name)
        healthy = all(c.status == "ok" for c in checks)
        return Health(status="ok" if healthy else "degraded", phase=self.phase.value, components=tuple(checks))

    def _components(self):
        yield "index", INDEX, CountIndex(), lambda r: f"{r.counts.instances} instances"
        yield "listener", LISTENER, CountConnections(), lambda r: f"{r.associations} associations, {r.waiting} waiting"
        yield "locks", LOCKS, GetLockStats(), lambda r: f"{r.active_locks} locks held, {r.waiting_requests} waiting"
        if self.config.scheduler.enabled:
            yield "scheduler", SCHEDULER, GetSchedulerStats(), lambda r: f"{r.scheduled_tasks} tasks, {r.running_tasks} running"
        for tier in self._tier_names():
            yield f"tier:{tier}", f"{TIERS_PATH}/{tier}", GetTierStatistics(), None

    def _tier_names(self) -> list[str]:
        prefix = f"{TIERS_PATH}/"
        return [p[len(prefix):] for p in self.ctx.system.paths() if p.startswith(prefix) and "/" not in p[len(prefix):]]

    async def _check(self, checks: list[Component], name: str, path: str, message: object, summary) -> None:
        try:
            with trio.fail_after(ASK_TIMEOUT):
                answer = await self.ctx.lookup(path).ask(message, timeout=None)
        except (ActorError, ReplyError, trio.TooSlowError) as error:
            checks.append(Component(name=name, status="down", detail=str(error) or type(error).__name__))
            return
        if isinstance(answer, TierStatistics):
            status = "ok" if answer.healthy else "down"
            checks.append(Component(name=name, status=status, detail=answer.problem or f"{answer.kind}, {answer.puts} objects written"))
            return
        checks.append(Component(name=name, status="ok", detail=summary(answer)))

    async def ready(self) -> tuple[bool, Probe]:
        if self.phase.value != "ready":
            return False, Probe(status=self.phase.value)
        health = await self.health()
        down = [c.name for c in health.components if c.status != "ok"]
        if down:
            return False, Probe(status=f"not ready: {', '.join(down)}")
        return True, Probe(status="ok")

    # --- system -------------------------------------------------------------------------

    def version(self) -> Version:
        return Version(name="triopacs", version=__version__, api=API_VERSION)

    async def status(self) -> SystemStatus:
        addresses = await self.addresses()
        activity = await self.activity()
        return SystemStatus(
            ae_title=self.config.node.ae_title,
            phase=self.phase.value,
            uptime=trio.current_time() - self.started,
            endpoints=Endpoints(dicom=addresses.dicom, http=addresses.http, events=addresses.events),
            actors=len(self.ctx.system.paths()),
            associations_active=activity.associations_active,
        )

    def config_view(self) -> ConfigView:
        shown = redacted(self.config)
        return ConfigView(sections={name: value if isinstance(value, dict) else {"entries": value} for name, value in shown.items()})

    async def activity(self) -> Activity:
        return await self.ask(self.metrics_path, GetActivity())

    # --- associations -------------------------------------------------------------------

    async def associations(self) -> AssociationList:
        # Those of this process by path, and those of worker processes by their events;
        # a worker's association answers through the same lookup (a RemoteRef).
        prefix = f"{ASSOCIATIONS}/"
        local = {p for p in self.ctx.system.paths() if p.startswith(prefix) and p != LISTENER}
        opened = (await self.ask(self.metrics_path, ListOpenAssociations())).ids
        paths = sorted(local | {prefix + association_id for association_id in opened})
        found: list[AssociationDescription] = []

        async def describe(path: str) -> None:
            try:
                found.append(await self.ctx.lookup(path).ask(DescribeAssociation(), timeout=ASK_TIMEOUT))
            except (ActorError, ReplyError):
                pass  # ended meanwhile

        async with trio.open_nursery() as nursery:
            for path in paths:
                nursery.start_soon(describe, path)
        views = [
            AssociationView(
                association_id=d.association_id, peer=d.peer, calling_ae_title=d.calling_ae_title, called_ae_title=d.called_ae_title,
                state=d.state, contexts=d.contexts, bytes_received=d.bytes_received, bytes_sent=d.bytes_sent, age=d.seconds,
                tls_subject=d.tls_subject or "", username=d.username,
            )
            for d in found
        ]
        views.sort(key=lambda v: -v.age)
        return AssociationList(associations=tuple(views))

    # --- tasks --------------------------------------------------------------------------

    def _scheduler_on(self) -> None:
        if not self.config.scheduler.enabled:
            raise unavailable("the scheduler is off", "[scheduler] enabled = false")

    async def tasks(self) -> TaskList:
        self._scheduler_on()
        answer = await self.ask(SCHEDULER, ListTasks())
        return TaskList(tasks=tuple(task_view(t) for t in sorted(answer.tasks, key=lambda t: t.id)))

    async def task_action(self, task_id: str, action: str) -> TaskView:
        self._scheduler_on()
        message = {"run": TriggerTask, "pause": PauseTask, "resume": ResumeTask, "cancel": CancelTask}[action](task_id=task_id)
        try:
            task = await self.ctx.lookup(SCHEDULER).ask(message, timeout=ASK_TIMEOUT)
        except TaskNotFound:
            raise not_found("task", f"no task {task_id!r}") from None
        except TaskError as error:
            raise conflict(f"cannot {action} task {task_id!r}", str(error)) from None
        except ActorError as error:
            raise unavailable("the scheduler is not available", str(error)) from None
        return task_view(task)

    async def task_history(self, task_id: str, limit: int) -> TaskHistory:
        self._scheduler_on()
        try:
            answer = await self.ctx.lookup(SCHEDULER).ask(GetExecutionHistory(task_id=task_id, limit=limit), timeout=ASK_TIMEOUT)
        except TaskNotFound:
            raise not_found("task", f"no task {task_id!r}") from None
        except ActorError as error:
            raise unavailable("the scheduler is not available", str(error)) from None
        return TaskHistory(runs=tuple(run_view(r) for r in answer.records))

    # --- locks --------------------------------------------------------------------------

    async def locks(self) -> LockList:
        held = await self.ask(LOCKS, GetAllLocks())
        stats = await self.ask(LOCKS, GetLockStats())
        return LockList(
            locks=tuple(
                LockView(study_uid=i.study_uid, type=i.type.value, holder=i.holder, reason=i.reason, held_for=i.held_for,
                         expires_at=iso(i.expires_at))
                for i in held.locks
            ),
            waiting=stats.waiting_requests,
            contentions=stats.contention_count,
        )

    # --- studies ------------------------------------------------------------------------

    async def studies(self, after: str | None, limit: int) -> StudyList:
        cursor = parse_cursor(after) if after else None
        page = await self.ask(INDEX, ListStudiesStoredBefore(before=NEVER, after=cursor, limit=limit))
        return StudyList(
            studies=tuple(
                StudySummaryView(
                    study_instance_uid=s.study_instance_uid, patient_id=s.patient_id, study_date=s.study_date,
                    study_description=s.study_description, modalities=s.modalities, instances=s.instances, bytes=s.bytes,
                    last_stored_at=s.last_stored_at,
                )
                for s in page.studies
            ),
            next=f"{page.cursor[0]!r}:{page.cursor[1]}" if page.cursor is not None else None,
        )

    async def study(self, uid: str) -> StudyDetail:
        check_uid(uid)
        answer = await self.ask(INDEX, DescribeStudy(study_instance_uid=uid))
        if answer.study is None:
            raise not_found("study", f"no study {uid} in the index")
        return StudyDetail(**attrs.asdict(answer.study, recurse=False))

    async def delete_study(self, uid: str) -> StudyRemoved:
        """Under the study's exclusive lock, as cleanup deletes: no store, move or
        retrieve of the study runs while it goes."""
        await self.study(uid)  # 400 / 404 first
        try:
            async with study_lock(self.ctx.lookup(LOCKS), uid, LockType.EXCLUSIVE, reason="deleted through the admin API",
                                  holder="http", wait=self.config.locks.acquire_wait_timeout):
                deleted = await self.ctx.lookup(INDEX).ask(DeleteStudy(study_instance_uid=uid), timeout=None)
        except ReplyError as error:
            raise conflict(f"study {uid} could not be deleted", str(error)) from None
        except ActorError as error:
            raise unavailable("the index or the lock manager is not available", str(error)) from None
        return StudyRemoved(study_instance_uid=uid, files_removed=deleted.removed, files_failed=len(deleted.failed))

    # --- statistics ---------------------------------------------------------------------

    async def statistics(self) -> Statistics:
        counts = (await self.ask(INDEX, CountIndex())).counts
        activity = await self.activity()
        tiers: list[TierView] = []
        for name in self._tier_names():
            try:
                t = await self.ctx.lookup(f"{TIERS_PATH}/{name}").ask(GetTierStatistics(), timeout=ASK_TIMEOUT)
            except (ActorError, ReplyError) as error:
                tiers.append(TierView(name=name, kind="", healthy=False, problem=str(error), puts=0, bytes_in=0))
                continue
            tiers.append(TierView(name=t.name, kind=t.kind, healthy=t.healthy, problem=t.problem, puts=t.puts, bytes_in=t.bytes_in))
        return Statistics(
            patients=counts.patients, studies=counts.studies, series=counts.series, instances=counts.instances, bytes=counts.total_bytes,
            instances_stored=activity.instances_stored, bytes_stored=activity.bytes_stored, queries=activity.queries,
            retrieves=activity.retrieves, associations=activity.associations, associations_rejected=activity.associations_rejected,
            associations_aborted=activity.associations_aborted, tiers=tuple(tiers),
        )


def check_uid(uid: str) -> None:
    if not is_valid_uid(uid):
        raise bad_request("not a valid DICOM UID", f"{uid[:80]!r} is not digits and dots of at most 64 characters")


def parse_cursor(text: str) -> tuple[float, int]:
    stored, _, pk = text.rpartition(":")
    try:
        return float(stored), int(pk)
    except ValueError:
        raise bad_request("bad cursor", "pass the `next` value of the previous page as it was") from None


def iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def run_view(record: TaskExecutionRecord) -> RunView:
    return RunView(
        execution_id=record.execution_id, task_id=record.task_id, trigger=record.trigger.value, state=record.state.value,
        started_at=record.started_at.isoformat(), duration=record.duration, error=record.error_message or "",
    )


def task_view(task: ScheduledTask) -> TaskView:
    return TaskView(
        id=task.id, name=task.name, kind=task.kind, schedule=str(task.schedule), state=task.state.value, enabled=task.enabled,
        next_run_at=iso(task.next_run_at), last_run=run_view(task.last_execution) if task.last_execution else None,
        runs=task.execution_count, failures=task.failure_count,
    )

