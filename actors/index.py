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

from ..storage.attributes import InstanceRecord
from ..storage.index_db import DuplicatePolicy, IndexCounts, RecordOutcome, index_counts, open_index, record_instances
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


class IndexFailure(ReplyError):
    """The index could not record or read something (the database said why)."""


class IndexActor(Actor):
    accepts = (RecordInstance, CountIndex)

    def __init__(self, database: str, duplicate_policy: DuplicatePolicy = DuplicatePolicy.REPLACE) -> None:
        self.database = database
        self.duplicate_policy = duplicate_policy
        self.commits = 0
        self._pending: list[tuple[InstanceRecord, Reply]] = []
        self._wake = trio.Event()

    async def on_start(self) -> None:
        portal = self.ctx.system.portal
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        self.writer = await portal.run(open_index, self.database)
        self.reader = await portal.run(open_index, self.database)
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
