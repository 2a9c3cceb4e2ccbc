"""STOW-RS (PS3.18 10.5): a multipart/related body of application/dicom parts, each
stored as a C-STORE is.

Each part is a Part 10 file. Its file meta information names the SOP class, instance
and transfer syntax, which is what a C-STORE request's command says; from there the
part takes the C-STORE path unchanged (actors/node/services/storage.py): an
`IncomingInstance` checks its structure and parses its header while the bytes arrive
and streams a large one into the hot tier's writer, and `commit_instance` places and
indexes it under its study's lock, durably, before the part counts as stored. Parts
are read from the body as they arrive, and each is committed while the next ones are
read (at most IN_FLIGHT at once), so memory stays bounded whatever the body's size.

A part that cannot be stored (no DICOM, not the study of the URL, refused like a
C-STORE would be) leaves nothing behind and is listed in the FailedSOPSequence with
its reason; the others are stored. The answer (PS3.18 10.5.3): 200 when every part
was stored, 202 when some were, 409 when none was (web/dicomweb/app.py shapes it). A body that is not multipart, is
truncated, or has a part larger than [dicomweb] max_part_bytes ends the request with
a 4xx problem; the parts stored before it stay stored (each is whole), the part under
way is dropped.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import attrs
import trio

from ...actors import ActorContext
from ...actors.node.services.storage import IncomingInstance, StoreRefused, StoreSettings, commit_instance
from ...protocol.commands import CStoreRQ
from ...protocol.status import StatusClass, StorageStatus, status_class
from ...protocol.uid import is_valid_uid
from ...storage.part10 import MAX_META_BYTES, file_meta_bytes, read_file_meta
from ...storage.errors import InvalidPart10File
from ..problems import ApiProblem
from .multipart import MalformedMultipart, MultipartReader, PartData, PartEnded, PartStarted
from .media import DICOM

PREFIX = 132  # preamble and DICM
# The instance's study is not the one the URL names (PS3.18 10.5.3.2 lets the origin
# server refuse it; the C-STORE code for a data set it will not take is A900).
STUDY_MISMATCH = StorageStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS
UNSUPPORTED_PART = 0x0122  # a part of another media type: "SOP class not supported" is the nearest
IN_FLIGHT = 4  # parts committing while the next ones are read


@attrs.frozen(kw_only=True)
class StoreOutcome:
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str | None
    series_instance_uid: str | None = None
    failure: int | None = None  # FailureReason (a C-STORE status), None: stored
    comment: str = ""
    warning: int | None = None  # WarningReason (a C-STORE warning status)


class PartTooLarge(Exception):
    pass


class _Part:
    """One application/dicom part on its way: its file meta first, then its dataset
    streamed into an IncomingInstance, as a C-STORE dataset is."""

    def __init__(self, settings: StoreSettings, ctx: ActorContext, media_type: str, max_bytes: int) -> None:
        self.settings = settings
        self.ctx = ctx
        self.media_type = media_type
        self.max_bytes = max_bytes
        self.size = 0
        self.head = bytearray()
        self.incoming: IncomingInstance | None = None
        self.request: CStoreRQ | None = None
        self.failure: StoreOutcome | None = None

    async def feed(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise PartTooLarge()
        if self.failure is not None:
            return  # the rest of a part already refused is read and dropped
        if self.incoming is not None:
            await self.incoming.write(memoryview(data))
            return
        self.head += data
        await self._try_meta(complete=False)

    async def _try_meta(self, *, complete: bool) -> None:
        """Start the instance once its file meta is all here."""
        if len(self.head) < PREFIX + 12 and not complete:
            return
        if self.head[128:132] != b"DICM":
            self._fail(StorageStatus.CANNOT_UNDERSTAND, "not a DICOM file: no DICM prefix")
            return
        try:
            meta, offset = read_file_meta(io.BytesIO(bytes(self.head[: PREFIX + MAX_META_BYTES])))
        except InvalidPart10File as error:
            if not complete and len(self.head) < PREFIX + MAX_META_BYTES:
                return  # the rest of the file meta is on its way
            self._fail(StorageStatus.CANNOT_UNDERSTAND, f"not a DICOM file: {error}")
            return
        if not complete and offset + 8 > len(self.head):
            return  # only the next element's tag shows the file meta has ended
        sop_class, sop_instance = meta.media_storage_sop_class_uid, meta.media_storage_sop_instance_uid
        if not (is_valid_uid(sop_class) and is_valid_uid(sop_instance) and is_valid_uid(meta.transfer_syntax_uid)):
            self._fail(StorageStatus.CANNOT_UNDERSTAND, "the file meta's UIDs are not valid UIDs")
            return
        self.request = CStoreRQ(message_id=1, affected_sop_class_uid=sop_class, affected_sop_instance_uid=sop_instance)
        header = file_meta_bytes(sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax_uid=meta.transfer_syntax_uid)
        self.incoming = IncomingInstance(self.settings, self.request, header, self.ctx, meta.transfer_syntax_uid)
        rest, self.head = bytes(self.head[offset:]), bytearray()
        if rest:
            await self.incoming.write(memoryview(rest))

    def _fail(self, reason: int, comment: str) -> None:
        self.failure = StoreOutcome(sop_class_uid="", sop_instance_uid="", study_instance_uid=None, failure=reason, comment=comment)
        self.head = bytearray()

    async def store(self, study: str | None) -> StoreOutcome:
        if self.failure is None and self.incoming is None:
            await self._try_meta(complete=True)
        if self.failure is not None:
            return self.failure
        assert self.incoming is not None and self.request is not None
        request, incoming = self.request, self.incoming
        try:
            await incoming.complete()
            if incoming.refusal is None and study is not None and incoming.record is not None \
                    and incoming.record.study_instance_uid != study:
                incoming.refusal = StoreRefused(STUDY_MISMATCH, f"the instance belongs to study {incoming.record.study_instance_uid}, not {study}")
            status, comment = await commit_instance(self.settings, self.ctx, request, incoming)
        except StoreRefused as refused:
            await incoming.discard()
            status, comment = refused.status, refused.comment
        record = incoming.record
        outcome = StoreOutcome(
            sop_class_uid=request.affected_sop_class_uid, sop_instance_uid=request.affected_sop_instance_uid,
            study_instance_uid=record.study_instance_uid if record is not None else None,
            series_instance_uid=record.series_instance_uid if record is not None else None, comment=comment or "",
        )
        kind = status_class(status)
        if kind is StatusClass.SUCCESS:
            return outcome
        if kind is StatusClass.WARNING:
            return attrs.evolve(outcome, warning=status)
        return attrs.evolve(outcome, failure=status)

    async def drop(self) -> None:
        if self.incoming is not None:
            await self.incoming.discard()


async def store_parts(
    body: AsyncIterator[bytes], boundary: str, *, settings: StoreSettings, ctx: ActorContext, study: str | None, max_part_bytes: int,
) -> list[StoreOutcome]:
    """Store every part of the body; the outcome of each, in the body's order.

    A part's commit (place, fsync, index) runs while the next part is read, at most
    IN_FLIGHT at a time (each holds at most its unwritten tail in memory). When the body
    turns out bad, the commits under way finish - their parts are whole - before the
    request is refused; the part being read is dropped."""
    try:
        reader = MultipartReader(boundary)
    except MalformedMultipart as error:
        raise ApiProblem(400, "bad-multipart", "malformed multipart body", str(error)) from None
    outcomes: list[StoreOutcome | None] = []
    slots = trio.Semaphore(IN_FLIGHT)
    refusal: ApiProblem | None = None
    failure: Exception | None = None

    async def commit(part: _Part, index: int) -> None:
        try:
            outcomes[index] = await part.store(study)
        finally:
            slots.release()

    part: _Part | None = None
    async with trio.open_nursery() as nursery:
        try:
            async for chunk in body:
                for event in reader.feed(chunk):
                    match event:
                        case PartStarted(headers=headers):
                            part = _new_part(headers, settings, ctx, max_part_bytes)
                        case PartData(data=data):
                            assert part is not None
                            await part.feed(data)
                        case PartEnded():
                            assert part is not None
                            await slots.acquire()
                            outcomes.append(None)
                            nursery.start_soon(commit, part, len(outcomes) - 1)
                            part = None
                if reader.finished:
                    break
            reader.end()
        except MalformedMultipart as error:
            refusal = ApiProblem(400, "bad-multipart", "malformed multipart body", str(error))
        except PartTooLarge:
            refusal = ApiProblem(413, "too-large", "a part is larger than this node takes",
                                 f"at most {max_part_bytes} bytes per instance ([dicomweb] max_part_bytes); "
                                 f"{len(outcomes)} instances before it were handled")
        except Exception as error:  # the client went away, ...: still let the whole parts finish
            failure = error
        finally:
            if part is not None:
                with trio.CancelScope(shield=True):
                    await part.drop()
    if refusal is not None:
        raise refusal
    if failure is not None:
        raise failure
    if not outcomes:
        raise ApiProblem(400, "bad-multipart", "the body has no parts")
    return [o for o in outcomes if o is not None]


def _new_part(headers: dict[str, str], settings: StoreSettings, ctx: ActorContext, max_part_bytes: int) -> _Part:
    kind = headers.get("content-type", DICOM).split(";")[0].strip().lower()
    part = _Part(settings, ctx, kind, max_part_bytes)
    if kind != DICOM:
        part.failure = StoreOutcome(sop_class_uid="", sop_instance_uid="", study_instance_uid=None,
                                    failure=UNSUPPORTED_PART, comment=f"parts of type {kind[:60]} are not stored")
    return part


def response_status(outcomes: list[StoreOutcome]) -> int:
    """PS3.18 10.5.3: 200 all stored, 202 some (or with warnings), 409 none."""
    failed = sum(1 for o in outcomes if o.failure is not None)
    if failed == len(outcomes):
        return 409
    if failed or any(o.warning is not None for o in outcomes):
        return 202
    return 200


def response_json(outcomes: list[StoreOutcome], study_url: str | None, instance_url) -> dict:
    """The store response (PS3.18 Table 10.5.3-1) as DICOM JSON; instance_url(outcome)
    gives a stored instance's RetrieveURL."""
    stored, failed = [], []
    for o in outcomes:
        item = {
            "00081150": _ui(o.sop_class_uid),
            "00081155": _ui(o.sop_instance_uid),
        }
        if o.failure is not None:
            item["00081197"] = {"vr": "US", "Value": [int(o.failure)]}
            failed.append(item)
            continue
        item["00081190"] = {"vr": "UR", "Value": [instance_url(o)]}
        if o.warning is not None:
            item["00081196"] = {"vr": "US", "Value": [int(o.warning)]}
        stored.append(item)
    answer: dict = {"00081190": {"vr": "UR", "Value": [study_url]} if study_url else {"vr": "UR"}}
    answer["00081198"] = {"vr": "SQ", "Value": failed} if failed else {"vr": "SQ"}
    answer["00081199"] = {"vr": "SQ", "Value": stored} if stored else {"vr": "SQ"}
    return answer


def _ui(uid: str) -> dict:
    return {"vr": "UI", "Value": [uid]} if uid else {"vr": "UI"}

