"""A storage tier actor: the one owner of a tier's bytes (a directory, an S3 bucket, an
Azure container). Placing, reading, removing and listing objects go through its mailbox.

Each operation runs beside the mailbox in the actor's nursery (an upload of a large
instance must not hold up a small fetch), at most `max_concurrency` at a time, and
answers when done. Bytes move between local files and the tier in bounded chunks.

Health: a transient failure (unreachable, 5xx, timeouts after the SDK's retries) marks
the tier unhealthy - an event (TierHealthChanged) and its statistics say so - and the
next success marks it healthy again. Stores never depend on it: they go to the hot tier.
"""

import contextlib
import uuid
from pathlib import Path

import trio

from ...runtime.actor import Actor
from ...runtime.mailbox import Reply
from ....storage.errors import StorageError
from ....storage.files import discard
from ....storage.objects import ObjectMissing, ObjectStoreError
from ....storage.tier_settings import TierDefinition
from .backends import Backend, backend_for
from .messages import (
    CheckObjects,
    DeleteObject,
    Deleted,
    FetchFile,
    GetTierStatistics,
    Head,
    ListObjects,
    ObjectPage,
    ObjectsChecked,
    OpenWriter,
    Place,
    Placed,
    PutFile,
    ReadRecord,
    RecordRead,
    RemoveObjects,
    Removed,
    Stage,
    StageMany,
    Staged,
    StagedMany,
    Stored,
    TierFailure,
    TierHealthChanged,
    TierStatistics,
    WriterOpened,
)


MIN_RATE = 1024 * 1024  # bytes/s an upload may not fall below before it is given up


class TierActor(Actor):
    accepts = (
        PutFile, FetchFile, Stage, StageMany, Head, DeleteObject, ListObjects, GetTierStatistics,
        OpenWriter, Place, RemoveObjects, CheckObjects, ReadRecord,
    )
    # Its bytes are outside any scratch copy a replay could make.
    replayable = False

    def __init__(self, definition: TierDefinition, staging: str, max_concurrency: int = 8) -> None:
        """`staging`: a local directory for checked copies a retrieve reads (Stage)."""
        self.definition = definition
        self.staging = Path(staging)
        self.limiter = trio.CapacityLimiter(max_concurrency)
        self.counts = {"puts": 0, "fetches": 0, "deletes": 0, "failures": 0, "bytes_in": 0, "bytes_out": 0}
        self.healthy, self.problem = True, ""
        self.sweeping, self.sweep_again = False, False

    async def on_start(self) -> None:
        self.backend: Backend = backend_for(self.definition, self.ctx.system.portal)
        await self.backend.open()
        try:
            await self.backend.check()
        except ObjectStoreError as error:  # checked at node start already: it failed since
            self._health(False, str(error))
        self._sweep_soon()  # what a crash left in the trash

    async def on_stop(self) -> None:
        backend = getattr(self, "backend", None)
        if backend is not None:
            with trio.CancelScope(shield=True):
                await backend.close()

    async def handle(self, message):
        match message:
            case GetTierStatistics():
                return TierStatistics(
                    name=self.definition.name, kind=self.definition.kind, prefix=self.definition.prefix,
                    healthy=self.healthy, problem=self.problem, **self.counts,
                )
            case OpenWriter(key=key):
                try:
                    return WriterOpened(writer=self.backend.open_writer(key))  # no I/O yet
                except ObjectStoreError as error:
                    raise TierFailure(f"tier {self.definition.name}: {error}") from None
            case _:
                self.ctx.nursery.start_soon(self._operate, message, self.ctx.defer_reply())

    async def _stage(self, stage: Stage) -> Staged:
        backend = self.backend
        local = backend.local_path(stage.key)
        if local is not None:
            if not local.is_file():
                raise ObjectMissing(f"{stage.key}: no such file")
            return Staged(path=str(local), temporary=False)
        self.staging.mkdir(parents=True, exist_ok=True)
        dest = self.staging / f"{self.definition.name}-{uuid.uuid4().hex}.dcm"
        fetched = await backend.get_file(stage.key, dest, expected_sha256=stage.expected_sha256)
        self._fetched(fetched.size)
        return Staged(path=str(dest), temporary=True)

    def _time_limit(self, message) -> float | None:
        """How long one operation on an object store may take, whatever the SDK does:
        its own read timeout did not fire against a server that stopped answering
        (aiobotocore 3.10 against a SIGSTOPped moto), so the tier bounds each operation
        itself - the timeouts plus a second per MIN_RATE bytes moved."""
        settings = self.definition.settings
        if self.definition.kind == "local":
            return None
        size = getattr(message, "size", None) or 0
        if size == 0 and isinstance(message, (FetchFile, Stage)):
            size = 4 * 1024**3  # not told: as much as any instance may be
        if isinstance(message, StageMany):
            size = sum(stage.size or 4 * 1024**3 for stage in message.stages)
        objects = (
            len(message.keys) if isinstance(message, RemoveObjects) else len(message.expected) if isinstance(message, CheckObjects)
            else len(message.stages) if isinstance(message, StageMany) else 1
        )
        return (settings.connect_timeout + settings.read_timeout * 2) * max(objects, 1) + size / MIN_RATE

    async def _operate(self, message, reply: Reply) -> None:
        try:
            async with self.limiter:
                limit = self._time_limit(message)
                with trio.fail_after(limit) if limit is not None else contextlib.nullcontext():
                    answer = await self._do(message)
        except trio.TooSlowError:
            self.counts["failures"] += 1
            problem = f"no answer within {limit:.0f} s"
            self._health(False, problem)
            reply.fail(TierFailure(f"tier {self.definition.name}: {type(message).__name__}: {problem}", transient=True))
            return
        except ObjectStoreError as error:
            self.counts["failures"] += 1
            if error.transient:
                self._health(False, str(error))
            reply.fail(TierFailure(f"tier {self.definition.name}: {error}", missing=isinstance(error, ObjectMissing), transient=error.transient))
            return
        except FileNotFoundError as error:  # an object asked for is not there: the tier is fine
            reply.fail(TierFailure(f"tier {self.definition.name}: {error.filename or error}: no such object", missing=True))
            return
        except StorageError as error:  # the object is not what was asked for (ReadRecord: not DICOM)
            reply.fail(TierFailure(f"tier {self.definition.name}: {error}"))
            return
        except OSError as error:
            self.counts["failures"] += 1
            self._health(False, str(error))
            # The reason first and short: a C-STORE's error comment holds 64 characters.
            reply.fail(TierFailure(f"tier {self.definition.name}: {error.strerror or error}", transient=True))
            return
        if isinstance(answer, Removed) and answer.failed:  # a batch answers its failures
            self.counts["failures"] += len(answer.failed)
            self._health(False, answer.failed[0][1])
        else:
            self._health(True, "")
        if not reply.done:  # an ask failed by the actor's stop meanwhile has its answer
            reply.send(answer)

    async def _do(self, message):
        backend = self.backend
        match message:
            case PutFile(key=key, path=path, size=size, sha256=sha256):
                stored = await backend.put_file(key, Path(path), size=size, sha256=sha256)
                self.counts["puts"] += 1
                self.counts["bytes_in"] += size
                return Stored(object=stored)
            case FetchFile(key=key, dest=dest, expected_sha256=expected):
                fetched = await backend.get_file(key, Path(dest), expected_sha256=expected)
                self._fetched(fetched.size)
                return Stored(object=fetched)
            case Stage():
                return await self._stage(message)
            case StageMany(stages=stages):
                staged: list[Staged | None] = []
                problems: list[str] = []
                for stage in stages:
                    try:
                        staged.append(await self._stage(stage))
                        problems.append("")
                    except (ObjectStoreError, OSError) as error:
                        staged.append(None)
                        problems.append(f"tier {self.definition.name}: {error}")
                return StagedMany(staged=tuple(staged), problems=tuple(problems))
            case Head(key=key):
                return Stored(object=await backend.head(key))
            case DeleteObject(key=key):
                try:
                    await backend.delete(key)
                except ObjectMissing:
                    pass  # gone already: what was asked
                self.counts["deletes"] += 1
                return Deleted(key=key)
            case Place(writer=writer, key=key, overwrite=overwrite):
                placed, written = await backend.place(writer, key, overwrite=overwrite)
                if placed:
                    self.counts["puts"] += 1
                    self.counts["bytes_in"] += written.size
                return Placed(placed=placed, size=written.size, sha256=written.sha256)
            case RemoveObjects(keys=keys):
                removal = await backend.remove(keys)
                self.counts["deletes"] += len(removal.done)
                self._sweep_soon()
                return Removed(done=removal.done, failed=removal.failed)
            case CheckObjects(expected=expected):
                return ObjectsChecked(checks=tuple(await backend.check_objects(expected)))
            case ReadRecord(key=key):
                return RecordRead(record=await backend.read_record(key))
            case ListObjects(prefix=prefix, cursor=cursor, limit=limit):
                found, next_cursor = await backend.list(self.definition.prefix + prefix, cursor, limit)
                return ObjectPage(objects=tuple(found), cursor=next_cursor)

    def _sweep_soon(self) -> None:
        """Empty the trash beside the mailbox, one sweep at a time (a removal meanwhile
        asks for one more round)."""
        if self.sweeping:
            self.sweep_again = True
            return
        self.sweeping = True
        self.ctx.nursery.start_soon(self._sweep)

    async def _sweep(self) -> None:
        try:
            self.sweep_again = True
            while self.sweep_again:
                self.sweep_again = False
                await self.backend.empty_trash()
        except OSError as error:  # the next removal tries again
            self.ctx.log.warning("trash not emptied", tier=self.definition.name, error=str(error))
        finally:
            self.sweeping = False

    def _fetched(self, size: int) -> None:
        self.counts["fetches"] += 1
        self.counts["bytes_out"] += size

    def _health(self, healthy: bool, problem: str) -> None:
        if healthy == self.healthy:
            return
        self.healthy, self.problem = healthy, problem
        if healthy:
            self.ctx.log.info("storage tier works again", tier=self.definition.name)
        else:
            self.ctx.log.warning("storage tier failing", tier=self.definition.name, problem=problem)
        self.ctx.publish(TierHealthChanged(tier=self.definition.name, healthy=healthy, problem=problem))


def discard_staged(staged: Staged) -> None:
    """Remove a staged copy once read (a local tier's own file is left alone)."""
    if staged.temporary:
        discard(staged.path)
