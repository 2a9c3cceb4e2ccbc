"""A new object of a local tier, written while its bytes still arrive.

The hot tier hands one out (`OpenWriter`) so that a C-STORE can stream a large dataset
to disk as it comes in, on the association's own worker threads, instead of holding it
in memory. The writer only ever touches its temp file: beside the destination when the
key is known, else in the tier's `incoming/` area (same filesystem, so placing it is a
link). Putting it under its key - fsync, link, directory fsync - is the tier's own job
(`Place`, run on the tier's worker thread); so is removing what was placed.

Blocking methods: call them from a worker thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from .files import discard, ensure_directory, place_durably, start_writeback, temp_path_beside
from .part10 import Part10Writer, WrittenFile

Chunk = bytes | bytearray | memoryview


class ObjectWriter:
    def __init__(self, dest: Path | None, incoming: Path, *, sync: bool) -> None:
        """`dest`: where the object will live, if known yet; `incoming`: where its temp
        file goes otherwise."""
        self.dest = dest
        self.incoming = incoming
        self.sync = sync
        self.temp: Path | None = None
        self._file = None
        self._writer: Part10Writer | None = None
        self._tail: list[Chunk] = []
        self._written: WrittenFile | None = None

    @property
    def opened(self) -> bool:
        return self._writer is not None

    def write(self, chunks: Sequence[Chunk], *, begin_writeback: bool = True) -> None:
        """Append chunks to the temp file (created on first use); with begin_writeback the
        kernel starts putting them on disk now, so the final fsync has only the tail left."""
        writer = self._open()
        for chunk in chunks:
            writer.write(chunk)
        if begin_writeback:
            self._file.flush()
            start_writeback(self._file.fileno())

    def hand_in(self, tail: list[Chunk]) -> None:
        """The last bytes, kept (no I/O) until the tier places the object: the tier's one
        worker-thread call then writes, hashes and makes them durable together."""
        self._tail = tail

    def read_back(self):
        """The temp file for reading (its header is parsed when it arrived before the
        destination was known)."""
        assert self.temp is not None
        return open(self.temp, "rb")

    def place(self, dest: Path, *, overwrite: bool) -> tuple[bool, WrittenFile]:
        """Write the tail and put the file at dest durably. (False, ...) when dest exists
        and overwrite is False: the temp file stays, to be placed again or abandoned."""
        if self._written is None:
            writer = self._open()
            if self.sync:
                # The disk starts on the last bytes before they are hashed: the hash
                # overlaps the write-out and the fsync has less left to wait for.
                writer.write_then_hash(self._take_tail(), start_writeback)
            else:
                self.write(self._take_tail(), begin_writeback=False)
            self._written = writer.finish(sync=False)
            self._file.close()
            self._file = None
        ensure_directory(dest.parent, sync=self.sync)
        assert self.temp is not None
        placed = place_durably(self.temp, dest, overwrite=overwrite, sync=self.sync)
        return placed, self._written

    def abandon(self) -> None:
        """Close and remove the temp file (nothing was placed, or the caller gave up)."""
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass  # a full disk fails the flush of what close would write: the file goes anyway
        discard(self.temp)

    def describe(self) -> dict[str, object]:
        """What a trace keeps of it: never the data."""
        return {"dest": str(self.dest) if self.dest else None, "temp": str(self.temp) if self.temp else None}

    def _take_tail(self) -> list[Chunk]:
        tail, self._tail = self._tail, []
        return tail

    def _open(self) -> Part10Writer:
        if self._writer is None:
            if self.dest is not None:
                self.temp = temp_path_beside(self.dest)
                self._file = self._create_beside_destination(self.temp)
            else:
                ensure_directory(self.incoming, sync=False)
                self.temp = self.incoming / f"{uuid.uuid4().hex}.part"
                self._file = open(self.temp, "xb")
            self._writer = Part10Writer(self._file, b"")
        return self._writer

    def _create_beside_destination(self, temp: Path):
        """Open temp in the destination's folder, creating the folder. A large dataset
        gets here before its store holds the study lock, and cleanup may remove the
        folder as it empties: if it vanished in between, create it once more."""
        assert self.dest is not None
        for attempt in (1, 2):
            ensure_directory(self.dest.parent, sync=self.sync)
            try:
                return open(temp, "xb")
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
