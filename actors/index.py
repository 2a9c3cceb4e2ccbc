"""The index actor: the one owner of the SQLite index.

Writes are serialized and committed in groups: every RecordInstance that arrives while
a commit is running joins the next one, so N concurrent stores cost one transaction and
one WAL fsync, yet no store is answered before the commit that holds it is durable.
Reads run beside the writes on a second connection (WAL lets readers and the writer
proceed together), each as its own task, so a long C-FIND never holds up a store.

Everything touching aiosqlite crosses into the node's asyncio portal once per whole
operation (a batch, a fetch of matches).
"""

from collections.abc import Sequence
from pathlib import Path

import trio

from pydicom import Dataset

from ..storage.attributes import InstanceRecord
from ..storage.errors import QueryError
from ..storage.index_db import DuplicatePolicy, IndexCounts, RecordOutcome, index_counts, open_index, record_instances
from ..storage.query import InformationModel, RetrieveItem, find_page, plan_find, plan_retrieve, retrieve_items
from .actor import Actor
from .errors import ReplyError
from .mailbox import Reply
from .messages import message

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


@message("index.matches")
class MatchPage:
    responses: tuple[Dataset, ...]
    cursor: int | None  # None: there are no more


@message("index.list-instances")
class ListInstances:
    """Every stored instance a C-MOVE/C-GET identifier names."""

    identifier: Dataset
    model: InformationModel


@message("index.instances")
class InstanceList:
    items: tuple[RetrieveItem, ...]


class IndexFailure(ReplyError):
    """The index could not record or read something (the database said why)."""


class QueryRefused(ReplyError):
    """The identifier cannot be answered (a DIMSE status and comment say why)."""

    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment


class IndexActor(Actor):
    accepts = (RecordInstance, CountIndex, FindMatches, ListInstances)

    def __init__(
        self, database: str, duplicate_policy: DuplicatePolicy = DuplicatePolicy.REPLACE, synchronous: str = "FULL"
    ) -> None:
        self.database = database
        self.duplicate_policy = duplicate_policy
        self.synchronous = synchronous  # FULL: a commit is on disk before it returns; NORMAL: the OS flushes it
        self.commits = 0
        self._pending: list[tuple[InstanceRecord, Reply]] = []
        self._wake = trio.Event()

    async def on_start(self) -> None:
        portal = self.ctx.system.portal
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        self.writer = await portal.run(lambda: open_index(self.database, synchronous=self.synchronous))
        self.reader = await portal.run(lambda: open_index(self.database, synchronous=self.synchronous))
        self.ctx.nursery.start_soon(self._commit_forever)

    async def on_stop(self) -> None:
        portal = self.ctx.system.portal
        for connection in (getattr(self, "writer", None), getattr(self, "reader", None)):
            if connection is not None:
                await portal.run(connection.close)

    async def handle(self, message):
        match message:
            case RecordInstance(record=record):
                self._pending.append((record, self.ctx.defer_reply()))
                self._wake.set()
            case CountIndex():
                counts = await self.ctx.system.portal.run(index_counts, self.reader)
                return IndexCountsReply(counts=counts)
            case FindMatches() | ListInstances():
                # Reads run beside the mailbox, so a long query never holds up a store.
                self.ctx.nursery.start_soon(self._read, message, self.ctx.defer_reply())

    async def _read(self, message: FindMatches | ListInstances, reply: Reply) -> None:
        portal = self.ctx.system.portal
        try:
            match message:
                case FindMatches(identifier=identifier, model=model, cursor=cursor, size=size, retrieve_ae_title=aet):
                    plan = plan_find(identifier, model)
                    page = await portal.run(
                        lambda: find_page(self.reader, plan, cursor=cursor, size=size, retrieve_ae_title=aet or None)
                    )
                    reply.send(MatchPage(responses=tuple(page.responses), cursor=page.cursor))
                case ListInstances(identifier=identifier, model=model):
                    items = await portal.run(retrieve_items, self.reader, plan_retrieve(identifier, model))
                    reply.send(InstanceList(items=tuple(items)))
        except QueryError as error:
            reply.fail(QueryRefused(error.status, error.comment))
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
        portal = self.ctx.system.portal
        records = [record for record, _ in batch]
        try:
            outcomes = await portal.run(record_instances, self.writer, records, self.duplicate_policy)
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
        for (_, reply), outcome in zip(batch, outcomes, strict=True):
            reply.send(Recorded(outcome=outcome))
