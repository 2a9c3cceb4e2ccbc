"""The built-in `verification` task kind: do the stored files and the index agree?

Parameters are the seed's verification_config (SDS Workflow, DES-WKF-004 5.1.6), as
JSON; the seed's `interval` and `verification_schedule` are the task's schedule:

| parameter | default | meaning |
|---|---|---|
| check_checksums | true | recompute size and SHA-256 of checked files, compare with the index |
| check_db_consistency | true | rows whose file is gone; files under files/ no row knows |
| check_dicom_structure | false | parse checked files completely, compare their UIDs with the index |
| repair_on_failure | false | re-index orphan files, flag missing and corrupt ones |
| max_verifications_per_cycle | 1000 | files whose content is checked per run |
| hash_algorithm | "SHA256" | the index keeps SHA-256; nothing else is accepted |

What a run does:

1. Content (checksums, structure): the `max_verifications_per_cycle` files checked
   longest ago, never-checked first, so successive runs go round the whole archive.
   The index remembers when each was checked.
2. Consistency: every row's file is looked for (a stat), and every file under
   `<data>/files` is looked up in the index. Not orphans: a store's temp files (hidden,
   `.part`), anything under `<data>/incoming`, files in the deletion journal (a cleanup
   is removing them) and files a database-only cleanup released on purpose.
3. Repair, only with repair_on_failure, and it never deletes anything:
   - a row whose file is missing is flagged `file_status = 'missing'` (the row stays: it
     says what was lost), a file whose checksum differs is flagged `'corrupt'`, a file
     that checks out again is `'ok'`;
   - an orphan file is parsed (storage.attributes.extract_record) and recorded through
     the index actor's `RecordInstance`, where the node's duplicate policy applies, under
     its study's EXCLUSIVE lock (so it cannot be a store in progress that has placed its
     file but not yet indexed it: the lock waits for that store, and the row is looked
     for again under it). An orphan whose SOP instance is indexed at another path is a
     stray copy: reported, left alone.

The report lists every finding (counts exact, lists capped). A run that leaves problems
behind - corrupt, missing or unparseable files, orphans not re-indexed - fails with the
summary as its error, so the scheduler's history and TaskFailed event say so.
"""

import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..actors import ActorError, AskTimeout
from ..actors.node.index import (
    ClassifyPaths,
    FilesToCheck,
    IndexFailure,
    ListIndexedFiles,
    LookupInstanceFiles,
    RecordChecks,
    RecordInstance,
)
from ..actors.node.tiers import HOT_TIER_PATH, CheckObjects, ListObjects, ReadRecord, TierFailure
from ..storage.attributes import InstanceRecord
from ..storage.index_db import Outcome
from ..storage.object_checks import MISSING, ExpectedObject
from ..storage.maintenance import (
    FILE_CORRUPT,
    FILE_MISSING,
    FILE_OK,
    FileCheck,
    IndexedFile,
)
from .locks.client import study_lock
from .locks.types import LockError, LockType
from .maintenance import (
    INDEX_PATH,
    LOCKS_PATH,
    Findings,
    check_count,
    check_flag,
    config_from_params,
    holder_name,
    run_and_report,
    sized,
    when,
)
from .tasks.kinds import TaskContext

KIND = "verification"
CONTENT_BATCH = 32  # files hashed per worker-thread call: a cancellation waits for one batch at most
ROW_PAGE = 1000  # rows looked for per page
WALK_BATCH = 500  # files found on disk looked up per question to the index
FILES = "files/"  # the hot tier's stored instances (not its incoming area)
SUPPORTED_HASHES = ("SHA256", "SHA-256")


def _validated(check):
    def validate(_: object, attribute: attrs.Attribute, value: object) -> None:
        problem = check(attribute.name, value)
        if problem is not None:
            raise ValueError(problem)

    return validate


def _hash_algorithm(_: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or value.upper() not in SUPPORTED_HASHES:
        raise ValueError(f"{attribute.name} must be SHA256 (the checksum the index keeps), got {value!r}")


@attrs.frozen(kw_only=True)
class VerificationConfig:
    """The seed's verification_config (its schedule is the task's)."""

    check_checksums: bool = attrs.field(default=True, validator=_validated(check_flag))
    check_db_consistency: bool = attrs.field(default=True, validator=_validated(check_flag))
    check_dicom_structure: bool = attrs.field(default=False, validator=_validated(check_flag))
    repair_on_failure: bool = attrs.field(default=False, validator=_validated(check_flag))
    max_verifications_per_cycle: int = attrs.field(default=1000, validator=_validated(check_count))
    hash_algorithm: str = attrs.field(default="SHA256", validator=_hash_algorithm)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "VerificationConfig":
        return config_from_params(cls, params, KIND)

    def to_params(self) -> dict[str, Any]:
        return attrs.asdict(self)


# -- one run ----------------------------------------------------------------------------------


def _uids(file: IndexedFile) -> tuple[tuple[str, str], ...]:
    return (
        ("SOPInstanceUID", file.sop_instance_uid),
        ("SOPClassUID", file.sop_class_uid),
        ("StudyInstanceUID", file.study_instance_uid),
        ("SeriesInstanceUID", file.series_instance_uid),
    )


def _file(file: IndexedFile, **extra: Any) -> dict[str, Any]:
    return {"file_path": file.file_path, "sop_instance_uid": file.sop_instance_uid, "study_instance_uid": file.study_instance_uid, **extra}


@attrs.define
class VerificationRun:
    config: VerificationConfig
    ctx: TaskContext
    started_at: float = attrs.field(factory=time.time)
    content_checked: int = 0
    rows_checked: int = 0
    files_found: int = 0
    corrupt: Findings = attrs.field(factory=Findings)
    structure_errors: Findings = attrs.field(factory=Findings)
    unreadable: Findings = attrs.field(factory=Findings)
    missing: Findings = attrs.field(factory=Findings)
    orphans: Findings = attrs.field(factory=Findings)
    reindexed: Findings = attrs.field(factory=Findings)
    duplicates: Findings = attrs.field(factory=Findings)
    not_repaired: Findings = attrs.field(factory=Findings)
    marked: dict[str, int] = attrs.field(factory=lambda: {FILE_MISSING: 0, FILE_CORRUPT: 0, FILE_OK: 0})
    missing_files: dict[str, IndexedFile] = attrs.field(factory=dict, init=False)  # all of them, by path
    orphan_paths: list[str] = attrs.field(factory=list, init=False)  # all of them

    @property
    def index(self):
        return self.ctx.lookup(INDEX_PATH)

    @property
    def tier(self):
        return self.ctx.lookup(HOT_TIER_PATH)

    async def go(self) -> None:
        if self.config.check_checksums or self.config.check_dicom_structure:
            await self._check_contents()
        if self.config.check_db_consistency:
            await self._find_missing()
            await self._find_orphans()
        for file in self.missing_files.values():
            self.missing.add(_file(file, flagged_before=file.file_status == FILE_MISSING))
        if self.config.repair_on_failure:
            await self._mark_missing()
            for path in self.orphan_paths:
                await self._reindex(path)

    # 1. content

    async def _check_contents(self) -> None:
        files = (await self.index.ask(FilesToCheck(limit=self.config.max_verifications_per_cycle))).files
        for start in range(0, len(files), CONTENT_BATCH):
            batch = files[start : start + CONTENT_BATCH]
            checks = []
            for file, result in zip(batch, await self._ask_tier(batch, self.config.check_checksums, self.config.check_dicom_structure)):
                self.content_checked += 1
                status = None
                match result.outcome:
                    case "corrupt":
                        self.corrupt.add(_file(file, problem=result.detail))
                        status = FILE_CORRUPT
                    case "missing":
                        self.missing_files[file.file_path] = file
                        continue  # marked (or not) with the other missing files
                    case "structure":
                        self.structure_errors.add(_file(file, problem=result.detail))
                    case "unreadable":
                        self.unreadable.add(_file(file, problem=result.detail))
                        continue  # not checked: try again next time
                    case _:
                        status = FILE_OK
                checks.append(self._check(file, status))
            await self._record(checks)

    async def _ask_tier(self, files: Sequence[IndexedFile], checksums: bool, structure: bool):
        """The hot tier's checks of these files, in their order."""
        expected = tuple(
            ExpectedObject(
                key=file.file_path, size=file.file_size, sha256=file.sha256, checksum=checksums,
                uids=_uids(file) if structure else (),
            )
            for file in files
        )
        return (await self.tier.ask(CheckObjects(expected=expected), timeout=None)).checks

    def _check(self, file: IndexedFile, status: str | None) -> FileCheck:
        if not self.config.repair_on_failure:
            status = None  # only a repairing run changes what the index says of a file
        elif status is not None and status != file.file_status:
            self.marked[status] += 1
        return FileCheck(sop_instance_uid=file.sop_instance_uid, file_path=file.file_path, sha256=file.sha256, status=status)

    async def _record(self, checks: list[FileCheck]) -> None:
        if checks:
            await self.index.ask(RecordChecks(checks=tuple(checks)))

    # 2. consistency

    async def _find_missing(self) -> None:
        after = 0
        while True:
            page = (await self.index.ask(ListIndexedFiles(after_pk=after, limit=ROW_PAGE))).files
            if not page:
                break
            self.rows_checked += len(page)
            for file, result in zip(page, await self._ask_tier(page, checksums=False, structure=False)):
                if result.outcome == MISSING:
                    self.missing_files.setdefault(file.file_path, file)
            after = page[-1].pk

    async def _find_orphans(self) -> None:
        """Every stored file the hot tier lists, looked up in the index: those it does
        not know are orphans. (A store's temp files are not objects the tier lists.)"""
        cursor = None
        while True:
            page = await self.tier.ask(ListObjects(prefix=FILES, cursor=cursor, limit=WALK_BATCH), timeout=None)
            batch = [found.key for found in page.objects]
            self.files_found += len(batch)
            if batch:
                known = (await self.index.ask(ClassifyPaths(paths=tuple(batch)))).classes.known()
                for path in batch:
                    if path not in known:
                        self.orphan_paths.append(path)
                        self.orphans.add({"file_path": path})
            if page.cursor is None:
                return
            cursor = page.cursor

    # 3. repair

    async def _mark_missing(self) -> None:
        await self._record([self._check(file, FILE_MISSING) for file in self.missing_files.values()])

    async def _reindex(self, path: str) -> None:
        try:
            record = (await self.tier.ask(ReadRecord(key=path), timeout=None)).record
        except TierFailure as error:
            if not error.missing:
                self.not_repaired.add({"file_path": path, "reason": f"cannot be indexed: {error}"})
            return  # else gone meanwhile (a cleanup finished removing it): nothing to repair
        try:
            async with study_lock(
                self.ctx.lookup(LOCKS_PATH),
                record.study_instance_uid,
                LockType.EXCLUSIVE,
                reason="verification: re-index an orphan file",
                holder=holder_name(self.ctx),
            ):
                await self._reindex_locked(path, record)
        except LockError as error:
            self.not_repaired.add({"file_path": path, "reason": f"its study stayed locked: {error}"})
        except (IndexFailure, ActorError, AskTimeout) as error:
            self.not_repaired.add({"file_path": path, "reason": f"the index refused it: {error}"})

    async def _reindex_locked(self, path: str, record: InstanceRecord) -> None:
        classes = (await self.index.ask(ClassifyPaths(paths=(path,)))).classes
        if path in classes.known():
            return  # a store or a cleanup got to it while we looked: not an orphan after all
        indexed = (await self.index.ask(LookupInstanceFiles(sop_instance_uids=(record.sop_instance_uid,)))).paths
        if record.sop_instance_uid in indexed:
            self.duplicates.add({"file_path": path, "sop_instance_uid": record.sop_instance_uid, "indexed_file": indexed[record.sop_instance_uid]})
            return
        outcome = (await self.index.ask(RecordInstance(record=record), timeout=None)).outcome
        entry = {"file_path": path, "sop_instance_uid": record.sop_instance_uid, "study_instance_uid": record.study_instance_uid}
        if outcome.outcome in (Outcome.STORED, Outcome.REPLACED):
            self.reindexed.add(entry)
        else:  # the duplicate policy kept an instance indexed meanwhile
            self.duplicates.add({**entry, "indexed_file": outcome.previous_path})

    # the outcome

    def problems(self) -> int:
        unrepaired_orphans = self.orphans.count - self.reindexed.count if self.config.repair_on_failure else self.orphans.count
        return self.corrupt.count + self.structure_errors.count + self.unreadable.count + self.missing.count + unrepaired_orphans

    def summary(self) -> str:
        parts = [f"checked {sized(self.content_checked, 'file')}"]
        if self.config.check_db_consistency:
            parts[0] += f", {sized(self.rows_checked, 'row')} and {sized(self.files_found, 'file')} on disk"
        for findings, one, many in (
            (self.corrupt, "checksum mismatch", "checksum mismatches"),
            (self.structure_errors, "structure error", None),
            (self.unreadable, "unreadable file", None),
            (self.missing, "missing file", None),
            (self.orphans, "orphan file", None),
            (self.reindexed, "re-indexed", "re-indexed"),
            (self.duplicates, "stray copy", "stray copies"),
            (self.not_repaired, "not repaired", "not repaired"),
        ):
            if findings:
                parts.append(sized(findings.count, one, many))
        if not self.problems():
            parts.append("no problems")
        return "; ".join(parts)

    def report(self, interrupted: bool) -> dict[str, Any]:
        counts = {
            "content_checked": self.content_checked,
            "rows_checked": self.rows_checked,
            "files_found": self.files_found,
            "checksum_mismatches": self.corrupt.count,
            "structure_errors": self.structure_errors.count,
            "unreadable": self.unreadable.count,
            "missing_files": self.missing.count,
            "orphan_files": self.orphans.count,
            "reindexed": self.reindexed.count,
            "stray_copies": self.duplicates.count,
            "not_repaired": self.not_repaired.count,
            "problems": self.problems(),
        }
        return {
            "kind": KIND,
            "config": self.config.to_params(),
            "as_of": when(self.started_at),
            "interrupted": interrupted,
            "counts": counts,
            "marked": dict(self.marked) if self.config.repair_on_failure else {},
            "checksum_mismatches": self.corrupt.items,
            "structure_errors": self.structure_errors.items,
            "unreadable": self.unreadable.items,
            "missing_files": self.missing.items,
            "orphan_files": self.orphans.items,
            "reindexed": self.reindexed.items,
            "stray_copies": self.duplicates.items,
            "not_repaired": self.not_repaired.items,
        }


async def verification(params: Mapping[str, Any], ctx: TaskContext) -> str | None:
    """The `verification` task kind. Fails (with the summary) when problems remain."""
    return await run_and_report(VerificationRun(VerificationConfig.from_params(params), ctx), ctx, kind=KIND)
