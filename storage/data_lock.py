"""One node per data directory: an exclusive lock held for the node's whole life.

Every database of the node has one writer (its owning actor), which holds only while one
node runs on the directory. A second `triopacs serve` on the same `--data`, or a command
that runs a node of its own there (worklist, migrate) while the node serves, is refused
with `DataDirectoryInUse` naming the holder, before it opens anything.

The lock is `flock` on `<data>/node.lock`: the kernel drops it when the process dies,
however it dies, so a killed node never leaves a stale lock behind. The file keeps the
holder's pid, for the message only.
"""

import fcntl
import os
from pathlib import Path

LOCK_FILE = "node.lock"


class DataDirectoryInUse(RuntimeError):
    """Another node runs on this data directory."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        super().__init__(f"the data directory {data_dir} is in use by another node ({holder})")
        self.data_dir = data_dir


class DataDirectoryLock:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._fd: int | None = None

    def acquire(self) -> None:
        path = self.data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise DataDirectoryInUse(self.data_dir, f"pid {holder}" if holder.isdigit() else "pid unknown") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> "DataDirectoryLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
