"""Storage SOP classes as SCP (C-STORE, PS3.4 Annex B): receive, make durable, index, answer.

An `IncomingInstance` takes the dataset's fragments as they arrive. As soon as its
header is complete it is parsed (index attributes, stopping before the pixel data);
that names the destination in the layout, and from then on the fragments go to a temp
file beside it while the rest is still arriving, with the kernel told to start writing
them out. Memory stays bounded whatever the dataset's size. When the last fragment is in:

1. in one worker-thread call the tail is written (SHA-256 computed while writing), the
   file placed at its destination and made durable (file and directory fsync; see
   storage.files.place_durably for why link-then-fsync);
2. the index actor records it (group commit, durable before it answers);
3. only then does the peer get Success.

A dataset we will not keep (bad UIDs, unparseable, not the SOP class announced) gets a
failure status with an error comment and leaves nothing behind. The temp file shares
the destination's filesystem, so placing it is atomic.
"""

import datetime as dt
import io
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
import uuid
from pathlib import Path

import attrs
import trio

from ....protocol.catalog import EXPLICIT_VR_LITTLE_ENDIAN, storage_sop_classes
from ....protocol.commands import CStoreRQ, CStoreRSP
from ....protocol.negotiation import SupportedContext
from ....protocol.status import Status, StorageStatus
from ....protocol.structure import DEFAULT_MAX_DEPTH, DEFAULT_MAX_INFLATED, MalformedDataset, checker_for
from ....protocol.uid import is_valid_uid
from ....storage.attributes import InstanceRecord, extract_record_from_prefix
from ....storage.errors import StorageError
from ....storage.files import discard, ensure_directory, place_durably, start_writeback, temp_path_beside
from ....storage.index_db import DuplicatePolicy, Outcome
from ....storage.layout import Layout, instance_path
from ....storage.part10 import Part10Writer, WrittenFile, file_meta_bytes
from ...runtime.actor import ActorContext
from ...runtime.errors import ActorError, ReplyError
from ..index import RecordInstance
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


# How a store keeps its study from being deleted or migrated under it: given the actor
# context and a Study Instance UID, an async context manager held while the instance is
# placed and indexed. It may wait (bounded) and raises a ReplyError when the study stays
# busy. The node builds it on the study lock manager; the actors layer knows no more.
StudyGuard = Callable[[ActorContext, str], AbstractAsyncContextManager[object]]


@attrs.frozen(kw_only=True)
class StoreSettings:
    root: Path  # the data directory: files/ and incoming/ live under it
    layout: Layout = Layout.UID
    duplicates: DuplicatePolicy = DuplicatePolicy.REPLACE
    index_path: str = "/node/services/index"
    guard: StudyGuard | None = None
    fsync: bool = True  # False: the OS decides when files reach the disk ([storage] durability = os)
    max_sequence_depth: int = DEFAULT_MAX_DEPTH  # deeper datasets are refused (protocol/structure.py)
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED  # a deflated dataset inflating past this is refused

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    def destination(self, record: InstanceRecord) -> Path:
        return instance_path(
            self.files,
            self.layout,
            study_uid=record.study_instance_uid,
            series_uid=record.series_instance_uid,
            sop_instance_uid=record.sop_instance_uid,
            study_date=record.study_date,
            today=dt.date.today(),
        )


class IncomingInstance:
    """A C-STORE dataset on its way in, streamed to its destination while it arrives.

    The header comes first, so it is parsed as soon as it is all there; that names the
    destination. From then on the received fragments are handed in batches to a
    background writer, which writes them to a temp file beside the destination and asks
    the kernel to start putting them on disk - while the network keeps delivering, so
    the fsync at the end has only the tail left. Until then fragments are kept as
    received, not copied; at most MAX_QUEUED batches wait for the writer, so memory
    stays bounded whatever the dataset's size. A dataset whose header is not parsed
    within SPILL_AT bytes goes to a temp file under incoming/ and is parsed at the end;
    a dataset found bad is not written at all (the rest of it is read and dropped).
    """

    def __init__(
        self,
        settings: StoreSettings,
        request: CStoreRQ,
        header: bytes,
        nursery: trio.Nursery | None,
        transfer_syntax: str = EXPLICIT_VR_LITTLE_ENDIAN,
    ) -> None:
        self.settings = settings
        self.request = request
        self.structure = checker_for(
            transfer_syntax, max_depth=settings.max_sequence_depth, max_inflated=settings.max_inflated_bytes
        )
        self._small: bytearray | None = None  # small fragments being copied together
        self.record: InstanceRecord | None = None
        self.dest: Path | None = None
        self.refusal: StoreRefused | None = None
        self.temp: Path | None = None
        self._nursery = nursery
        self._chunks: list[bytes | memoryview] = [header]
        self._pending = self._received = len(header)
        self._probes = iter(PROBES)
        self._next_probe = next(self._probes)
        self._file = None
        self._writer: Part10Writer | None = None
        self._batches: trio.MemorySendChannel[list[bytes | memoryview]] | None = None
        self._writer_done = trio.Event()
        self._write_error: OSError | None = None

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
        if self.refusal is not None:
            return
        if self.dest is not None and self._pending >= WRITE_BATCH and self._nursery is not None:
            await self._hand_off()
        elif self.dest is None and self._pending >= SPILL_AT:
            await trio.to_thread.run_sync(self._write_batch, self._take_pending(), True)

    async def finish(self) -> None:
        pass  # the owner makes it durable (commit) once it has decided to keep it

    def describe(self) -> dict[str, object]:
        """What a trace keeps of it (actors/node/wire.py): never the data."""
        return {
            "received": self._received,
            "temp": str(self.temp) if self.temp is not None else None,
            "refused": self.refusal.comment if self.refusal is not None else None,
        }

    async def discard(self) -> None:
        self._chunks, self._small = [], None
        with trio.CancelScope(shield=True):
            await self._drain()
            await trio.to_thread.run_sync(self._close_and_remove)

    # -- the background writer -----------------------------------------------------------

    def _take_pending(self) -> list[bytes | memoryview]:
        batch, self._chunks, self._pending = self._chunks, [], 0
        self._small = None  # handed over with the batch: never appended to again
        return batch

    def _refuse_malformed(self, error: MalformedDataset) -> None:
        self.refusal = StoreRefused(StorageStatus.CANNOT_UNDERSTAND, f"malformed dataset: {error}")
        self._chunks, self._small = [], None

    async def _hand_off(self) -> None:
        if self._batches is None:
            self._batches, batches_out = trio.open_memory_channel[list[bytes | memoryview]](MAX_QUEUED)
            assert self._nursery is not None
            self._nursery.start_soon(self._write_in_background, batches_out)
        try:
            await self._batches.send(self._take_pending())
        except trio.BrokenResourceError:  # the writer stopped on an error
            self.refusal = StoreRefused(StorageStatus.OUT_OF_RESOURCES, f"cannot write the instance: {self._write_error}")

    async def _write_in_background(self, batches: trio.MemoryReceiveChannel[list[bytes | memoryview]]) -> None:
        try:
            async with batches:
                async for batch in batches:
                    await trio.to_thread.run_sync(self._write_batch, batch, True)
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
        source = io.BytesIO(b"".join(self._chunks)) if self._writer is None else self.temp
        try:
            record = extract_record_from_prefix(
                source,
                complete=complete,
                expected_sop_class_uid=self.request.affected_sop_class_uid,
                expected_sop_instance_uid=self.request.affected_sop_instance_uid,
            )
            if record is not None:
                self.dest = self.settings.destination(record)
                self.record = record
        except StorageError as error:  # unparseable, wrong SOP class, a UID that must not become a path
            self.refusal = StoreRefused(error.status, error.comment)
            self._chunks, self._small = [], None

    async def complete(self) -> None:
        """All fragments are in: finish the background writes and the parse."""
        if self.refusal is None:
            try:
                self.structure.finish()
            except MalformedDataset as error:
                self._refuse_malformed(error)
        await self._drain()
        if self.record is None and self.refusal is None:
            if self._writer is None:
                self._probe(complete=True)  # in memory: parsing holds the GIL anyway
            else:
                await trio.to_thread.run_sync(self._write_batch, self._take_pending(), False)
                await trio.to_thread.run_sync(lambda: self._probe(complete=True))

    # -- files (worker threads) ----------------------------------------------------------

    def _write_batch(self, batch: list[bytes | memoryview], begin_writeback: bool) -> None:
        writer = self._open_writer()
        for chunk in batch:
            writer.write(chunk)
        if begin_writeback:
            self._file.flush()
            start_writeback(self._file.fileno())

    def _open_writer(self) -> Part10Writer:
        """The writer of the temp file, created with the file on first use."""
        if self._writer is None:
            if self.dest is not None:
                self.temp = temp_path_beside(self.dest)
                self._file = self._create_beside_destination(self.temp)
            else:
                self.temp = self.settings.incoming / f"{uuid.uuid4().hex}.part"
                self._file = open(self.temp, "xb")
            self._writer = Part10Writer(self._file, b"")
        return self._writer

    def _create_beside_destination(self, temp: Path):
        """Open temp in the destination's folder, creating the folder. A large dataset
        gets here before its store holds the study lock, and cleanup may remove the
        folder as it empties: if it vanished in between, create it once more."""
        assert self.dest is not None
        for attempt in (1, 2):
            ensure_directory(self.dest.parent, sync=self.settings.fsync)
            try:
                return open(temp, "xb")
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def commit(self, overwrite: bool) -> tuple[bool, WrittenFile]:
        """Write the rest and place the file durably at its destination.
        (False, ...) when dest exists and overwrite is False; the temp file stays."""
        assert self.dest is not None
        if self.settings.fsync:
            # The disk starts on the last bytes before they are hashed, so the hash
            # overlaps the write-out and the fsync below has less left to wait for.
            self._open_writer().write_then_hash(self._take_pending(), start_writeback)
        else:
            self._write_batch(self._take_pending(), False)
        assert self._writer is not None and self._file is not None
        written = self._writer.finish(sync=False)
        self._file.close()
        self._file = None
        ensure_directory(self.dest.parent, sync=self.settings.fsync)
        return place_durably(self.temp, self.dest, overwrite=overwrite, sync=self.settings.fsync), written

    def _close_and_remove(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass  # a full disk fails the flush of what close would write: the file goes anyway
        discard(self.temp)


class StoreRefused(Exception):
    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment


class StorageService(Service):
    requests = (CStoreRQ,)
    operation = True  # the commit (file, fsync, index) runs beside the association's mailbox

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        ensure_directory(settings.incoming)
        ensure_directory(settings.files)

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
        return IncomingInstance(
            self.settings, message, header, session.ctx.nursery if session is not None else None, transfer_syntax
        )

    async def handle(self, session: Session, received, operation) -> None:
        request: CStoreRQ = received.message
        incoming: IncomingInstance = received.dataset
        try:
            status, comment = await self.store(session, request, incoming)
        except StoreRefused as refused:
            await incoming.discard()
            status, comment = refused.status, refused.comment
            session.log.warning("store refused", sop_instance_uid=request.affected_sop_instance_uid, status=hex(status), reason=comment)
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
        if not _safe_uids(request):
            raise StoreRefused(StorageStatus.CANNOT_UNDERSTAND, "the command's SOP class or instance UID is not a valid UID")
        await incoming.complete()
        if incoming.refusal is not None:
            raise incoming.refusal
        assert incoming.record is not None and incoming.dest is not None
        guard = self.settings.guard
        if guard is None:
            return await self._commit(session, incoming)
        outcome: tuple[int, str | None] | None = None
        try:
            async with guard(session.ctx, incoming.record.study_instance_uid):
                outcome = await self._commit(session, incoming)
        except ReplyError as error:
            if outcome is None:  # never got the study: it stayed locked (deletion, migration)
                session.log.info("store refused: study locked", study=incoming.record.study_instance_uid, error=str(error))
                raise StoreRefused(StorageStatus.OUT_OF_RESOURCES, "study is busy (locked); try again later") from None
            session.log.warning("study lock ended badly after a completed store", error=str(error))
        assert outcome is not None
        return outcome

    async def _commit(self, session: Session, incoming: IncomingInstance) -> tuple[int, str | None]:
        assert incoming.record is not None and incoming.dest is not None
        dest = incoming.dest
        replace = self.settings.duplicates is DuplicatePolicy.REPLACE
        try:
            placed, written = await trio.to_thread.run_sync(incoming.commit, replace)
        except OSError as error:
            raise StoreRefused(StorageStatus.OUT_OF_RESOURCES, f"cannot store the file: {error}") from None
        record = attrs.evolve(
            incoming.record,
            file_path=str(dest.relative_to(self.settings.root)),
            file_size=written.size,
            sha256=written.sha256,
        )
        try:
            recorded = await session.ctx.lookup(self.settings.index_path).ask(RecordInstance(record=record), timeout=None)
        except (ReplyError, ActorError) as error:
            if placed:
                await trio.to_thread.run_sync(discard, dest)
            raise StoreRefused(StorageStatus.OUT_OF_RESOURCES, f"could not index the instance: {error}") from None
        assert incoming.temp is not None
        return await self._settle(recorded.outcome, incoming.temp, dest, placed)

    async def _settle(self, outcome, temp: Path, dest: Path, placed: bool) -> tuple[int, str | None]:
        """Finish the file side of what the index decided; the status to answer."""
        previous = outcome.previous_path
        previous_abs = self.settings.root / previous if previous else None
        match outcome.outcome:
            case Outcome.STORED:
                if not placed:  # an unindexed file was in the way (a crash's leftover)
                    await trio.to_thread.run_sync(_place, temp, dest, self.settings.fsync)
                return Status.SUCCESS, None
            case Outcome.REPLACED:
                if previous_abs is not None and previous_abs != dest:
                    await trio.to_thread.run_sync(discard, previous_abs)
                return Status.SUCCESS, None
            case Outcome.DUPLICATE_IGNORED | Outcome.DUPLICATE_REJECTED:
                if placed and previous_abs != dest:
                    await trio.to_thread.run_sync(discard, dest)
                await trio.to_thread.run_sync(discard, temp)
                if outcome.outcome is Outcome.DUPLICATE_IGNORED:
                    return Status.SUCCESS, None
                return Status.DUPLICATE_SOP_INSTANCE, "an instance with this SOP Instance UID is already stored"
        raise AssertionError(outcome)


def _safe_uids(message: CStoreRQ) -> bool:
    return is_valid_uid(message.affected_sop_class_uid) and is_valid_uid(message.affected_sop_instance_uid)


def _place(temp: Path, dest: Path, sync: bool) -> bool:
    """Replace whatever is at dest (an unindexed leftover) with temp."""
    ensure_directory(dest.parent, sync=sync)
    return place_durably(temp, dest, overwrite=True, sync=sync)
