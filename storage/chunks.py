"""A read-only file over a list of byte chunks, so a dataset received in fragments can be
parsed without joining it into one big buffer (only what is read gets copied)."""

import bisect
import io
from collections.abc import Sequence


class ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Sequence[bytes | memoryview]) -> None:
        self._chunks = [memoryview(c).cast("B") for c in chunks]
        self._starts: list[int] = []
        position = 0
        for chunk in self._chunks:
            self._starts.append(position)
            position += len(chunk)
        self._size = position
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        target = memoryview(buffer).cast("B")
        wanted = min(len(target), self._size - self._position)
        done = 0
        index = bisect.bisect_right(self._starts, self._position) - 1
        while done < wanted:
            chunk = self._chunks[index]
            start = self._position - self._starts[index]
            take = min(len(chunk) - start, wanted - done)
            target[done : done + take] = chunk[start : start + take]
            done += take
            self._position += take
            index += 1
        return done

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._position
        buffer = bytearray(min(size, self._size - self._position))
        return bytes(buffer[: self.readinto(buffer)])
