"""Storage SOP classes as SCP (C-STORE, PS3.4 Annex B): receive, make durable, index, answer.

The bytes belong to the hot tier (actors/node/tiers/): an `IncomingInstance` takes the
dataset's fragments as they arrive, and as soon as its header is complete it is parsed
(index attributes, stopping before the pixel data), which names the instance's key. A
large dataset then streams into a writer the hot tier hands out (`OpenWriter`), on the
association's worker threads, with the kernel told to start writing while the rest is
still arriving; memory stays bounded whatever the dataset's size. When the last
fragment is in:

1. the hot tier places it (`Place`: the tail written and hashed, the file linked under
   its key and made durable, file and directory fsync - storage/files.place_durably);
2. the index actor records it (group commit, durable before it answers);
3. only then does the peer get Success.

A dataset we will not keep (bad UIDs, unparseable, not the SOP class announced) gets a
failure status with an error comment and leaves nothing behind.
"""

import datetime as dt
import io
from functools import partial
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import attrs
import trio

from ....protocol.catalog import EXPLICIT_VR_LITTLE_ENDIAN, storage_sop_classes
from ....protocol.commands import CStoreRQ, CStoreRSP
from ....protocol.negotiation import SupportedContext
from ....protocol.status import Status, StorageStatus
from ....protocol.structure import DEFAULT_MAX_DEPTH, DEFAULT_MAX_INFLATED, MalformedDataset, checker_for
from ....protocol.uid import is_valid_uid
from ....storage import audit_records
from ....storage.attributes import InstanceRecord, extract_record_from_prefix
from ....storage.errors import StorageError
from ....storage.index_db import DuplicatePolicy, Outcome
from ....storage.layout import Layout, instance_path
from ....storage.object_writer import ObjectWriter
from ....storage.part10 import file_meta_bytes
from ...runtime.actor import ActorContext
from ...runtime.errors import ActorError, ReplyError
from ..activity import InstanceStored, StoreRefusedEvent
from ..index import RecordInstance
from ..tiers import HOT_TIER_PATH, DeleteObject, OpenWriter, Place, Placed
from .base import Service, Session

SPILL_AT = 4 * 1024 * 1024  # a dataset whose header is not parsed by then goes to incoming/
PROBES = (64 * 1024, 256 * 1024, 1024 * 1024, SPILL_AT)  # when to try parsing the header
WRITE_BATCH = 1024 * 1024  # once the destination is known, hand fragments to the writer this often
# (an ordinary image is smaller and is written once, at commit: each thread crossing
# costs more CPU than the overlap saves; large datasets stream)
MAX_QUEUED = 4  # batches waiting for the writer before the reader waits too
# Fragments smaller than this are copied together rather than kept as views: a view costs
# ~200 bytes of bookkeeping, so a peer sending tiny fragments would otherwise make the
# node hold many times the bytes it sent.
COALESCE_BELOW = 8 * 1024
FILES = "files"  # where the hot tier keeps stored instances


# How a store keeps its study from being deleted or migrated under it: given the actor
# context and a Study Instance UID, an async context manager held while the instance is
# placed and indexed. It may wait (bounded) and raises a ReplyError when the study stays
# busy. The node builds it on the study lock manager; the actors layer knows no more.
StudyGuard = Callable[[ActorContext, str], AbstractAsyncContextManager[object]]


@attrs.frozen(kw_only=True)
class StoreSettings:
    layout: Layout = Layout.UID
    duplicates: DuplicatePolicy = DuplicatePolicy.REPLACE
    index_path: str = "/node/services/index"
    tier_path: str = HOT_TIER_PATH
    guard: StudyGuard | None = None
    max_sequence_depth: int = DEFAULT_MAX_DEPTH  # deeper datasets are refused (protocol/structure.py)
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED  # a deflated dataset inflating past this is refused

    def destination(self, record: InstanceRecord) -> str:
        """The hot tier's key for the instance: `files/` and the layout's path."""
        return instance_path(
            Path(FILES),
            self.layout,
            study_uid=record.study_instance_uid,
            series_uid=record.series_instance_uid,
            sop_instance_uid=record.sop_instance_uid,
            study_date=record.study_date,
            today=dt.date.today(),
        ).as_posix()


class IncomingInstance:
    """A C-STORE dataset on its way in, streamed to the hot tier while it arrives.

    The header comes first, so it is parsed as soon as it is all there; that names the
    key. From then on the received fragments are handed in batches to a background task
    that writes them into the hot tier's writer and asks the kernel to start putting
    them on disk - while the network keeps delivering, so the fsync at the end has only
    the tail left. Until then fragments are kept as received, not copied; at most
    MAX_QUEUED batches wait for the writer, so memory stays bounded whatever the
    dataset's size. A dataset whose header is not parsed within SPILL_AT bytes goes to
    a writer with no key yet (the tier's incoming area) and is parsed at the end; a
    dataset found bad is not written at all (the rest of it is read and dropped).
    """

    def __init__(
        self,
        settings: StoreSettings,
        request: CStoreRQ,
        header: bytes,
        ctx: ActorContext | None,
        transfer_syntax: str = EXPLICIT_VR_LITTLE_ENDIAN,
    ) -> None:
        self.settings = settings
        self.request = request
        self.structure = checker_for(
            transfer_syntax, max_depth=settings.max_sequence_depth, max_inflated=settings.max_inflated_bytes
        )
        self._small: bytearray | None = None  # small fragments being copied together
        self.record: InstanceRecord | None = None
        self.key: str | None = None
        self.refusal: StoreRefused | None = None
        self.writer: ObjectWriter | None = None
        self._ctx = ctx
        self._chunks: list[bytes | memoryview] = [header]
        self._pending = self._received = len(header)
        self._probes = iter(PROBES)
        self._next_probe = next(self._probes)
        self._batches: trio.MemorySendChannel[list[bytes | memoryview]] | None = None
        self._writer_done = trio.Event()
        self._write_error: OSError | None = None
        self._completed = False

    @property
    def received(self) -> int:
        """Bytes of the file so far: the file meta header and the dataset received."""
        return self._received

    async def write(self, data: memoryview) -> None:
        if self.refusal is not None:
            return
        try:
            self.structure.feed(data)
        except MalformedDataset as error:
            self._refuse_malformed(error)
            return
        if len(data) < COALESCE_BELOW:
            small = self._small
            if small is None:
                small = self._small = bytearray()
                self._chunks.append(small)
            small += data
            if len(small) >= COALESCE_BELOW:
                self._small = None
        else:
            self._small = None
            self._chunks.append(data)
        self._pending += len(data)
        self._received += len(data)
        if self.record is None and self._received >= self._next_probe:
            self._next_probe = next(self._probes, float("inf"))
            self._probe(complete=False)
        if self.refusal is not None or self._ctx is None:
            return
        if self.key is not None and self._pending >= WRITE_BATCH:
            await self._hand_off()
        elif self.key is None and self._pending >= SPILL_AT:
            writer = await self.open_writer()
            if writer is not None:
                await trio.to_thread.run_sync(writer.write, self.take_pending())

    async def finish(self) -> None:
        pass  # the owner makes it durable (commit) once it has decided to keep it

    def describe(self) -> dict[str, object]:
        """What a trace keeps of it (actors/node/wire.py): never the data."""
        return {
            "received": self._received,
            "temp": str(self.writer.temp) if self.writer is not None and self.writer.temp is not None else None,
            "refused": self.refusal.comment if self.refusal is not None else None,
        }

    async def discard(self) -> None:
        self._chunks, self._small = [], None
        with trio.CancelScope(shield=True):
            await self._drain()
            if self.writer is not None:
                await trio.to_thread.run_sync(self.writer.abandon)

    async def open_writer(self) -> ObjectWriter | None:
        """The hot tier's writer for this instance, asked for once (None, with a refusal
        set, when the tier will not give one)."""
        if self.writer is None:
            assert self._ctx is not None
            try:
                opened = await self._ctx.lookup(self.settings.tier_path).ask(OpenWriter(key=self.key))
            except (ReplyError, ActorError) as error:
                self.refusal = StoreRefused(StorageStatus.OUT_OF_RESOURCES, f"cannot write the instance: {error}")
                return None
            self.writer = opened.writer
        return self.writer

    def take_pending(self) -> list[bytes | memoryview]:
        batch, self._chunks, self._pending = self._chunks, [], 0
        self._small = None  # handed over with the batch: never appended to again
        return batch

    def _refuse_malformed(self, error: MalformedDataset) -> None:
        self.refusal = StoreRefused(StorageStatus.CANNOT_UNDERSTAND, f"malformed dataset: {error}")
        self._chunks, self._small = [], None

    # -- the background writer -----------------------------------------------------------

    async def _hand_off(self) -> None:
        if self._batches is None:
            writer = await self.open_writer()
            if writer is None:
                return
            self._batches, batches_out = trio.open_memory_channel[list[bytes | memoryview]](MAX_QUEUED)
            assert self._ctx is not None
            self._ctx.nursery.start_soon(self._write_in_background, writer, batches_out)
        try:
            await self._batches.send(self.take_pending())
        except trio.BrokenResourceError:  # the writer stopped on an error
            self.refusal = StoreRefused(StorageStatus.OUT_OF_RESOURCES, f"cannot write the instance: {self._write_error}")

    async def _write_in_background(
        self, writer: ObjectWriter, batches: trio.MemoryReceiveChannel[list[bytes | memoryview]]
    ) -> None:
        try:
            async with batches:
                async for batch in batches:
                    await trio.to_thread.run_sync(writer.write, batch)
        except OSError as error:
            self._write_error = error
        finally:
            self._writer_done.set()

    async def _drain(self) -> None:
        """Wait until every handed-off batch is written (or the writer gave up)."""
        if self._batches is not None:
            self._batches.close()
            await self._writer_done.wait()
        if self._write_error is not None and self.refusal is None:
            self.refusal = StoreRefused(StorageStatus.OUT_OF_RESOURCES, f"cannot write the instance: {self._write_error}")

    # -- parsing -------------------------------------------------------------------------

    def _probe(self, *, complete: bool) -> None:
        """Parse the header if it is all there; a bad dataset is refused right away."""
        # At most SPILL_AT bytes are joined; the parser reads the header field by field
        # and BytesIO serves that far cheaper than a reader over the fragments.
        spilled = self.writer is not None and self.writer.opened
        source = self.writer.temp if spilled else io.BytesIO(b"".join(self._chunks))
        try:
            record = extract_record_from_prefix(
                source,
                complete=complete,
                expected_sop_class_uid=self.request.affected_sop_class_uid,
                expected_sop_instance_uid=self.request.affected_sop_instance_uid,
            )
            if record is not None:
                self.key = self.settings.destination(record)
                self.record = record
        except StorageError as error:  # unparseable, wrong SOP class, a UID that must not become a path
            self.refusal = StoreRefused(error.status, error.comment)
            self._chunks, self._small = [], None

    async def complete(self) -> None:
        """All fragments are in: finish the background writes and the parse (once; a
        STOW-RS part is completed to check its study before it is committed)."""
        if self._completed:
            return
        self._completed = True
        if self.refusal is None:
            try:
                self.structure.finish()
            except MalformedDataset as error:
                self._refuse_malformed(error)
        await self._drain()
        if self.record is None and self.refusal is None:
            if self.writer is None or not self.writer.opened:
                self._probe(complete=True)  # in memory: parsing holds the GIL anyway
            else:
                await trio.to_thread.run_sync(partial(self.writer.write, self.take_pending(), begin_writeback=False))
                await trio.to_thread.run_sync(lambda: self._probe(complete=True))


class StoreRefused(Exception):
    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment


def _publish_outcome(session: Session, request: CStoreRQ, incoming: "IncomingInstance", status: int, seconds: float) -> None:
    if status == Status.SUCCESS and incoming.record is not None:
        session.ctx.publish(InstanceStored(
            association_id=session.association_id, calling_ae_title=session.calling_ae_title,
            sop_class_uid=request.affected_sop_class_uid, study_instance_uid=incoming.record.study_instance_uid,
            bytes=incoming.received, seconds=seconds,
        ))
    else:
        session.ctx.publish(StoreRefusedEvent(association_id=session.association_id, sop_class_uid=request.affected_sop_class_uid, status=status))


class StorageService(Service):
    permission = "store"
    requests = (CStoreRQ,)
    operation = True  # the commit (file, fsync, index) runs beside the association's mailbox

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings

    def contexts(self) -> list[SupportedContext]:
        # SCU role too: a C-GET sends its matches back as C-STOREs on the same association.
        return [SupportedContext(abstract_syntax=uid, scp_role=True, scu_role=True) for uid in storage_sop_classes()]

    def sink_for(self, session: Session | None, context_id: int, message) -> IncomingInstance:
        transfer_syntax = session.context(context_id).transfer_syntax if session is not None else ""
        header = file_meta_bytes(
            sop_class_uid=message.affected_sop_class_uid,
            sop_instance_uid=message.affected_sop_instance_uid,
            transfer_syntax_uid=transfer_syntax,
            source_ae_title=session.calling_ae_title if session is not None else None,
        ) if _safe_uids(message) else b""
        return IncomingInstance(self.settings, message, header, session.ctx if session is not None else None, transfer_syntax)

    async def handle(self, session: Session, received, operation) -> None:
        request: CStoreRQ = received.message
        incoming: IncomingInstance = received.dataset
        began = trio.current_time()
        try:
            status, comment = await self.store(session, request, incoming)
        except StoreRefused as refused:
            await incoming.discard()
            status, comment = refused.status, refused.comment
            session.log.warning("store refused", sop_instance_uid=request.affected_sop_instance_uid, status=hex(status), reason=comment)
        _publish_outcome(session, request, incoming, status, trio.current_time() - began)
        record = incoming.record
        await session.audit(audit_records.instance_stored(
            session.called_ae_title, session.audit_peer(),
            study_uid=record.study_instance_uid if record is not None else "",
            patient_id=record.patient_id if record is not None else "",
            sop_class_uid=request.affected_sop_class_uid, sop_instance_uid=request.affected_sop_instance_uid, status=status,
        ))
        await session.respond(
            CStoreRSP(
                message_id_being_responded_to=request.message_id,
                status=status,
                affected_sop_class_uid=request.affected_sop_class_uid,
                affected_sop_instance_uid=request.affected_sop_instance_uid,
                error_comment=comment[:64] if comment else None,  # LO: at most 64 characters
            ),
            received.context_id,
        )

    async def store(self, session: Session, request: CStoreRQ, incoming: IncomingInstance) -> tuple[int, str | None]:
        return await commit_instance(self.settings, session.ctx, request, incoming)


async def commit_instance(
    settings: StoreSettings, ctx: ActorContext, request: CStoreRQ, incoming: IncomingInstance
) -> tuple[int, str | None]:
    """Keep a received instance: wait for its last bytes, then under its study's guard
    place it in the hot tier and index it; (status, comment) to answer. Raises
    StoreRefused for an instance not kept (the caller discards it). C-STORE and STOW-RS
    both store through here."""
    if not _safe_uids(request):
        raise StoreRefused(StorageStatus.CANNOT_UNDERSTAND, "the command's SOP class or instance UID is not a valid UID")
    await incoming.complete()
    if incoming.refusal is not None:
        raise incoming.refusal
    assert incoming.record is not None and incoming.key is not None
    guard = settings.guard
    if guard is None:
        return await _commit(settings, ctx, incoming)
    outcome: tuple[int, str | None] | None = None
    try:
        async with guard(ctx, incoming.record.study_instance_uid):
            outcome = await _commit(settings, ctx, incoming)
    except ReplyError as error:
        if outcome is None:  # never got the study: it stayed locked (deletion, migration)
            ctx.log.info("store refused: study locked", study=incoming.record.study_instance_uid, error=str(error))
            raise StoreRefused(StorageStatus.OUT_OF_RESOURCES, "study is busy (locked); try again later") from None
        ctx.log.warning("study lock ended badly after a completed store", error=str(error))
    assert outcome is not None
    return outcome


async def _commit(settings: StoreSettings, ctx: ActorContext, incoming: IncomingInstance) -> tuple[int, str | None]:
    assert incoming.record is not None and incoming.key is not None
    key = incoming.key
    writer = await incoming.open_writer()
    if writer is None:
        assert incoming.refusal is not None
        raise incoming.refusal
    writer.hand_in(incoming.take_pending())
    placed = await _place(settings, ctx, writer, key, overwrite=settings.duplicates is DuplicatePolicy.REPLACE)
    record = attrs.evolve(incoming.record, file_path=key, file_size=placed.size, sha256=placed.sha256)
    try:
        recorded = await ctx.lookup(settings.index_path).ask(RecordInstance(record=record), timeout=None)
    except (ReplyError, ActorError) as error:
        if placed.placed:
            await _remove(settings, ctx, key)
        raise StoreRefused(StorageStatus.OUT_OF_RESOURCES, f"could not index the instance: {error}") from None
    return await _settle(settings, ctx, recorded.outcome, writer, key, placed.placed)


async def _place(settings: StoreSettings, ctx: ActorContext, writer: ObjectWriter, key: str, *, overwrite: bool) -> Placed:
    try:
        return await ctx.lookup(settings.tier_path).ask(Place(writer=writer, key=key, overwrite=overwrite), timeout=None)
    except (ReplyError, ActorError) as error:
        raise StoreRefused(StorageStatus.OUT_OF_RESOURCES, f"cannot store the file: {error}") from None


async def _remove(settings: StoreSettings, ctx: ActorContext, key: str) -> None:
    """Remove a file this store placed or replaced; a failure leaves an orphan that
    verification finds, never a wrong answer."""
    try:
        await ctx.lookup(settings.tier_path).ask(DeleteObject(key=key), timeout=None)
    except (ReplyError, ActorError) as error:
        ctx.log.warning("stored file not removed", key=key, error=str(error))


async def _settle(settings: StoreSettings, ctx: ActorContext, outcome, writer: ObjectWriter, key: str, placed: bool) -> tuple[int, str | None]:
    """Finish the file side of what the index decided; the status to answer."""
    previous = outcome.previous_path
    match outcome.outcome:
        case Outcome.STORED:
            if not placed:  # an unindexed file was in the way (a crash's leftover)
                await _place(settings, ctx, writer, key, overwrite=True)
            return Status.SUCCESS, None
        case Outcome.REPLACED:
            if previous and previous != key:
                await _remove(settings, ctx, previous)
            return Status.SUCCESS, None
        case Outcome.DUPLICATE_IGNORED | Outcome.DUPLICATE_REJECTED:
            if placed and previous != key:
                await _remove(settings, ctx, key)
            await trio.to_thread.run_sync(writer.abandon)
            if outcome.outcome is Outcome.DUPLICATE_IGNORED:
                return Status.SUCCESS, None
            return Status.DUPLICATE_SOP_INSTANCE, "an instance with this SOP Instance UID is already stored"
    raise AssertionError(outcome)


def _safe_uids(message: CStoreRQ) -> bool:
    return is_valid_uid(message.affected_sop_class_uid) and is_valid_uid(message.affected_sop_instance_uid)

