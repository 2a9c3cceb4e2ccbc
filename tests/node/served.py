"""`triopacs serve` as a real process, for tests that watch the node from outside: its
memory through /proc, whether it is still alive, what it logged.

    async with served_node(tmp_path, "--log-level", "info") as node:
        node.port, node.rss(), node.log_text()
"""

import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from cli_process import TRIOPACS, LineReader

AE_TITLE = "TRIOPACS"
READY = re.compile(r"ready (\S+) dicom=([\d.]+):(\d+) ")


@dataclass
class ServedNode:
    process: trio.Process
    ae_title: str
    host: str
    port: int
    log_path: Path

    def rss(self) -> int:
        """The node's resident memory in bytes (VmRSS): its own process and its worker
        processes (where the associations run), together."""
        return sum(_rss(pid) for pid in [self.process.pid, *_children(self.process.pid)])

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:  # ended meanwhile
        return 0
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found.group(1)) * 1024 if found else 0


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from any of its threads)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@asynccontextmanager
async def served_node(tmp_path: Path, *extra: str) -> AsyncIterator[ServedNode]:
    """Start `triopacs serve` on a free port (logs as JSON lines to a file, so a chatty
    node never blocks on a full pipe), wait for its ready line, stop it at the end."""
    log_path = tmp_path / "node.log"
    with open(log_path, "wb") as log:
        process = await trio.lowlevel.open_process(
            [*TRIOPACS, "serve", "--data", str(tmp_path / "data"), "--port", "0", "--http-port", "0", "--events-port", "0", "--ae-title", AE_TITLE,
             "--log-format", "json", *extra],
            stdout=subprocess.PIPE, stderr=log,
        )
    try:
        with trio.fail_after(30):
            line = await LineReader(process.stdout).readline()
        found = READY.match(line)
        assert found, f"no ready line: {line!r}; log: {log_path.read_text()[-2000:]}"
        yield ServedNode(process, found.group(1), found.group(2), int(found.group(3)), log_path)
    finally:
        process.terminate()
        with trio.move_on_after(5):
            await process.wait()
        process.kill()
        await process.wait()
