"""Retrieval: C-GET (DCMTK getscu) and C-MOVE (to a DCMTK storescp) of one study.

Each serving node - triopacs, Orthanc, dcmqrscp - is started empty, filled with the same
N x 513 KiB CT study by storescu, and then asked, R times each, to send the whole study:

- C-GET: `getscu` at STUDY level, writing what it receives to a scratch folder;
- C-MOVE: `movescu` at STUDY level with a DCMTK storescp as the move destination.

Printed per node: images per second (received and counted on the client side), the
serving node's CPU seconds (from /proc), and the ratio to the faster peer in the same
run. The move destination and every client are the same programs for every node.

    .venv/bin/python bench/retrieve_throughput.py              # 1000 images, 3 runs
    .venv/bin/python bench/retrieve_throughput.py --quick      # 100 images, 1 run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import dicom_samples  # noqa: E402
from peers import LOOPBACK, run_dcmtk  # noqa: E402
from peers.dcmtk import dcmtk_program  # noqa: E402
from peers.process import find_program, serve  # noqa: E402
from store_throughput import DcmtkDcmqrscp, Orthanc, Running, Target, TriopacsTarget  # noqa: E402

DESTINATION = "MOVEDEST"


class TriopacsServing(TriopacsTarget):
    """The node, knowing the move destination as a [[remote]] AE."""

    def __init__(self, destination_port: int) -> None:
        self.destination_port = destination_port

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        config = workdir / "retrieve.toml"
        config.write_text(
            f'[[remote]]\nae_title = "{DESTINATION}"\nhost = "{LOOPBACK}"\nport = {self.destination_port}\n'
        )
        return [*super().command(port, data_dir, workdir, extra_ports, concurrent), "--config", str(config)]


class OrthancServing(Orthanc):
    def __init__(self, destination_port: int) -> None:
        self.destination_port = destination_port

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        argv = super().command(port, data_dir, workdir, extra_ports, concurrent)
        path = Path(argv[-1])
        config = json.loads(path.read_text())
        config["DicomModalities"] = {"dest": [DESTINATION, LOOPBACK, self.destination_port]}
        config["DicomAlwaysAllowGet"] = True
        config["DicomAlwaysAllowMove"] = True
        path.write_text(json.dumps(config))
        return argv


class DcmqrscpServing(DcmtkDcmqrscp):
    def __init__(self, destination_port: int) -> None:
        self.destination_port = destination_port

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        argv = super().command(port, data_dir, workdir, extra_ports, concurrent)
        path = Path(argv[-1])
        text = path.read_text().replace(
            "HostTable BEGIN\n", f"HostTable BEGIN\ndest = ({DESTINATION}, {LOOPBACK}, {self.destination_port})\n"
        )
        path.write_text(text)
        return argv


SERVING = {"triopacs": TriopacsServing, "orthanc": OrthancServing, "dcmtk-dcmqrscp": DcmqrscpServing}
PEERS = ("orthanc", "dcmtk-dcmqrscp")


@dataclass
class Result:
    node: str
    get: list[tuple[float, float]] = field(default_factory=list)  # (images/s, server CPU s)
    move: list[tuple[float, float]] = field(default_factory=list)
    error: str | None = None


def count_files(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file())


@contextlib.asynccontextmanager
async def destination(scratch: Path) -> AsyncIterator[tuple[int, Path]]:
    """A DCMTK storescp taking the C-MOVE sub-operations; yields its port and folder."""

    def launch(ports: list[int], workdir: Path) -> list[str]:
        (workdir / "in").mkdir()
        return [dcmtk_program("storescp"), "--aetitle", DESTINATION, "--output-directory", str(workdir / "in"), str(ports[0])]

    async with serve("move-destination", launch, parent_dir=scratch) as server:
        yield server.port, server.workdir / "in"


async def fill(running: Running, folder: Path, expected: int) -> None:
    result = await run_dcmtk("storescu", "-aet", "BENCH", "-aec", running.target.ae_title, "+sd", "+r",
                             LOOPBACK, str(running.port), str(folder), timeout=600)
    stored = await running.target.stored_count(running)
    if result.returncode != 0 or stored < expected:
        raise RuntimeError(f"filling {running.target.name}: storescu exit {result.returncode}, {stored}/{expected} stored")


async def timed(running: Running, received: Path, count: int, *argv: str) -> tuple[float, float]:
    shutil.rmtree(received, ignore_errors=True)
    received.mkdir(parents=True)
    cpu = running.cpu_seconds()
    started = time.perf_counter()
    result = await run_dcmtk(*argv, timeout=600)
    elapsed = time.perf_counter() - started
    got = count_files(received)
    if result.returncode != 0 or got != count:
        raise RuntimeError(f"{argv[0]} from {running.target.name}: exit {result.returncode}, {got}/{count} received: "
                           f"{(result.errors() or [''])[0]}")
    return count / elapsed, running.cpu_seconds() - cpu


async def measure(name: str, study: str, images: Path, count: int, runs: int, scratch: Path) -> Result:
    outcome = Result(name)
    try:
        async with destination(scratch) as (dest_port, dest_folder):
            target: Target = SERVING[name](dest_port)
            async with target.start(scratch) as running:
                await fill(running, images, count)
                keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
                got = scratch / f"{name}-get"
                for _ in range(runs):
                    outcome.get.append(await timed(
                        running, got, count, "getscu", "-aet", "GETSCU", "-aec", target.ae_title, "-S", *keys,
                        "-od", str(got), LOOPBACK, str(running.port)))
                    shutil.rmtree(dest_folder, ignore_errors=True)
                    dest_folder.mkdir()
                    outcome.move.append(await timed(
                        running, dest_folder, count, "movescu", "-aet", "MOVESCU", "-aec", target.ae_title,
                        "-aem", DESTINATION, "-S", *keys, LOOPBACK, str(running.port)))
    except Exception as error:  # one node failing does not stop the others
        while isinstance(error, BaseExceptionGroup) and error.exceptions:
            error = error.exceptions[0]
        outcome.error = f"{type(error).__name__}: {error}"
    return outcome


def table(title: str, results: list[Result], attribute: str, count: int) -> str:
    rates = {r.node: statistics.median(v[0] for v in getattr(r, attribute)) for r in results if getattr(r, attribute)}
    peers = [rates[p] for p in PEERS if p in rates]
    faster = max(peers) if peers else None
    lines = [title, f"{'node':<18}{'img/s':>9}{'server CPU ms/img':>19}{'vs faster peer':>16}"]
    for r in results:
        samples = getattr(r, attribute)
        if not samples:
            lines.append(f"{r.node:<18}  failed: {r.error}")
            continue
        cpu = statistics.median(v[1] for v in samples) / count * 1000
        ratio = f"{rates[r.node] / faster:.2f}x" if faster else "-"
        lines.append(f"{r.node:<18}{rates[r.node]:>9.1f}{cpu:>19.2f}{ratio:>16}")
    return "\n".join(lines)


async def run(options) -> int:
    for program in ("storescu", "storescp", "getscu", "movescu", "dcmqrscp"):
        dcmtk_program(program)
    with contextlib.suppress(Exception):
        find_program("Orthanc", "/usr/sbin/Orthanc")
    work = Path(tempfile.mkdtemp(prefix="triopacs-retrieve-", dir=options.work_dir))
    try:
        series = dicom_samples.write_series(work / "images", dicom_samples.SeriesSpec(count=options.count, patient_id="RETR1"))
        print(f"one study of {options.count} CT images; {options.runs} run(s) per node", flush=True)
        results = []
        for name in options.nodes:
            scratch = work / name
            scratch.mkdir()
            results.append(await measure(name, series.study_instance_uid, series.folder, options.count, options.runs, scratch))
            print(f"  {name}: done{'' if results[-1].error is None else ' - ' + results[-1].error}", flush=True)
        print()
        print(table(f"C-GET (getscu) of {options.count} x 513 KiB, median of {options.runs}", results, "get", options.count))
        print()
        print(table(f"C-MOVE (movescu, to a DCMTK storescp) of {options.count} x 513 KiB, median of {options.runs}",
                    results, "move", options.count))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100 images, 1 run")
    parser.add_argument("--nodes", default=",".join(SERVING), help=f"comma-separated, from {', '.join(SERVING)}")
    parser.add_argument("--work-dir", type=Path, default=None)
    options = parser.parse_args()
    if options.quick:
        options.count, options.runs = 100, 1
    options.nodes = options.nodes.split(",")
    return trio.run(run, options)


if __name__ == "__main__":
    sys.exit(main())
