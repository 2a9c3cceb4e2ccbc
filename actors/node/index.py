"""The index actor: the one owner of the SQLite index.

Writes are serialized and committed in groups: every RecordInstance that arrives while
a commit is running joins the next one, so N concurrent stores cost one transaction and
one WAL fsync, yet no store is answered before the commit that holds it is durable.
Reads run beside the writes on a second connection (WAL lets readers and the writer
proceed together), each as its own task, so a long C-FIND never holds up a store.

Each connection has its own database thread (actors/runtime/database_thread.py), which
runs the storage functions - plain functions of a sqlite3 connection - one call per
request: a group commit is one crossing, a C-FIND page is one crossing. The reader's
connection is opened query-only, so this actor is the one writer of the index file,
through one connection. A cancelled read is interrupted; a cancelled write finishes
(it commits or rolls back on the thread) and its result is dropped.

Maintenance (the cleanup and verification tasks) goes through here too, so the index
keeps one writer: listing studies past their retention and files to verify, deleting a
study crash-safely (storage/deletion.py: rows and a journal of their files in one
transaction, then the files, then the journal entries), recording check outcomes and
keeping run reports. Each is one transaction on the writer thread - one call, so it
never splits a group commit - and runs beside the mailbox like the reads. When it
opens the index, the actor first finishes any deletion a crash interrupted, before it
serves anyone.
"""

import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from pydicom import Dataset

from ...storage.attributes import InstanceRecord
from ...storage.deletion import Removal, RetiredStudy, forget_deletions, pending_deletions, retire_study
from ...storage.errors import QueryError
from ...storage.index_db import DuplicatePolicy, IndexCounts, RecordOutcome, index_counts, open_index, record_instances
from ...storage.maintenance import (
    FileCheck,
    IndexedFile,
    PathClasses,
    StoredReport,
    StudyCursor,
    StudySummary,
    classify_paths,
    files_to_check,
    indexed_file,
    indexed_files_after,
    record_checks,
    save_report,
    stored_reports,
    studies_stored_before,
)
from ...storage.query import (
    InformationModel,
    QueryOptions,
    RetrieveItem,
    find_page,
    plan_find,
    plan_retrieve,
    retrieve_items,
    stored_syntaxes,
)
from ...storage.sql import in_transaction
from ...storage.study_view import StudyView, study_view
from ..runtime.actor import Actor
from ..runtime.database_thread import DatabaseThread
from ..runtime.errors import ActorError, ReplyError
from ..runtime.mailbox import Reply
from ..runtime.messages import message
from ..runtime.resources import FileResource
from .dimse_n_events import WorklistChanged
from .index_dimse_n import DEFAULT_EXPIRE_AFTER, DIMSE_N_REQUESTS, AddWorklistItems, dimse_n_reply
from .index_hsm import HSM_READS, HSM_WRITES, hsm_request
from .tiers import HOT_TIER_PATH, RemoveObjects

MAX_BATCH = 256


@message("index.record")
class RecordInstance:
    record: InstanceRecord


@message("index.recorded")
class Recorded:
    outcome: RecordOutcome


@message("index.count")
class CountIndex:
    pass


@message("index.counts")
class IndexCountsReply:
    counts: IndexCounts


@message("index.find")
class FindMatches:
    """One page of C-FIND responses; start with cursor 0, go on with the cursor returned."""

    identifier: Dataset
    model: InformationModel
    cursor: int = 0
    size: int = 50
    retrieve_ae_title: str = ""
    options: QueryOptions = QueryOptions()
    as_json: bool = False  # answer with a JsonMatchPage (QIDO-RS): the same responses as DICOM JSON


@message("index.matches")
class MatchPage:
    responses: tuple[Dataset, ...]
    cursor: int | None  # None: there are no more


@message("index.json-matches")
class JsonMatchPage:
    matches: tuple[dict[str, Any], ...]
    cursor: int | None


@message("index.list-instances")
class ListInstances:
    """Every stored instance a C-MOVE/C-GET identifier names."""

    identifier: Dataset
    model: InformationModel


@message("index.instances")
class InstanceList:
    items: tuple[RetrieveItem, ...]


@message("index.list-held-syntaxes")
class ListHeldSyntaxes:
    """Which transfer syntaxes the instances of these SOP classes are stored in (what
    a C-GET association's storage contexts should be accepted in)."""

    sop_classes: tuple[str, ...]


@message("index.held-syntaxes")
class HeldSyntaxes:
    by_class: dict[str, tuple[str, ...]]  # only the classes asked for that have instances


# -- maintenance (cleanup and verification tasks) ------------------------------------------


@message("index.list-studies-stored-before")
class ListStudiesStoredBefore:
    """Studies whose newest instance arrived before `before` (epoch seconds), oldest
    first, one page after `after` (the cursor of the previous page)."""

    before: float
    after: StudyCursor | None = None
    limit: int = 200


@message("index.study-page")
class StudyPage:
    studies: tuple[StudySummary, ...]
    cursor: StudyCursor | None  # None: there are no more


@message("index.describe-study")
class DescribeStudy:
    """One study as the admin API shows it (StudyDescription; its study is None when
    the index has no such study)."""

    study_instance_uid: str


@message("index.study-description")
class StudyDescription:
    study: StudyView | None


@message("index.delete-study")
class DeleteStudy:
    """Delete a study crash-safely (storage/deletion.py): its rows and a journal of its
    files in one transaction, then the files, then the journal entries. Only if no
    instance arrived at or after `stored_before` (when given). `keep_files`: take it out
    of the index but leave its files, recorded as released."""

    study_instance_uid: str
    stored_before: float | None = None
    keep_files: bool = False


@message("index.study-deleted")
class StudyDeleted:
    study: RetiredStudy
    removed: int = 0  # files removed (or found gone already)
    failed: tuple[tuple[str, str], ...] = ()  # (path, why): still journaled, retried at the next start


@attrs.frozen
class DeletionsFinished:
    """What finishing journaled deletions did (at start, or after a DeleteStudy)."""

    removed: int
    in_use: int  # journaled paths a row names again: kept
    failed: tuple[tuple[str, str], ...] = ()


@message("index.list-files")
class ListIndexedFiles:
    """Local files in row order, one page after row `after_pk`."""

    after_pk: int = 0
    limit: int = 1000


@message("index.files-to-check")
class FilesToCheck:
    """The `limit` local files checked longest ago (never checked first)."""

    limit: int = 1000


@message("index.indexed-files")
class IndexedFiles:
    files: tuple[IndexedFile, ...]


@message("index.lookup-instance-files")
class LookupInstanceFiles:
    sop_instance_uids: tuple[str, ...]


@message("index.instance-files")
class InstanceFiles:
    paths: dict[str, str]  # SOP Instance UID -> file path, for the instances indexed


@message("index.classify-paths")
class ClassifyPaths:
    """Which of these paths (relative to the storage root) the index knows, and as what."""

    paths: tuple[str, ...]


@message("index.path-classes")
class PathClassesReply:
    classes: PathClasses


@message("index.record-checks")
class RecordChecks:
    checks: tuple[FileCheck, ...]


@message("index.checks-recorded")
class ChecksRecorded:
    updated: int


@message("index.save-report")
class SaveReport:
    report: StoredReport
    keep_last: int = 100


@message("index.get-reports")
class GetReports:
    """Run reports, newest first: of one task, or of all (task_id None)."""

    task_id: str | None = None
    limit: int = 100


@message("index.reports")
class Reports:
    reports: tuple[StoredReport, ...]


MAINTENANCE_READS = (ListStudiesStoredBefore, DescribeStudy, ListIndexedFiles, FilesToCheck, LookupInstanceFiles, ClassifyPaths, GetReports)
MAINTENANCE_WRITES = (DeleteStudy, RecordChecks, SaveReport)


class IndexFailure(ReplyError):
    """The index could not record or read something (the database said why)."""


class QueryRefused(ReplyError):
    """The identifier cannot be answered (a DIMSE status and comment say why)."""

    def __init__(self, status: int, comment: str, reason: str | None = None) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment  # fits an Error Comment
        self.reason = reason or comment  # whole, for the log


class IndexActor(Actor):
    accepts = (
        RecordInstance, CountIndex, FindMatches, ListInstances, ListHeldSyntaxes,
        *MAINTENANCE_READS, *MAINTENANCE_WRITES, *DIMSE_N_REQUESTS, *HSM_READS, *HSM_WRITES,
    )
    # A replay runs the index on a copy of the database with its WAL or rollback journal
    # (committed rows may live there). Files it never touches: the hot tier removes
    # them when asked, and a replay has no tier actors, so the journal keeps them.
    resources = {"database": FileResource(companions=("-wal", "-journal"))}

    def __init__(
        self,
        database: str,
        duplicate_policy: DuplicatePolicy = DuplicatePolicy.REPLACE,
        synchronous: str = "FULL",
        tier_path: str = HOT_TIER_PATH,
        worklist_expire_after: float = DEFAULT_EXPIRE_AFTER,
    ) -> None:
        """`tier_path`: the hot tier, owner of the files the index's paths name (it
        removes those of deleted studies). `worklist_expire_after`: seconds after its
        scheduled start a worklist item is no longer offered."""
        self.database = database
        self.worklist_expire_after = worklist_expire_after
        self.duplicate_policy = duplicate_policy
        self.tier_path = tier_path
        self.synchronous = synchronous  # FULL: a commit is on disk before it returns; NORMAL: the OS flushes it
        self.commits = 0
        self._pending: list[tuple[InstanceRecord, Reply]] = []
        self._wake = trio.Event()
        # SOP class -> transfer syntaxes stored: read once at start, grown by every commit.
        # Deletions leave it a superset, which costs at most a needless conversion choice.
        self._held: dict[str, set[str]] = {}

    async def on_start(self) -> None:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        # The writer first: it creates and migrates the file the reader then opens.
        self.writer = DatabaseThread(partial(open_index, self.database, synchronous=self.synchronous), name="index-writer")
        await self.writer.start()
        self.reader = DatabaseThread(
            partial(open_index, self.database, synchronous=self.synchronous, query_only=True),
            name="index-reader",
            interrupt_on_cancel=True,
        )
        await self.reader.start()
        # Before anyone is served: finish the deletions a crash interrupted.
        finished = await self._finish_deletions(None)
        if finished.removed or finished.in_use or finished.failed:
            self.ctx.log.warning(
                "finished interrupted deletions", removed=finished.removed, in_use=finished.in_use, failed=list(finished.failed)
            )
        self._held = await self._in_reader(stored_syntaxes)
        self.ctx.nursery.start_soon(self._commit_forever)

    async def on_stop(self) -> None:
        for thread in (getattr(self, "reader", None), getattr(self, "writer", None)):
            if thread is not None:
                await thread.aclose()  # after the calls already asked of it

    async def handle(self, message):
        match message:
            case RecordInstance(record=record):
                self._pending.append((record, self.ctx.defer_reply()))
                self._wake.set()
            case CountIndex():
                counts = await self.reader.run(index_counts)
                return IndexCountsReply(counts=counts)
            case FindMatches() | ListInstances():
                # Reads run beside the mailbox, so a long query never holds up a store.
                self.ctx.nursery.start_soon(self._read, message, self.ctx.defer_reply())
            case ListHeldSyntaxes(sop_classes=sop_classes):
                return HeldSyntaxes(
                    by_class={uid: tuple(sorted(self._held[uid])) for uid in sop_classes if uid in self._held}
                )
            case _ if isinstance(message, MAINTENANCE_READS + MAINTENANCE_WRITES):
                self.ctx.nursery.start_soon(self._maintain, message, self.ctx.defer_reply())
            case _ if isinstance(message, DIMSE_N_REQUESTS):
                self.ctx.nursery.start_soon(self._dimse_n, message, self.ctx.defer_reply())
            case _ if isinstance(message, HSM_READS + HSM_WRITES):
                self.ctx.nursery.start_soon(self._hsm, message, self.ctx.defer_reply())

    async def _read(self, message: FindMatches | ListInstances, reply: Reply) -> None:
        try:
            match message:
                case FindMatches(identifier=identifier, model=model, cursor=cursor, size=size, retrieve_ae_title=aet, options=options,
                                 as_json=as_json):
                    plan = plan_find(identifier, model, options)
                    page = await self.reader.run(
                        partial(find_page, cursor=cursor, size=size, retrieve_ae_title=aet or None, as_json=as_json), plan
                    )
                    if as_json:
                        reply.send(JsonMatchPage(matches=tuple(page.responses), cursor=page.cursor))
                    else:
                        reply.send(MatchPage(responses=tuple(page.responses), cursor=page.cursor))
                case ListInstances(identifier=identifier, model=model):
                    items = await self.reader.run(retrieve_items, plan_retrieve(identifier, model))
                    reply.send(InstanceList(items=tuple(items)))
        except QueryError as error:
            reply.fail(QueryRefused(error.status, error.comment, error.reason))
        except Exception as error:
            self.ctx.log.exception("index read failed", request=type(message).__name__)
            reply.fail(IndexFailure(f"index read failed: {error}"))

    async def _commit_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._commit(batch)

    async def _commit(self, batch: Sequence[tuple[InstanceRecord, Reply]]) -> None:
        records = [record for record, _ in batch]
        try:
            outcomes = await self.writer.run(record_instances, records, self.duplicate_policy)
        except Exception as error:
            if len(batch) == 1:
                self.ctx.log.error("index write failed", sop_instance_uid=records[0].sop_instance_uid, error=str(error))
                batch[0][1].fail(IndexFailure(f"index write failed: {error}"))
                return
            # One bad record must not fail its neighbours: retry them one by one.
            for item in batch:
                await self._commit([item])
            return
        self.commits += 1
        for record in records:
            self._held.setdefault(record.sop_class_uid, set()).add(record.transfer_syntax_uid)
        for (_, reply), outcome in zip(batch, outcomes, strict=True):
            reply.send(Recorded(outcome=outcome))


    # -- worklist, performed procedure steps, storage commitment ------------------------------

    async def _dimse_n(self, message, reply: Reply) -> None:
        try:
            reply.send(
                await dimse_n_reply(
                    message, read=self._in_reader, write=self._in_transaction, expire_after=self.worklist_expire_after
                )
            )
            if isinstance(message, AddWorklistItems):  # once committed: the prefetcher follows the worklist
                self.ctx.publish(WorklistChanged(items=message.items))
        except ReplyError as error:
            reply.fail(error)
        except QueryError as error:
            reply.fail(QueryRefused(error.status, error.comment, error.reason))
        except Exception as error:
            self.ctx.log.exception("index request failed", request=type(message).__name__)
            reply.fail(IndexFailure(f"index request failed: {error}"))

    # -- maintenance -------------------------------------------------------------------------

    async def _maintain(self, message, reply: Reply) -> None:
        try:
            reply.send(await self._maintenance(message))
        except Exception as error:
            self.ctx.log.exception("index maintenance failed", request=type(message).__name__)
            reply.fail(IndexFailure(f"index maintenance failed: {error}"))

    async def _hsm(self, message, reply: Reply) -> None:
        try:
            reply.send(await hsm_request(message, self._in_reader, self._in_transaction))
        except Exception as error:
            self.ctx.log.exception("index HSM request failed", request=type(message).__name__)
            reply.fail(IndexFailure(f"index HSM request failed: {error}"))

    async def _in_reader(self, fn, *args):
        return await self.reader.run(fn, *args)

    async def _in_transaction(self, fn, *args):
        # One call, one transaction: it runs between two group commits, never inside one.
        return await self.writer.run(in_transaction, fn, *args)

    async def _maintenance(self, message):
        match message:
            case ListStudiesStoredBefore(before=before, after=after, limit=limit):
                studies, cursor = await self._in_reader(studies_stored_before, before, after, limit)
                return StudyPage(studies=tuple(studies), cursor=cursor)
            case DescribeStudy(study_instance_uid=uid):
                return StudyDescription(study=await self._in_reader(study_view, uid))
            case ListIndexedFiles(after_pk=after_pk, limit=limit):
                return IndexedFiles(files=tuple(await self._in_reader(indexed_files_after, after_pk, limit)))
            case FilesToCheck(limit=limit):
                return IndexedFiles(files=tuple(await self._in_reader(files_to_check, limit)))
            case LookupInstanceFiles(sop_instance_uids=uids):
                return InstanceFiles(paths=await self._in_reader(indexed_file, uids))
            case ClassifyPaths(paths=paths):
                return PathClassesReply(classes=await self._in_reader(classify_paths, paths))
            case GetReports(task_id=task_id, limit=limit):
                return Reports(reports=tuple(await self._in_reader(stored_reports, task_id, limit)))
            case DeleteStudy(study_instance_uid=uid, stored_before=stored_before, keep_files=keep_files):
                study = await self._in_transaction(retire_study, uid, stored_before, keep_files, time.time())
                if not study.paths:
                    return StudyDeleted(study=study)
                finished = await self._finish_deletions(study.paths)
                return StudyDeleted(study=study, removed=finished.removed, failed=finished.failed)
            case RecordChecks(checks=checks):
                return ChecksRecorded(updated=await self._in_transaction(record_checks, checks, time.time()))
            case SaveReport(report=report, keep_last=keep_last):
                await self._in_transaction(save_report, report, keep_last)
        return None

    async def _remove_files(self, paths: tuple[str, ...]) -> Removal:
        """Step 2, by the files' owner; if it cannot be asked they stay journaled."""
        try:
            removed = await self.ctx.lookup(self.tier_path).ask(RemoveObjects(keys=paths), timeout=None)
        except (ReplyError, ActorError) as error:
            return Removal(done=(), failed=tuple((path, str(error)) for path in paths))
        return Removal(done=removed.done, failed=removed.failed)

    async def _finish_deletions(self, paths: Sequence[str] | None) -> DeletionsFinished:
        """Steps 2 and 3 of a deletion (storage/deletion.py) for the journaled `paths`,
        or for the whole journal. Files a row names again are kept."""
        pending = await self._in_reader(pending_deletions, paths)
        removal = Removal(done=(), failed=())
        if pending.remove:
            removal = await self._remove_files(pending.remove)
        settled = [*removal.done, *pending.in_use]
        if settled:
            await self._in_transaction(forget_deletions, settled)
        return DeletionsFinished(removed=len(removal.done), in_use=len(pending.in_use), failed=removal.failed)
