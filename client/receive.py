"""Where the instances of a C-GET go: the C-STORE sub-operations the peer sends us.

Two targets: a folder, where each instance becomes `<SOP Instance UID>.dcm`, a Part 10
file written as the bytes arrive (temp file beside it, fsync, rename: a reader never sees
half a file); or a callback that gets each instance in memory. Either way the target
answers the sub-operation with a status: Success, or a Failure saying what went wrong on
our side.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from ..protocol.commands import CStoreRQ
from ..protocol.status import Status
from ..protocol.uid import is_valid_uid
from ..storage.files import discard, open_temp_beside, publish
from ..storage.part10 import Part10Writer, file_meta_bytes
from .results import ReceivedInstance
from .link import DatasetSink, MemorySink

OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
FLUSH_AT = 1024 * 1024  # write to disk in pieces this big: one thread hop each
DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024  # callback mode: the largest instance we hold

InstanceCallback = Callable[[ReceivedInstance], "Awaitable[int | None] | int | None"]


class Part10FileSink:
    """Writes one incoming dataset, behind its Part 10 header, to a temp file beside `dest`.

    Never raises into the link's reader: an I/O error is kept in `error` and the rest of
    the dataset is dropped, so the sub-operation can be answered with a failure.
    """

    def __init__(self, dest: Path, header: bytes) -> None:
        self.dest = dest
        self.error: str | None = None
        self._header = header
        self._buffer = bytearray()
        self._tmp: Path | None = None
        self._file = None
        self._writer: Part10Writer | None = None

    async def write(self, data: memoryview) -> None:
        if self.error is None:
            self._buffer += data
            if len(self._buffer) >= FLUSH_AT:
                await self._flush()

    async def finish(self) -> None:
        if self.error is None:
            await self._flush()
        if self.error is None:
            await self._in_thread(self._finish_file)

    async def discard(self) -> None:
        await trio.to_thread.run_sync(self._drop_file)

    async def publish(self) -> Path:
        assert self._tmp is not None and self.error is None
        await trio.to_thread.run_sync(lambda: publish(self._tmp, self.dest, overwrite=True))
        return self.dest

    async def _flush(self) -> None:
        buffer, self._buffer = self._buffer, bytearray()
        await self._in_thread(self._write_file, buffer)

    async def _in_thread(self, function, *args) -> None:
        try:
            await trio.to_thread.run_sync(function, *args)
        except OSError as error:
            self.error = f"cannot write {self.dest.name}: {error.strerror or error}"
            await trio.to_thread.run_sync(self._drop_file)

    def _write_file(self, data: bytearray) -> None:
        if self._writer is None:
            self._tmp, self._file = open_temp_beside(self.dest)
            self._writer = Part10Writer(self._file, self._header)
        self._writer.write(data)

    def _finish_file(self) -> None:
        if self._writer is None:
            self._write_file(bytearray())
        self._writer.finish()  # fsync: durable before we answer Success
        self._file.close()

    def _drop_file(self) -> None:
        if self._file is not None:
            self._file.close()
        discard(self._tmp)


class DroppingSink:
    """Takes a dataset we will refuse, keeping nothing."""

    async def write(self, data: memoryview) -> None:
        pass

    async def finish(self) -> None:
        pass

    async def discard(self) -> None:
        pass


class InstanceTarget:
    """Receives C-STORE sub-operations: a sink per dataset, then an answer per instance."""

    def sink_for(self, rq: CStoreRQ, transfer_syntax: str) -> DatasetSink:
        raise NotImplementedError

    async def take(
        self, rq: CStoreRQ, transfer_syntax: str, sink: DatasetSink | None
    ) -> tuple[int, str | None, ReceivedInstance | None]:
        """(status, error comment, instance if kept) for one completed C-STORE."""
        raise NotImplementedError


class RefuseInstances(InstanceTarget):
    """C-STORE requests when no C-GET of ours is running."""

    def sink_for(self, rq: CStoreRQ, transfer_syntax: str) -> DatasetSink:
        return DroppingSink()

    async def take(self, rq, transfer_syntax, sink):
        return Status.PROCESSING_FAILURE, "no C-GET in progress", None


class FolderTarget(InstanceTarget):
    def __init__(self, folder: Path, *, source_ae_title: str) -> None:
        self.folder = folder
        self.source_ae_title = source_ae_title

    def sink_for(self, rq: CStoreRQ, transfer_syntax: str) -> DatasetSink:
        uid = rq.affected_sop_instance_uid
        if not is_valid_uid(uid) or not is_valid_uid(rq.affected_sop_class_uid):
            return DroppingSink()  # never let a malformed UID become a file name
        header = file_meta_bytes(
            sop_class_uid=rq.affected_sop_class_uid,
            sop_instance_uid=uid,
            transfer_syntax_uid=transfer_syntax,
            source_ae_title=self.source_ae_title,
        )
        return Part10FileSink(self.folder / f"{uid}.dcm", header)

    async def take(self, rq, transfer_syntax, sink):
        if not isinstance(sink, Part10FileSink):
            return CANNOT_UNDERSTAND, "invalid SOP Class or Instance UID", None
        if sink.error is None:
            try:
                path = await sink.publish()
            except OSError as error:
                sink.error = f"cannot publish {sink.dest.name}: {error.strerror or error}"
        if sink.error is not None:
            return OUT_OF_RESOURCES, sink.error[:64], None
        instance = ReceivedInstance(
            sop_class_uid=rq.affected_sop_class_uid,
            sop_instance_uid=rq.affected_sop_instance_uid,
            transfer_syntax_uid=transfer_syntax,
            path=path,
        )
        return Status.SUCCESS, None, instance


class CallbackTarget(InstanceTarget):
    """Hands each instance, in memory, to a function (sync or async). It may return a
    status to answer with; None means Success. If it raises, the sub-operation is
    answered with a failure and the exception goes on to the caller of the C-GET."""

    def __init__(self, callback: InstanceCallback, *, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        self.callback = callback
        self.memory_limit = memory_limit

    def sink_for(self, rq: CStoreRQ, transfer_syntax: str) -> DatasetSink:
        return MemorySink(self.memory_limit)

    async def take(self, rq, transfer_syntax, sink):
        assert isinstance(sink, MemorySink)
        instance = ReceivedInstance(
            sop_class_uid=rq.affected_sop_class_uid,
            sop_instance_uid=rq.affected_sop_instance_uid,
            transfer_syntax_uid=transfer_syntax,
            data=sink.data,
        )
        answer = self.callback(instance)
        if inspect.isawaitable(answer):
            answer = await answer
        return (Status.SUCCESS if answer is None else int(answer)), None, instance


def target_for(into: str | os.PathLike[str] | InstanceCallback, *, source_ae_title: str) -> InstanceTarget:
    if callable(into):
        return CallbackTarget(into)
    folder = Path(into)
    folder.mkdir(parents=True, exist_ok=True)
    return FolderTarget(folder, source_ae_title=source_ae_title)
