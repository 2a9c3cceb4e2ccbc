"""Hostile load against `triopacs serve`, beyond the bounded tests in tests/node: mutated
whole sessions, connection floods, floods of tiny messages, slow clients. Prints what
the node survived and what it cost (docs/limits.md says what it should do).

    .venv/bin/python bench/hostile.py [--sessions 20000] [--seed 1]

Each part runs against one node (durability os, ARTIM 2 s, idle timeout 5 s, logs to a file) and reports: whether the
node process is still alive, "actor failed" and traceback lines in its log (an
association that fails is fine; a failure anywhere else is not), sessions that hung
(no close within the deadline), the node's RSS before and after, and how long a fresh
C-ECHO took while the load ran.
"""

import argparse
import logging
import random
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom
import structlog
import pydicom.data
import trio
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from triopacs import connect
from triopacs.client.contexts import verification_contexts
from triopacs.protocol.commands import CEchoRQ, CFindRQ, CStoreRQ
from triopacs.protocol.fragments import fragment_message
from triopacs.protocol.negotiation import ProposedContext, build_request
from triopacs.protocol.pdu import AReleaseRQ

AE = "TRIOPACS"
VERIFICATION = "1.2.840.10008.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
ECHO_RSP = struct.pack("<HHLH", 0x0000, 0x0100, 2, 0x8030)  # Command Field = C-ECHO-RSP, as encoded
READY = re.compile(r"ready \S+ dicom=([\d.]+):(\d+) ")


# ---------------------------------------------------------------- the node


class Node:
    def __init__(self, workdir: Path) -> None:
        self.log_path = workdir / "node.log"
        self.workdir = workdir

    async def __aenter__(self) -> "Node":
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self.process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "triopacs", "serve", "--data", str(self.workdir / "data"), "--port", "0",
             "--ae-title", AE, "--log-format", "json", "--log-level", "info"],
            stdout=subprocess.PIPE, stderr=log,
            # Short timers: a fuzzed session that stalls is closed in seconds, not minutes.
            env={"TRIOPACS_STORAGE_DURABILITY": "os", "TRIOPACS_NETWORK_ARTIM_TIMEOUT": "2",
                 "TRIOPACS_NETWORK_IDLE_TIMEOUT": "5", "PATH": "/usr/bin:/bin"},
        )
        line = b""
        while not line.endswith(b"\n"):
            line += await self.process.stdout.receive_some(1)
        self.port = int(READY.match(line.decode()).group(2))
        return self

    async def __aexit__(self, *exc) -> None:
        self.process.terminate()
        with trio.move_on_after(5):
            await self.process.wait()
        self.process.kill()

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_counts(self) -> dict[str, int]:
        text = self.log_path.read_text(errors="replace")
        failed = [line for line in text.splitlines() if '"actor failed"' in line]
        return {
            "actor failures": len(failed),
            "non-association failures": sum('"/node/associations/a' not in line for line in failed),
            "tracebacks": text.count("Traceback"),
            "log MB": round(len(text) / 1e6, 1),
        }


async def echo_ms(port: int) -> float:
    started = time.perf_counter()
    with trio.fail_after(60):
        async with connect("127.0.0.1", port, called_ae_title=AE, contexts=verification_contexts()) as association:
            await association.echo()
    return (time.perf_counter() - started) * 1000


async def echo_while(port: int, done: trio.Event, samples: list[float]) -> None:
    while not done.is_set():
        samples.append(await echo_ms(port))
        await trio.sleep(0.2)


def report(title: str, node: Node, rss_before: float, extra: dict, echoes: list[float]) -> None:
    figures = {
        "node alive": node.alive(),
        **node.log_counts(),
        "RSS MB before -> after": f"{rss_before:.0f} -> {node.rss_mb():.0f}",
        **extra,
    }
    if echoes:
        figures["C-ECHO during load ms (median / max)"] = f"{statistics.median(echoes):.1f} / {max(echoes):.1f}"
    print(f"\n## {title}")
    for key, value in figures.items():
        print(f"- {key}: {value}")


# ---------------------------------------------------------------- a valid session to mutate


def encode(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


def session_bytes() -> bytes:
    """Associate, echo, store CT_small, find, release - as one byte string."""
    contexts = [ProposedContext(abstract_syntax=uid, transfer_syntaxes=(EXPLICIT_LE,)) for uid in (VERIFICATION, CT, STUDY_FIND)]
    rq = build_request(calling_ae_title="FUZZ", called_ae_title=AE, contexts=contexts)
    ct = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientName = "*"
    query.StudyInstanceUID = ""
    parts = [rq.encode()]
    messages = [
        (CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION), 1, None),
        (CStoreRQ(message_id=2, affected_sop_class_uid=CT, affected_sop_instance_uid=ct.SOPInstanceUID), 3, encode(ct)),
        (CFindRQ(message_id=3, affected_sop_class_uid=STUDY_FIND), 5, encode(query)),
    ]
    for message, context_id, dataset in messages:
        parts += [pdu.encode() for pdu in fragment_message(message, dataset, context_id=context_id, max_pdu_length=16384)]
    parts.append(AReleaseRQ().encode())
    return b"".join(parts)


def mutate(data: bytes, rng: random.Random) -> bytes:
    mutated = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.choice(["flip", "flip", "truncate", "insert", "delete", "duplicate", "length"])
        at = rng.randrange(len(mutated)) if mutated else 0
        if kind == "flip" and mutated:
            mutated[at] = rng.randrange(256)
        elif kind == "truncate":
            del mutated[at:]
        elif kind == "insert":
            mutated[at:at] = rng.randbytes(rng.randint(1, 16))
        elif kind == "delete":
            del mutated[at : at + rng.randint(1, 64)]
        elif kind == "duplicate":
            mutated[at:at] = mutated[at : at + rng.randint(1, 4096)]
        elif kind == "length" and len(mutated) > at + 4:
            mutated[at : at + 4] = struct.pack(">L", rng.choice([0, 1, 2, 0xFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)]))
    return bytes(mutated)


async def run_session(port: int, data: bytes, rng: random.Random, outcome: dict[str, int]) -> None:
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        outcome["connect failed"] += 1
        return
    async with stream:
        try:
            position = 0
            while position < len(data):
                step = rng.choice([1, 7, 100, 4096, 65536])
                await stream.send_all(data[position : position + step])
                position += step
            with trio.move_on_after(40) as deadline:  # ARTIM/idle close a stalled session
                while await stream.receive_some(65536):
                    pass
            outcome["hung" if deadline.cancelled_caught else "closed by node"] += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            outcome["reset"] += 1


# ---------------------------------------------------------------- the parts


async def fuzz_sessions(workdir: Path, sessions: int, seed: int) -> None:
    template = session_bytes()
    rng = random.Random(seed)
    async with Node(workdir / "fuzz") as node:
        await echo_ms(node.port)
        before = node.rss_mb()
        outcome = {"closed by node": 0, "reset": 0, "hung": 0, "connect failed": 0}
        echoes: list[float] = []
        done = trio.Event()
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_while, node.port, done, echoes)
            limiter = trio.CapacityLimiter(32)

            async def one(data: bytes, session_rng: random.Random) -> None:
                async with limiter:
                    await run_session(node.port, data, session_rng, outcome)

            async with trio.open_nursery() as sessions_nursery:
                for index in range(sessions):
                    data = mutate(template, rng)
                    await limiter.acquire_on_behalf_of(index)
                    limiter.release_on_behalf_of(index)
                    sessions_nursery.start_soon(one, data, random.Random(rng.random()))
            done.set()
        report(
            f"{sessions} mutated whole sessions (32 at a time)",
            node, before,
            {**outcome, "seconds": round(time.perf_counter() - started, 1), "echo after": f"{await echo_ms(node.port):.1f} ms"},
            echoes,
        )


async def connection_flood(workdir: Path, connections: int) -> None:
    async with Node(workdir / "flood") as node:
        await echo_ms(node.port)
        before = node.rss_mb()
        echoes: list[float] = []
        done = trio.Event()
        opened = refused = 0
        held: list[trio.SocketStream] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_while, node.port, done, echoes)
            for _ in range(connections):
                try:
                    held.append(await trio.open_tcp_stream("127.0.0.1", node.port))
                    opened += 1
                except OSError:
                    refused += 1
                if len(held) >= 500:  # stay under the process's open-file limit
                    for stream in held:
                        await stream.aclose()
                    held.clear()
            done.set()
        for stream in held:
            await stream.aclose()
        report(f"{connections} connections opened as fast as possible, none associating", node, before,
               {"opened": opened, "refused": refused}, echoes)


async def tiny_messages(workdir: Path, count: int) -> None:
    """One association pipelining `count` C-ECHO-RQs without waiting for answers."""
    async with Node(workdir / "tiny") as node:
        before = node.rss_mb()
        rq = build_request(calling_ae_title="TINY", called_ae_title=AE,
                           contexts=[ProposedContext(abstract_syntax=VERIFICATION, transfer_syntaxes=(EXPLICIT_LE,))])
        echo_pdus = b"".join(
            pdu.encode()
            for n in range(count)
            for pdu in fragment_message(CEchoRQ(message_id=n % 65535 + 1, affected_sop_class_uid=VERIFICATION), None,
                                        context_id=1, max_pdu_length=16384)
        )
        answered = 0
        started = time.perf_counter()
        async with await trio.open_tcp_stream("127.0.0.1", node.port) as stream:
            await stream.send_all(rq.encode())
            accepted = await stream.receive_some(65536)  # the A-ASSOCIATE-AC (small: one read)
            assert accepted[:1] == b"\x02", accepted[:16]
            received = b""
            async with trio.open_nursery() as nursery:
                async def send_all() -> None:
                    await stream.send_all(echo_pdus)

                nursery.start_soon(send_all)
                with trio.move_on_after(120):
                    while answered < count:
                        chunk = await stream.receive_some(1 << 20)
                        if not chunk:
                            break
                        received += chunk
                        answered += received.count(ECHO_RSP)
                        received = received[-len(ECHO_RSP) + 1 :]
                nursery.cancel_scope.cancel()
        seconds = time.perf_counter() - started
        report(f"{count} pipelined C-ECHOs on one association", node, before,
               {"answered": answered, "echoes/s": round(answered / seconds), "echo after": f"{await echo_ms(node.port):.1f} ms"}, [])


async def slow_clients(workdir: Path, clients: int) -> None:
    """Clients that send one byte of an A-ASSOCIATE-RQ every second."""
    rq = build_request(calling_ae_title="SLOW", called_ae_title=AE,
                       contexts=[ProposedContext(abstract_syntax=VERIFICATION, transfer_syntaxes=(EXPLICIT_LE,))]).encode()
    async with Node(workdir / "slow") as node:
        before = node.rss_mb()
        echoes: list[float] = []
        closed = 0

        async def trickle() -> None:
            nonlocal closed
            async with await trio.open_tcp_stream("127.0.0.1", node.port) as stream:
                try:
                    for byte in rq[:20]:
                        await stream.send_all(bytes([byte]))
                        await trio.sleep(1)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    closed += 1

        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(trickle)
            await trio.sleep(2)
            for _ in range(10):
                echoes.append(await echo_ms(node.port))
                await trio.sleep(1)
        report(f"{clients} slow clients (one byte a second)", node, before, {"closed by the node": closed}, echoes)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=5_000)
    parser.add_argument("--echoes", type=int, default=100_000)
    parser.add_argument("--slow", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    socket.setdefaulttimeout(None)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # our client is quiet
    with tempfile.TemporaryDirectory(prefix="triopacs-hostile-") as tmp:
        workdir = Path(tmp)
        await fuzz_sessions(workdir, args.sessions, args.seed)
        await connection_flood(workdir, args.connections)
        await tiny_messages(workdir, args.echoes)
        await slow_clients(workdir, args.slow)


if __name__ == "__main__":
    trio.run(main)
