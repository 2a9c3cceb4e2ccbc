"""Storage SOP classes as SCP (C-STORE, PS3.4 Annex B): receive, make durable, index, answer.

The dataset streams into an `IncomingInstance`: held in memory up to `SPILL_AT` bytes,
beyond that written on to a temp file under `incoming/` as it arrives, so memory stays
bounded whatever the size. When the last fragment is in:

1. the index attributes are parsed, from the received chunks when the dataset never
   spilled, stopping before the pixel data;
2. in one worker-thread call the file is written beside its destination in the layout
   (SHA-256 computed while writing), placed and made durable (file and directory
   fsync; see storage.files.place_durably for why link-then-fsync);
3. the index actor records it (group commit, durable before it answers);
4. only then does the peer get Success.

A dataset we will not keep (bad UIDs, unparseable, not the SOP class announced) gets a
failure status with an error comment and leaves nothing behind. `incoming/` and the
stored files share the data directory's filesystem, so the rename is atomic.
"""

import datetime as dt
import uuid
from pathlib import Path

import attrs
import trio

from ...protocol.catalog import storage_sop_classes
from ...protocol.commands import CStoreRQ, CStoreRSP
from ...protocol.negotiation import SupportedContext
from ...protocol.status import Status, StorageStatus
from ...protocol.uid import is_valid_uid
from ...storage.attributes import InstanceRecord, extract_record
from ...storage.errors import StorageError
from ...storage.chunks import ChunkReader
from ...storage.files import discard, ensure_directory, place_durably, temp_path_beside
from ...storage.index_db import DuplicatePolicy, Outcome
from ...storage.layout import Layout, instance_path
from ...storage.part10 import Part10Writer, WrittenFile, file_meta_bytes
from ..errors import ActorError, ReplyError
from ..index import RecordInstance
from .base import Service, Session

SPILL_AT = 4 * 1024 * 1024


@attrs.frozen(kw_only=True)
class StorageSettings:
    root: Path  # the data directory: files/ and incoming/ live under it
    layout: Layout = Layout.UID
    duplicates: DuplicatePolicy = DuplicatePolicy.REPLACE
    index_path: str = "/node/services/index"

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"


class IncomingInstance:
    """A C-STORE dataset on its way in.

    Fragments are kept as the received chunks, not copied; past SPILL_AT bytes they go on
    to a temp file under incoming/, so memory stays bounded whatever the dataset's size.
    """

    def __init__(self, incoming: Path, header: bytes) -> None:
        self.incoming = incoming
        self.temp: Path | None = None
        self._chunks: list[bytes | memoryview] = [header]
        self._size = len(header)
        self._file = None
        self._writer: Part10Writer | None = None

    async def write(self, data: memoryview) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size >= SPILL_AT:
            await trio.to_thread.run_sync(self._spill)
            self._size = 0

    async def finish(self) -> None:
        pass  # the owner decides where and when it becomes durable

    async def discard(self) -> None:
        self._chunks = []
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._close_and_remove)

    def reader(self):
        """The received Part 10 file, for parsing: from memory, or the temp file once spilled."""
        if self._writer is None:
            return ChunkReader(self._chunks)
        self._spill()  # the parser reads the file: everything must be in it
        return self.temp

    def _open(self, temp: Path) -> None:
        self.temp = temp
        self._file = open(temp, "xb")
        self._writer = Part10Writer(self._file, b"")

    def _spill(self) -> None:
        if self._writer is None:
            self._open(self.incoming / f"{uuid.uuid4().hex}.part")
        assert self._writer is not None and self._file is not None
        for chunk in self._chunks:
            self._writer.write(chunk)
        self._chunks = []
        self._file.flush()

    def place(self, dest: Path, overwrite: bool) -> tuple[bool, WrittenFile]:
        """Write what is left beside dest (or on in incoming/ if already spilled) and
        place it durably at dest: one worker-thread call for the whole commit.
        (False, ...) when dest exists and overwrite is False; the temp file stays."""
        ensure_directory(dest.parent)
        if self._writer is None:
            self._open(temp_path_beside(dest))
        self._spill()
        assert self._writer is not None and self._file is not None
        written = self._writer.finish(sync=False)
        self._file.close()
        self._file = None
        return place_durably(self.temp, dest, overwrite=overwrite), written

    def _close_and_remove(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        discard(self.temp)


class StoreRefused(Exception):
    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment


class StorageService(Service):
    requests = (CStoreRQ,)

    def __init__(self, settings: StorageSettings) -> None:
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
        return IncomingInstance(self.settings.incoming, header)

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
                error_comment=comment,
            ),
            received.context_id,
        )

    async def store(self, session: Session, request: CStoreRQ, incoming: IncomingInstance) -> tuple[int, str | None]:
        if not _safe_uids(request):
            raise StoreRefused(StorageStatus.CANNOT_UNDERSTAND, "the command's SOP class or instance UID is not a valid UID")
        # Parsing holds the GIL whichever thread runs it, so it runs here; a spilled
        # dataset is read back from its temp file in a worker thread instead.
        reader = incoming.reader() if incoming.temp is None else await trio.to_thread.run_sync(incoming.reader)
        try:
            record = _parse(reader, request)
            dest = instance_path(
                self.settings.files,
                self.settings.layout,
                study_uid=record.study_instance_uid,
                series_uid=record.series_instance_uid,
                sop_instance_uid=record.sop_instance_uid,
                study_date=record.study_date,
                today=dt.date.today(),
            )
        except StorageError as error:  # unparseable, wrong SOP class, a UID that must not become a path
            raise StoreRefused(error.status, error.comment) from None
        replace = self.settings.duplicates is DuplicatePolicy.REPLACE
        try:
            placed, written = await trio.to_thread.run_sync(incoming.place, dest, replace)
        except OSError as error:
            raise StoreRefused(StorageStatus.OUT_OF_RESOURCES, f"cannot store the file: {error}") from None
        record = attrs.evolve(
            record, file_path=str(dest.relative_to(self.settings.root)), file_size=written.size, sha256=written.sha256
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
                    await trio.to_thread.run_sync(_place, temp, dest, True)
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


def _parse(source, request: CStoreRQ) -> InstanceRecord:
    return extract_record(
        source,
        file_size=0,
        sha256="",
        file_path="",
        expected_sop_class_uid=request.affected_sop_class_uid,
        expected_sop_instance_uid=request.affected_sop_instance_uid,
    )


def _place(temp: Path, dest: Path, overwrite: bool) -> bool:
    ensure_directory(dest.parent)
    return place_durably(temp, dest, overwrite=overwrite)
