"""Storage SOP classes as SCP (C-STORE, PS3.4 Annex B): receive, make durable, index, answer.

The dataset streams into an `IncomingInstance`: held in memory up to `SPILL_AT` bytes,
beyond that written on to a temp file under `incoming/` as it arrives, so memory stays
bounded whatever the size. When the last fragment is in:

1. in one worker thread the rest is written, while in another the index attributes
   are parsed (from memory when the dataset never spilled, stopping before the pixel
   data);
2. the file is placed at its destination in the layout and made durable (file and
   directory fsync; see storage.files.place_durably for why link-then-fsync);
3. the index actor records it (group commit, durable before it answers);
4. only then does the peer get Success.

A dataset we will not keep (bad UIDs, unparseable, not the SOP class announced) gets a
failure status with an error comment and leaves nothing behind. `incoming/` and the
stored files share the data directory's filesystem, so the rename is atomic.
"""

import datetime as dt
import io
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
from ...storage.files import discard, ensure_directory, place_durably
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
    """A C-STORE dataset on its way in: memory first, a temp file once it is large."""

    def __init__(self, incoming: Path, header: bytes) -> None:
        self.incoming = incoming
        self.header = header
        self.temp: Path | None = None
        self._buffer = bytearray()
        self._file = None
        self._writer: Part10Writer | None = None

    async def write(self, data: memoryview) -> None:
        self._buffer += data
        if len(self._buffer) >= SPILL_AT:
            await trio.to_thread.run_sync(self._spill)

    async def finish(self) -> None:
        pass  # the owner decides when to make it durable

    async def discard(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._close_and_remove)

    def in_memory(self) -> bytes | None:
        """The whole Part 10 file, if it never had to go to disk early."""
        return self.header + self._buffer if self._writer is None else None

    def _spill(self) -> None:
        if self._writer is None:
            self.temp = self.incoming / f"{uuid.uuid4().hex}.part"
            self._file = open(self.temp, "xb")
            self._writer = Part10Writer(self._file, self.header)
        data, self._buffer = self._buffer, bytearray()
        self._writer.write(data)

    def write_rest(self) -> WrittenFile:
        """Write what is left and close, without fsync (a worker thread): the fsync
        happens once the file is at its destination."""
        self._spill()
        assert self._writer is not None and self._file is not None
        written = self._writer.finish(sync=False)
        self._file.close()
        self._file = None
        return written

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
        record, written = await self._written_and_parsed(request, incoming)
        assert incoming.temp is not None
        try:
            dest = instance_path(
                self.settings.files,
                self.settings.layout,
                study_uid=record.study_instance_uid,
                series_uid=record.series_instance_uid,
                sop_instance_uid=record.sop_instance_uid,
                study_date=record.study_date,
                today=dt.date.today(),
            )
        except StorageError as error:  # a Study or Series UID that must not become a path
            raise StoreRefused(error.status, error.comment) from None
        record = attrs.evolve(
            record,
            file_path=str(dest.relative_to(self.settings.root)),
            file_size=written.size,
            sha256=written.sha256,
        )
        replace = self.settings.duplicates is DuplicatePolicy.REPLACE
        try:
            placed = await trio.to_thread.run_sync(_place, incoming.temp, dest, replace)
        except OSError as error:
            raise StoreRefused(StorageStatus.OUT_OF_RESOURCES, f"cannot store the file: {error}") from None
        try:
            recorded = await session.ctx.lookup(self.settings.index_path).ask(RecordInstance(record=record), timeout=None)
        except (ReplyError, ActorError) as error:
            if placed:
                await trio.to_thread.run_sync(discard, dest)
            raise StoreRefused(StorageStatus.OUT_OF_RESOURCES, f"could not index the instance: {error}") from None
        return await self._settle(recorded.outcome, incoming.temp, dest, placed)

    async def _written_and_parsed(self, request: CStoreRQ, incoming: IncomingInstance) -> tuple[InstanceRecord, WrittenFile]:
        """Write in one thread while parsing in another; parse failures refuse the store."""
        results: dict[str, object] = {}
        whole = incoming.in_memory()

        async def durable() -> None:
            results["written"] = await trio.to_thread.run_sync(incoming.write_rest)

        async def parse(source) -> None:
            results["record"] = await trio.to_thread.run_sync(_parse, source, request)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(durable)
                if whole is not None:
                    nursery.start_soon(parse, io.BytesIO(whole))
            if whole is None:
                await parse(incoming.temp)
        except* StorageError as group:
            error = group.exceptions[0]
            raise StoreRefused(error.status, error.comment) from None
        except* OSError as group:
            raise StoreRefused(StorageStatus.OUT_OF_RESOURCES, f"cannot write the instance: {group.exceptions[0]}") from None
        return results["record"], results["written"]  # type: ignore[return-value]

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
