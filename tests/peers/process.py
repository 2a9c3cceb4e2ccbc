"""Start a real server process on loopback, wait until it listens, always reap it.

Rules this module keeps:
- Servers like storescp or Orthanc cannot bind port 0, so a port is chosen by binding
  a throwaway socket to 127.0.0.1:0; if someone else takes it before the server binds,
  the server exits with a bind error and we retry with a new port (bounded).
- "Ready" means: the kernel shows a LISTEN socket on each expected port, and that
  socket belongs to our process (or one of its children). Checking ownership in /proc
  keeps a stranger already listening on the port from passing for our server.
- Waiting is a bounded backoff poll with an overall deadline, cut short as soon as the
  process exits; never a fixed sleep.
- Every process is started in its own session, and on exit (normal, failure or
  cancellation) its process group gets SIGTERM, then SIGKILL after a grace period,
  and is reaped. Its temporary directory is removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

LOOPBACK = "127.0.0.1"

# Output that tells us the chosen port was taken between our probe and the bind.
_BIND_FAILURE = re.compile(
    r"already in use|EADDRINUSE|cannot (?:bind|listen)|failed to bind", re.IGNORECASE
)


class PeerError(RuntimeError):
    """A peer process could not be started or did not behave."""


class ToolMissing(PeerError):
    """An external program the tests need is not installed."""

    def __init__(self, program: str, hint: str = "") -> None:
        message = (
            f"{program!r} is not installed on this machine. Run the suite with "
            f"`bash tests/run.sh`, which installs every peer the tests need"
        )
        super().__init__(message + (f" ({hint})" if hint else "") + ".")


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (the server may still lose it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """Distinct free ports; sockets stay bound until all are chosen so none repeats."""
    probes = []
    try:
        for _ in range(count):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(probe)
            probe.bind((LOOPBACK, 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


# ---------------------------------------------------------------- /proc readings


def _process_tree(pid: int) -> list[int]:
    """pid and all its live descendants."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
    return tree


def _socket_inodes(pids: Sequence[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    return inodes


def _listening_inodes_by_port() -> dict[int, set[str]]:
    listening: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)  # column titles
            for line in lines:
                fields = line.split()
                if fields[3] != "0A":  # TCP_LISTEN
                    continue
                port = int(fields[1].rsplit(":", 1)[1], 16)
                listening.setdefault(port, set()).add(fields[9])
    return listening


def ports_listened_by(pid: int) -> set[int]:
    """TCP ports on which pid (or a descendant) holds a listening socket."""
    owned = _socket_inodes(_process_tree(pid))
    return {port for port, inodes in _listening_inodes_by_port().items() if inodes & owned}


def cpu_seconds(pid: int) -> float:
    """User+system CPU of pid, its live descendants and the children it has reaped."""
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    total = 0
    for index, member in enumerate(_process_tree(pid)):
        with contextlib.suppress(OSError):
            with open(f"/proc/{member}/stat") as stat:
                # The command name may contain spaces: fields start after its ')'.
                fields = stat.read().rsplit(")", 1)[1].split()
            utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
            total += utime + stime
            if index == 0:  # reaped children's time is already folded into the root
                total += cutime + cstime
    return total / ticks_per_second


# ---------------------------------------------------------------- the server


@dataclass
class ServerProcess:
    """A running server started by `serve`; `ports` are the ones it listens on."""

    name: str
    argv: list[str]
    process: trio.Process
    ports: list[int]
    workdir: Path
    log_path: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return self.ports[0]

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def describe_failure(self, what: str) -> str:
        status = self.process.returncode
        state = "still running" if status is None else f"exit status {status}"
        return (
            f"{self.name}: {what} ({state}); command: {' '.join(self.argv)}\n"
            f"--- last output of {self.name} ---\n{self.log_tail()}"
        )


Launch = Callable[[list[int], Path], list[str]]
"""Given the chosen ports and the work dir, write any config and return the argv."""


async def _wait_until_ready(
    server: ServerProcess, ready_line: str | None, deadline: float
) -> None:
    delay = 0.002
    while True:
        listening = ports_listened_by(server.pid) if server.process.returncode is None else set()
        line_seen = ready_line is None or any(
            line.startswith(ready_line) for line in server.log_text().splitlines()
        )
        if set(server.ports) <= listening and line_seen:
            return
        if server.process.returncode is not None:
            raise _EarlyExit(server)
        if trio.current_time() >= deadline:
            raise PeerError(server.describe_failure("did not start listening in time"))
        # Bounded backoff; wake at once if the process dies meanwhile.
        with trio.move_on_after(delay):
            await server.process.wait()
        delay = min(delay * 2, 0.05)


class _EarlyExit(Exception):
    def __init__(self, server: ServerProcess) -> None:
        self.server = server


async def _stop(server: ServerProcess, grace: float) -> None:
    with trio.CancelScope(shield=True):
        steps = [(signal.SIGTERM, grace)] if grace > 0 else []
        for sig, wait in [*steps, (signal.SIGKILL, 10.0)]:
            if server.process.returncode is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, sig)
            with trio.move_on_after(wait):
                await server.process.wait()
        # The leader is gone; children it forked (dcmqrscp, storescp --fork) may
        # linger in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGKILL)
        await server.process.wait()


@contextlib.asynccontextmanager
async def serve(
    name: str,
    launch: Launch,
    *,
    port_count: int = 1,
    env: Mapping[str, str] | None = None,
    ready_line: str | None = None,
    start_timeout: float = 30.0,
    stop_grace: float = 10.0,
    attempts: int = 4,
    parent_dir: Path | None = None,
    keep_dir: bool = False,
) -> AsyncIterator[ServerProcess]:
    """Run `launch(ports, workdir)` as a server until the block exits.

    Yields once every port is listened on by the process (and `ready_line`, if
    given, begins a line of its output). stdout and stderr both go to
    `workdir/output.log`. The workdir is a fresh temporary directory, removed on
    exit unless keep_dir (or the environment has TRIOPACS_KEEP_PEER_DIRS=1).
    On exit the process group gets SIGTERM and `stop_grace` seconds to finish, then
    SIGKILL (stop_grace=0: SIGKILL at once).
    """
    keep_dir = keep_dir or os.environ.get("TRIOPACS_KEEP_PEER_DIRS") == "1"
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=parent_dir))
    full_env = {**os.environ, "TCP_NODELAY": "1", **(env or {})}
    try:
        for attempt in range(1, attempts + 1):
            ports = free_ports(port_count)
            attempt_dir = workdir / f"start{attempt}" if attempt > 1 else workdir
            attempt_dir.mkdir(exist_ok=True)
            argv = launch(ports, attempt_dir)
            log_path = attempt_dir / "output.log"
            with open(log_path, "wb") as log:
                try:
                    process = await trio.lowlevel.open_process(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                        cwd=attempt_dir,
                        env=full_env,
                        start_new_session=True,
                    )
                except FileNotFoundError:
                    raise ToolMissing(argv[0]) from None
            server = ServerProcess(name, argv, process, ports, attempt_dir, log_path, full_env)
            try:
                try:
                    await _wait_until_ready(server, ready_line, trio.current_time() + start_timeout)
                except _EarlyExit:
                    if _BIND_FAILURE.search(server.log_text()) and attempt < attempts:
                        continue  # lost the port race: try again with new ports
                    raise PeerError(server.describe_failure("exited during start-up")) from None
                yield server
                return
            finally:
                await _stop(server, stop_grace)
        raise AssertionError("unreachable")  # the loop returns or raises
    finally:
        if not keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)


def find_program(name: str, *candidates: str | os.PathLike[str], hint: str = "") -> str:
    """The first existing executable among candidates, else `name` on PATH."""
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return os.fspath(candidate)
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(name, hint)
    return found
