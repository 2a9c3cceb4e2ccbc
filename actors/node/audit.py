"""/node/services/audit: the audit trail's one writer (storage/audit_log.py).

Records arrive in its mailbox (`RecordAudit`, an ask): the association for each
association accepted or rejected, the services for each C-STORE, C-FIND, C-MOVE and
C-GET, the listener for TLS refusals, the admin API for its data reads and changes and
its logins. The answer comes once the record is written - with sync = fsync, on disk -
so an operation is answered only after its record is safe.

Group commit (sync = fsync): records that arrive while a write is under way wait for
the next one, and a whole batch shares one write and one fsync, on a thread; so many
associations storing at once pay for one fsync per batch, not one each. With sync = os
a record is written at once, in the actor (a write into the page cache).

Senders use `audit()` below: it waits a bounded time (a stuck disk must not hold a
C-STORE for long), and a record it could not deliver is logged as an error.
"""

from __future__ import annotations

from pathlib import Path

import structlog
import trio

from ...storage.audit_log import AuditLog
from ...storage.audit_records import AuditRecord, record_fields
from ..runtime.actor import Actor
from ..runtime.errors import ActorError
from ..runtime.mailbox import Reply
from ..runtime.messages import message
from ..runtime.resources import FileResource
from ..runtime.threads import run_sync_in_thread

AUDIT_PATH = "/node/services/audit"
AUDIT_WAIT = 5.0  # seconds a sender waits for its record before going on without it
MAX_BATCH = 4096


@message("audit.record")
class RecordAudit:
    record: AuditRecord


@message("audit.recorded")
class AuditRecorded:
    seq: int


@message("audit.status")
class GetAuditStatus:
    pass


@message("audit.state")
class AuditStatus:
    records: int  # written since the actor started
    batches: int  # writes (and fsyncs) they took
    head_seq: int
    head: str


class AuditActor(Actor):
    accepts = (RecordAudit, GetAuditStatus)
    resources = {"path": FileResource()}
    # What it writes depends on the wall clock and the file: a replay takes its answers as recorded.
    replayable = False

    def __init__(self, path: str, *, source: str, fsync: bool = True, rotate_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = path
        self.source = source
        self.fsync = fsync
        self.rotate_bytes = rotate_bytes
        self._pending: list[tuple[dict, Reply]] = []
        self._wake = trio.Event()
        self.records = 0
        self.batches = 0

    async def on_start(self) -> None:
        self.log_file = await run_sync_in_thread(
            lambda: AuditLog.open(Path(self.path), fsync=self.fsync, rotate_bytes=self.rotate_bytes)
        )
        if self.log_file.cut:
            self.ctx.log.warning("cut a torn last audit record (written when the node stopped mid-write)", bytes=self.log_file.cut)
        self.ctx.nursery.start_soon(self._write_forever)

    async def on_stop(self) -> None:
        log_file = getattr(self, "log_file", None)
        if log_file is not None:
            if self._pending:  # what arrived before the stop is still written
                await self._write_batch()
            log_file.close()

    async def handle(self, message):
        match message:
            case RecordAudit(record=record):
                if not self.fsync:
                    # Nothing to wait for but a write into the page cache: done here,
                    # without a thread crossing.
                    [seq] = self.log_file.append([record_fields(record)], self.source)
                    self.records += 1
                    self.batches += 1
                    return AuditRecorded(seq=seq)
                self._pending.append((record_fields(record), self.ctx.defer_reply()))
                self._wake.set()
            case GetAuditStatus():
                return AuditStatus(records=self.records, batches=self.batches, head_seq=self.log_file.seq, head=self.log_file.head)

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._pending:
                await self._write_batch()

    async def _write_batch(self) -> None:
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        try:
            with trio.CancelScope(shield=True):  # a started write finishes and is answered
                numbers = await run_sync_in_thread(self.log_file.append, [fields for fields, _ in batch], self.source)
        except OSError as error:
            self.ctx.log.error("audit records could not be written", records=len(batch), error=str(error))
            for _, reply in batch:
                reply.fail(error)
            return
        self.records += len(batch)
        self.batches += 1
        for (_, reply), seq in zip(batch, numbers):
            reply.send(AuditRecorded(seq=seq))


async def audit(ctx, record: AuditRecord, path: str | None = AUDIT_PATH, *, wait: bool = True) -> None:
    """Record `record` and wait (bounded) until it is written; None path: auditing is off.
    `wait` false (sync = os, where a written record is not durable anyway): only put it
    in the audit actor's mailbox, which waits while the mailbox is full."""
    if path is None:
        return
    try:
        if not wait:
            await ctx.lookup(path).send(RecordAudit(record=record))
            return
        await ctx.lookup(path).ask(RecordAudit(record=record), timeout=AUDIT_WAIT)
    except (ActorError, OSError) as error:
        structlog.get_logger().error("audit record lost", event_id=record.event.code, error=str(error) or type(error).__name__)
