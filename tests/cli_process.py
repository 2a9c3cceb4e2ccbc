"""Run the triopacs command as a real subprocess from Trio tests."""

import os
import subprocess
import sys
from collections.abc import Sequence

import trio

TRIOPACS = [sys.executable, "-m", "triopacs"]


async def run_cli(args: Sequence[str], *, cwd=None, env=None, timeout: float = 60) -> subprocess.CompletedProcess:
    with trio.fail_after(timeout):
        return await trio.run_process(
            [*TRIOPACS, *args], capture_stdout=True, capture_stderr=True, check=False, cwd=cwd,
            env={**os.environ, **(env or {})},
        )


class LineReader:
    """Reads a process's output line by line."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def readline(self) -> str:
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some(4096)
            if not chunk:
                line, self._buffer = self._buffer, b""
                return line.decode()
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()
