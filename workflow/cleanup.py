"""The built-in `cleanup` task kind: delete studies whose retention has run out.

Parameters are the seed's cleanup_config (SDS Workflow, DES-WKF-004 5.1.4), as JSON;
its schedule is the task's own:

| parameter | default | meaning |
|---|---|---|
| default_retention | 365 | days a study is kept |
| modality_retention | {} | days per modality, e.g. {"CT": 1825} |
| exclude_patterns | [] | studies never deleted (see `excluded_by`) |
| verify_not_locked | true | skip a study someone has locked (else wait for it) |
| dry_run | false | report what would be deleted, delete nothing |
| max_deletions_per_cycle | 100 | studies deleted per run at most |
| database_only | false | take studies out of the index, keep their files |

Which date: a study's age counts from when its newest instance arrived here
(`stored_at`), not from its StudyDate. The node sets that time itself, so it is never
missing or malformed (a modality with a wrong clock, an empty type 2 StudyDate), and a
study imported today - a prior fetched from another archive - is not deleted on arrival
because its StudyDate is old. A study still receiving instances keeps getting younger.

Which retention: a study's modalities that have their own retention decide, the longest
of them (a CT+MR study with CT 5 years and MR 10 years is kept 10 years); a study
none of whose modalities has one keeps `default_retention`. (A CT study with a dose
report SR is a CT study for retention, unless SR has a retention of its own.)

How a study is deleted: oldest first, each under the study's EXCLUSIVE lock, taken
through the lock manager - with verify_not_locked a study already locked is skipped
(TryLock), otherwise the run waits for it up to the lock manager's
acquire_wait_timeout. Under the lock the index deletes it crash-safely (actors/node/index.py
`DeleteStudy`, storage/deletion.py): rows and a journal of the files in one
transaction, then the files, then the journal entries; a crash at any point is finished
when the index next opens. The index re-checks the cutoff inside that transaction, so a
study that received an instance since it was chosen is kept.

Cancellation and timeouts: a deletion under way is shielded - the study being deleted
is finished (the lock is held until the index answers) and the run stops before the
next one. Whatever a run did is in its report, even when it was cancelled.
"""

import fnmatch
import time
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from ..actors import ActorError, AskTimeout
from ..actors.node.index import DeleteStudy, IndexFailure, ListStudiesStoredBefore
from ..storage.maintenance import StudySummary
from .locks.client import study_lock
from .locks.messages import IsLocked
from .locks.types import (
    AlreadyLocked,
    LockError,
    LockExpired,
    LockTimeout,
    LockType,
    MaxSharedExceeded,
)
from .maintenance import (
    DAY,
    INDEX_PATH,
    LOCKS_PATH,
    Findings,
    check_count,
    check_days,
    check_flag,
    config_from_params,
    holder_name,
    run_and_report,
    sized,
    when,
)
from .tasks.kinds import TaskContext

KIND = "cleanup"
PAGE = 200  # studies per listing page
DELETE_GRACE = 600.0  # seconds one study's deletion may take before the run gives up on it

# What `field:pattern` may name, and where a bare pattern looks.
PATTERN_FIELDS = {
    "patient_id": lambda s: s.patient_id,
    "study_uid": lambda s: s.study_instance_uid,
    "accession": lambda s: s.accession_number,
    "description": lambda s: s.study_description,
}


def _validated(check):
    def validate(_: object, attribute: attrs.Attribute, value: object) -> None:
        problem = check(attribute.name, value)
        if problem is not None:
            raise ValueError(problem)

    return validate


def _retention_map(_: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(f"{attribute.name} must be an object of modality: days, got {value!r}")
    for modality, days in value.items():
        if not isinstance(modality, str) or not modality.strip():
            raise ValueError(f"{attribute.name}: {modality!r} is not a modality")
        problem = check_days(f"{attribute.name}.{modality}", days)
        if problem is not None:
            raise ValueError(problem)


def _patterns(_: object, attribute: attrs.Attribute, value: object) -> None:
    for pattern in value:  # type: ignore[attr-defined]
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"{attribute.name} must be a list of non-empty texts, got {pattern!r}")
        field, separator, rest = pattern.partition(":")
        if separator and field in PATTERN_FIELDS and not rest:
            raise ValueError(f"{attribute.name}: {pattern!r} names a field but no pattern")


def _upper_keys(value: object) -> object:
    return {str(k).strip().upper(): v for k, v in value.items()} if isinstance(value, Mapping) else value


def _tuple(value: object) -> object:
    return tuple(value) if isinstance(value, (list, tuple)) else value


@attrs.frozen(kw_only=True)
class CleanupConfig:
    """The seed's cleanup_config; retention in days."""

    default_retention: float = attrs.field(default=365, validator=_validated(check_days))
    modality_retention: Mapping[str, float] = attrs.field(factory=dict, converter=_upper_keys, validator=_retention_map)
    exclude_patterns: tuple[str, ...] = attrs.field(default=(), converter=_tuple, validator=_patterns)
    verify_not_locked: bool = attrs.field(default=True, validator=_validated(check_flag))
    dry_run: bool = attrs.field(default=False, validator=_validated(check_flag))
    max_deletions_per_cycle: int = attrs.field(default=100, validator=_validated(check_count))
    database_only: bool = attrs.field(default=False, validator=_validated(check_flag))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "CleanupConfig":
        return config_from_params(cls, params, KIND)

    def to_params(self) -> dict[str, Any]:
        """The JSON parameters a task of this kind is scheduled with."""
        params = attrs.asdict(self)
        params["modality_retention"] = dict(self.modality_retention)
        params["exclude_patterns"] = list(self.exclude_patterns)
        return params

    def retention_for(self, modality: str) -> float:
        """Days a study of this one modality is kept (the seed's retention_for)."""
        return self.modality_retention.get(modality.strip().upper(), self.default_retention)

    def retention_for_study(self, modalities: tuple[str, ...]) -> float:
        """Days a study with these modalities is kept: the longest retention among those
        of its modalities that have one, else the default."""
        own = [self.modality_retention[m.upper()] for m in modalities if m.upper() in self.modality_retention]
        return max(own) if own else self.default_retention

    def shortest_retention(self) -> float:
        return min([self.default_retention, *self.modality_retention.values()])

    def excluded_by(self, study: StudySummary) -> str | None:
        """The first pattern that protects `study`, if any. A pattern is a shell pattern
        (`*`, `?`, `[...]`, case-insensitive) matched against the patient ID, the study
        UID, the accession number and the study description; `field:pattern` matches one
        of them only (patient_id, study_uid, accession, description)."""
        for pattern in self.exclude_patterns:
            field, separator, rest = pattern.partition(":")
            if separator and field in PATTERN_FIELDS:
                values = [PATTERN_FIELDS[field](study)]
                pattern_text = rest
            else:
                values = [read(study) for read in PATTERN_FIELDS.values()]
                pattern_text = pattern
            if any(fnmatch.fnmatchcase(value.upper(), pattern_text.upper()) for value in values if value):
                return pattern
        return None


def describe(study: StudySummary, **extra: Any) -> dict[str, Any]:
    """A study as a report lists it."""
    return {
        "study_instance_uid": study.study_instance_uid,
        "patient_id": study.patient_id,
        "modalities": list(study.modalities),
        "last_stored_at": when(study.last_stored_at),
        "instances": study.instances,
        "bytes": study.bytes,
        **extra,
    }


@attrs.define
class CleanupRun:
    """One run: walks the candidates, deletes (or would delete) them, keeps the tally."""

    config: CleanupConfig
    ctx: TaskContext
    now: float = attrs.field(factory=time.time)
    candidates: int = 0
    deleted_instances: int = 0
    freed_bytes: int = 0
    limit_reached: bool = False
    deleted: Findings = attrs.field(factory=Findings)  # or, in a dry run, would be deleted
    excluded: Findings = attrs.field(factory=Findings)
    skipped_locked: Findings = attrs.field(factory=Findings)
    changed: Findings = attrs.field(factory=Findings)  # no longer due when its turn came
    failed: Findings = attrs.field(factory=Findings)

    @property
    def started_at(self) -> float:
        return self.now

    def problems(self) -> bool:
        return bool(self.failed)

    async def go(self) -> None:
        index = self.ctx.lookup(INDEX_PATH)
        before = self.now - self.config.shortest_retention() * DAY
        cursor = None
        while True:
            page = await index.ask(ListStudiesStoredBefore(before=before, after=cursor, limit=PAGE))
            for study in page.studies:
                cutoff = self.now - self.config.retention_for_study(study.modalities) * DAY
                if study.last_stored_at >= cutoff:
                    continue  # a modality with a longer retention keeps it
                if self.deleted.count >= self.config.max_deletions_per_cycle:
                    self.limit_reached = True
                    return
                self.candidates += 1
                pattern = self.config.excluded_by(study)
                if pattern is not None:
                    self.excluded.add(describe(study, pattern=pattern))
                elif self.config.dry_run:
                    await self._consider(study)
                else:
                    await self._delete(study, cutoff)
            if page.cursor is None:
                return
            cursor = page.cursor

    async def _consider(self, study: StudySummary) -> None:
        if self.config.verify_not_locked:
            status = await self.ctx.lookup(LOCKS_PATH).ask(IsLocked(study_uid=study.study_instance_uid))
            if status.locked:
                self.skipped_locked.add(describe(study, reason="locked"))
                return
        self.deleted.add(describe(study))

    async def _delete(self, study: StudySummary, cutoff: float) -> None:
        uid = study.study_instance_uid
        request = DeleteStudy(study_instance_uid=uid, stored_before=cutoff, keep_files=self.config.database_only)
        result = None
        try:
            async with study_lock(
                self.ctx.lookup(LOCKS_PATH),
                uid,
                LockType.EXCLUSIVE,
                reason="cleanup: retention ran out",
                holder=holder_name(self.ctx),
                try_only=self.config.verify_not_locked,
            ):
                # Once asked, the study is finished under its lock, even if we are cancelled.
                with trio.CancelScope(shield=True):
                    result = await self.ctx.lookup(INDEX_PATH).ask(request, timeout=DELETE_GRACE)
        except (AlreadyLocked, MaxSharedExceeded):
            self.skipped_locked.add(describe(study, reason="locked"))
            return
        except LockTimeout:
            self.skipped_locked.add(describe(study, reason="still locked when the wait ran out"))
            return
        except LockExpired:
            if result is None:
                raise
            self.ctx.log.warning("the study lock expired while the study was deleted", study_uid=uid)
        except (LockError, IndexFailure, ActorError, AskTimeout) as error:
            self.failed.add(describe(study, error=f"{type(error).__name__}: {error}"))
            return
        if not result.study.retired:
            self.changed.add(describe(study, reason=result.study.reason))
            return
        self.deleted.add(describe(study, instances=result.study.instances, bytes=result.study.bytes))
        self.deleted_instances += result.study.instances
        self.freed_bytes += 0 if self.config.database_only else result.study.bytes
        if result.failed:
            files = [{"file_path": path, "error": why} for path, why in result.failed]
            self.failed.add(describe(study, error="files not removed yet (retried when the node next starts)", files=files))

    def summary(self) -> str:
        verb = "would delete" if self.config.dry_run else "released" if self.config.database_only else "deleted"
        parts = [f"{verb} {sized(self.deleted.count, 'study', 'studies')}"]
        if not self.config.dry_run:
            parts[0] += f" ({sized(self.deleted_instances, 'instance')}, {self.freed_bytes} bytes freed)"
        for findings, what in ((self.skipped_locked, "skipped locked"), (self.excluded, "excluded"),
                               (self.changed, "no longer due"), (self.failed, "failed")):
            if findings:
                parts.append(f"{findings.count} {what}")
        if self.limit_reached:
            parts.append(f"stopped at max_deletions_per_cycle={self.config.max_deletions_per_cycle}")
        return "; ".join(parts)

    def report(self, interrupted: bool) -> dict[str, Any]:
        counts = {
            "candidates": self.candidates,
            "deleted": self.deleted.count,
            "deleted_instances": self.deleted_instances,
            "freed_bytes": self.freed_bytes,
            "excluded": self.excluded.count,
            "skipped_locked": self.skipped_locked.count,
            "changed": self.changed.count,
            "failed": self.failed.count,
        }
        return {
            "kind": KIND,
            "config": self.config.to_params(),
            "as_of": when(self.now),
            "dry_run": self.config.dry_run,
            "database_only": self.config.database_only,
            "interrupted": interrupted,
            "limit_reached": self.limit_reached,
            "counts": counts,
            "would_delete" if self.config.dry_run else "deleted": self.deleted.items,
            "excluded": self.excluded.items,
            "skipped_locked": self.skipped_locked.items,
            "changed": self.changed.items,
            "failed": self.failed.items,
        }


async def cleanup(params: Mapping[str, Any], ctx: TaskContext) -> str | None:
    """The `cleanup` task kind. Fails (with the summary) if any study could not be deleted."""
    return await run_and_report(CleanupRun(CleanupConfig.from_params(params), ctx), ctx, kind=KIND)
