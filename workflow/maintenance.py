"""What the built-in maintenance tasks (cleanup.py, verification.py) share: where the
node's services are, reading a task's JSON parameters into a typed configuration, lists
of findings that stay small, and filing a run's report.

A report is JSON: counts, and lists capped at REPORT_LIST_LIMIT entries each (the
counts stay exact). It is logged, and kept by the index actor in `maintenance_report`
(the newest REPORTS_KEPT per task), readable with `GetReports(task_id)`; the one-line
summary of a run that found problems is also its execution's error message, so the
scheduler's history and its TaskFailed event carry it.
"""

import json
import math
import time
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
import trio

from ..actors import ActorError, AskTimeout
from ..actors.runtime.errors import ReplyError
from ..actors.node.index import SaveReport
from ..storage.maintenance import StoredReport
from .tasks.kinds import TaskContext

INDEX_PATH = "/node/services/index"
LOCKS_PATH = "/node/services/locks"
DAY = 86400.0
REPORT_LIST_LIMIT = 100
REPORTS_KEPT = 100
REPORT_GRACE = 30.0  # seconds a report may take to file, even while the run is being cancelled


def holder_name(ctx: TaskContext) -> str:
    """How a task shows up as a lock holder."""
    return f"task {ctx.task_name} ({ctx.task_id})"


# -- parameters -------------------------------------------------------------------------------


def _number(name: str, value: object, *, whole: bool = False, minimum: float = 0) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
        return f"{name} must be {'a whole number' if whole else 'a number'}, got {value!r}"
    if not (math.isfinite(value) and value >= minimum):
        return f"{name} must be >= {minimum:g}, got {value!r}"
    return None


def check_days(name: str, value: object) -> str | None:
    return _number(name, value)


def check_count(name: str, value: object) -> str | None:
    return _number(name, value, whole=True, minimum=1)


def check_flag(name: str, value: object) -> str | None:
    return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"


def config_from_params(cls: type, params: Mapping[str, Any], what: str) -> Any:
    """An attrs config `cls` from a task's JSON params: missing keys take their defaults,
    unknown keys and wrong values raise ValueError naming the key (the run fails with it)."""
    if not isinstance(params, Mapping):
        raise ValueError(f"{what} parameters must be a JSON object")
    known = attrs.fields_dict(cls)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{what}: unknown parameter {unknown[0]!r} (known: {', '.join(known)})")
    return cls(**params)


# -- findings ---------------------------------------------------------------------------------


@attrs.define
class Findings:
    """A count and the first REPORT_LIST_LIMIT items of one kind of finding."""

    count: int = 0
    items: list[Any] = attrs.field(factory=list)

    def add(self, item: Any) -> None:
        self.count += 1
        if len(self.items) < REPORT_LIST_LIMIT:
            self.items.append(item)

    def __bool__(self) -> bool:
        return self.count > 0


def when(epoch: float) -> str:
    """An epoch time as ISO text for a report (UTC, whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def sized(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


# -- filing a report --------------------------------------------------------------------------


async def file_report(
    ctx: TaskContext, *, kind: str, started_at: float, succeeded: bool, summary: str, report: dict[str, Any]
) -> None:
    """Log the run's report and have the index keep it. Shielded: a cancelled run still
    files what it did. Losing a report (index gone) is logged, never raised."""
    finished_at = time.time()
    counts = report.get("counts", {})
    log = ctx.log.bind(kind=kind, summary=summary, **{f"count_{key}": value for key, value in counts.items()})
    (log.info if succeeded else log.warning)(f"{kind} report")
    stored = StoredReport(
        task_id=ctx.task_id,
        task_name=ctx.task_name,
        kind=kind,
        started_at=started_at,
        finished_at=finished_at,
        succeeded=succeeded,
        summary=summary,
        report=json.dumps(report, sort_keys=True),
    )
    with trio.move_on_after(REPORT_GRACE, shield=True):
        try:
            await ctx.lookup(INDEX_PATH).ask(SaveReport(report=stored, keep_last=REPORTS_KEPT), timeout=REPORT_GRACE)
        except (ReplyError, ActorError, AskTimeout) as error:
            ctx.log.error("could not keep the report", kind=kind, error=str(error))


class MaintenanceRun(Protocol):
    """What run_and_report needs of a cleanup or verification run."""

    started_at: float

    async def go(self) -> None: ...

    def summary(self) -> str: ...

    def report(self, interrupted: bool) -> dict[str, Any]: ...

    def problems(self) -> bool: ...


async def run_and_report(run: MaintenanceRun, ctx: TaskContext, *, kind: str) -> str | None:
    """Run a maintenance task and file its report whatever happens (an interrupted run
    says so); the task's result is its summary when problems remain, else None."""
    interrupted = True
    try:
        await run.go()
        interrupted = False
    finally:
        summary = run.summary() + ("; interrupted" if interrupted else "")
        await file_report(
            ctx, kind=kind, started_at=run.started_at, succeeded=not interrupted and not run.problems(),
            summary=summary, report=run.report(interrupted),
        )
    return f"{kind}: {summary}" if run.problems() else None
