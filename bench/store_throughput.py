"""C-STORE throughput and association latency of DICOM SCPs, compared in one run.

    .venv/bin/python bench/store_throughput.py            # full: 1000 images, median of 3
    .venv/bin/python bench/store_throughput.py --quick    # 100 images, 1 run

What it measures, for each target SCP (a fresh process per measurement, on 127.0.0.1):
1. one association: DCMTK `storescu` sends N generated 512x512 16-bit CT images
   (~514 KiB each) over ONE association; img/s, MB/s (10^6 bytes), and the server's
   CPU seconds (user+system of the process, its children and reaped children, from
   /proc/PID/stat);
2. concurrent: the same N images split over 4 storescu processes at once (4
   associations); DCMTK storescp runs with --fork here (one process per
   association), since by default it serves associations one after another;
   dcmqrscp loses some of these stores (see DcmtkDcmqrscp): the "stored" column
   shows it, and img/s counts only images stored;
3. latency: associate + C-ECHO + release from a raw-socket client in this process
   (tests/peers/raw_echo.py), median and 90th percentile of many rounds; an echoscu
   run would mostly measure exec and dictionary loading.
Targets run in turn, rotated each run (run 1: A B C D, run 2: B C D A, ...) so none
always goes first; the reported figure is the median over runs. Ratios are to the
baseline target (default: DCMTK storescp). Both sides run with TCP_NODELAY=1.

Add a target by subclassing `Target` (see TriopacsTarget): give its name, AE title,
the command that starts it on a port with a data directory, and, if it prints one,
the line that means it is ready.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the peers' process handling and test data

import dicom_samples  # noqa: E402
from peers import LOOPBACK, run_dcmtk  # noqa: E402
from peers.dcmtk import dcmtk_program  # noqa: E402
from peers.process import ServerProcess, find_program, serve  # noqa: E402
from peers.raw_echo import echo_latencies  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from flush_floor import measure as measure_flush_floor  # noqa: E402

MB = 1_000_000
CONCURRENT_ASSOCIATIONS = 4
FLUSH_ROUNDS = 200


# ---------------------------------------------------------------- targets


@dataclass
class Running:
    """A started target: where to send, and how to read its cost and result."""

    target: Target
    server: ServerProcess
    port: int
    data_dir: Path

    @property
    def pid(self) -> int:
        return self.server.pid

    def cpu_seconds(self) -> float:
        return self.server.cpu_seconds()


class Target:
    """One SCP under test. Subclasses say how to start it; the rest is shared."""

    name = "target"
    ae_title = "TARGET"
    ready_line: str | None = None  # a line the process prints when listening
    extra_ports = 0  # ports besides the DICOM one (e.g. an HTTP port)
    stop_grace = 10.0  # seconds between SIGTERM and SIGKILL

    def command(self, port: int, data_dir: Path, workdir: Path, extra_ports: list[int], concurrent: bool) -> list[str]:
        raise NotImplementedError

    def available(self) -> str | None:
        """None if it can run here, else why not."""
        return None

    async def stored_count(self, running: Running) -> int:
        return sum(1 for path in running.data_dir.rglob("*") if path.is_file() and path.name != "index.dat")

    @contextlib.asynccontextmanager
    async def start(self, parent_dir: Path, *, concurrent: bool = False) -> AsyncIterator[Running]:
        def launch(ports: list[int], workdir: Path) -> list[str]:
            (workdir / "data").mkdir()
            return self.command(ports[0], workdir / "data", workdir, ports[1:], concurrent)

        async with serve(
            self.name,
            launch,
            port_count=1 + self.extra_ports,
            ready_line=self.ready_line,
            stop_grace=self.stop_grace,
            parent_dir=parent_dir,
        ) as server:
            yield Running(self, server, server.port, server.workdir / "data")


class DcmtkStorescp(Target):
    name, ae_title = "dcmtk-storescp", "STORESCP"

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        fork = ["--fork"] if concurrent else []
        return [dcmtk_program("storescp"), "--aetitle", self.ae_title, "--output-directory", str(data_dir), *fork, str(port)]


class DcmtkDcmqrscp(Target):
    name, ae_title = "dcmtk-dcmqrscp", "QRSCP"

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        config = workdir / "dcmqrscp.cfg"
        config.write_text(
            f"NetworkTCPPort = {port}\nMaxPDUSize = 65536\nMaxAssociations = 16\n\n"
            "HostTable BEGIN\nHostTable END\n\nVendorTable BEGIN\nVendorTable END\n\n"
            f"AETable BEGIN\n{self.ae_title} {data_dir} RW (100, 8192mb) ANY\nAETable END\n"
        )
        # Default mode: one forked child per association. Under 4 concurrent
        # associations those children race on index.dat and some stores fail ("DB:
        # Cannot open file", status C000); with --single-process it aborts the
        # associations that arrive while it is busy. The table shows what got stored.
        return [dcmtk_program("dcmqrscp"), "--config", str(config)]


class Orthanc(Target):
    name, ae_title = "orthanc", "ORTHANC"
    extra_ports = 1  # REST, to count what it stored
    stop_grace = 0.0  # it needs ~3.5 s to stop on SIGTERM; its data is thrown away

    def available(self):
        try:
            find_program("Orthanc", "/usr/sbin/Orthanc")
        except Exception as error:
            return str(error)
        return None

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        config = {
            "Name": "bench", "DicomAet": self.ae_title, "DicomPort": port,
            "HttpPort": extra_ports[0], "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "StorageDirectory": str(data_dir),
            "IndexDirectory": str(workdir / "index"), "Plugins": [],
        }
        (workdir / "orthanc.json").write_text(json.dumps(config))
        return [find_program("Orthanc", "/usr/sbin/Orthanc"), str(workdir / "orthanc.json")]

    async def stored_count(self, running):
        import urllib.request

        url = f"http://{LOOPBACK}:{running.server.ports[1]}/statistics"

        def fetch() -> int:
            with urllib.request.urlopen(url, timeout=30) as response:
                return int(json.load(response)["CountInstances"])

        return await trio.to_thread.run_sync(fetch)


class PynetdicomStorescp(Target):
    name, ae_title = "pynetdicom-storescp", "STORESCP"

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        return [
            sys.executable, "-m", "pynetdicom", "storescp", str(port), "--ae-title", self.ae_title,
            "--bind-address", LOOPBACK, "--output-directory", str(data_dir),
        ]


class TriopacsTarget(Target):
    """The node: `triopacs serve`, which prints a line starting with "ready"."""

    name, ae_title = "triopacs", "TRIOPACS"
    ready_line = "ready"

    def program(self) -> str:
        return str(Path(sys.executable).with_name("triopacs"))

    def available(self):
        if not os.access(self.program(), os.X_OK):
            return f"{self.program()} not found (pip install -e . in the venv)"
        return None

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        # Its admin API and event stream on free ports: 8042 may be another server's here.
        return [self.program(), "serve", "--port", str(port), "--data", str(data_dir), "--ae-title", self.ae_title,
                "--http-port", "0", "--events-port", "0"]

    async def stored_count(self, running):
        return sum(1 for _ in running.data_dir.rglob("*.dcm"))


class TriopacsOsDurability(TriopacsTarget):
    """The node with [storage] durability = os: no fsync, like the other SCPs measured here."""

    name = "triopacs-os"

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        config = workdir / "triopacs.toml"
        config.write_text('[storage]\ndurability = "os"\n')
        return [*super().command(port, data_dir, workdir, extra_ports, concurrent), "--config", str(config)]


class TriopacsOsOneProcess(TriopacsOsDurability):
    """durability = os with every association in the node's own process (--workers 0)."""

    name = "triopacs-os-1proc"

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        return [*super().command(port, data_dir, workdir, extra_ports, concurrent), "--workers", "0"]


TARGETS: dict[str, type[Target]] = {
    target.name: target
    for target in (
        DcmtkStorescp, PynetdicomStorescp, Orthanc, DcmtkDcmqrscp, TriopacsTarget, TriopacsOsDurability, TriopacsOsOneProcess,
    )
}
DEFAULT_TARGETS = ["dcmtk-storescp", "triopacs", "triopacs-os", "pynetdicom-storescp", "orthanc", "dcmtk-dcmqrscp"]


# ---------------------------------------------------------------- measurements


@dataclass
class Sample:
    seconds: float
    server_cpu: float
    stored: int
    failures: list[str] = field(default_factory=list)  # storescu runs that failed

    @property
    def images_per_second(self) -> float:
        return self.stored / self.seconds


@dataclass
class Outcome:
    target: str
    images: int
    image_bytes: int
    runs: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(run, attribute) for run in self.runs)

    @property
    def images_per_second(self) -> float:
        """Median over runs of images stored per second."""
        return statistics.median(run.images_per_second for run in self.runs)

    @property
    def megabytes_per_second(self) -> float:
        return self.images_per_second * self.image_bytes / self.images / MB

    @property
    def fewest_stored(self) -> int:
        return min(run.stored for run in self.runs)


async def _send(running: Running, folders: list[Path], timeout: float) -> list[str]:
    """Run one storescu per folder, all at once; describe the ones that failed."""
    failures: list[str] = []

    async def one(folder: Path) -> None:
        result = await run_dcmtk(
            # -nh: keep sending after a failed store, so "stored" tells how many got in.
            "storescu", "-aet", "BENCH", "-aec", running.target.ae_title, "+sd", "+r", "-nh",
            LOOPBACK, str(running.port), str(folder), timeout=timeout,
        )
        if result.returncode != 0 or result.errors():
            errors = result.errors() or [f"exit status {result.returncode}"]
            failures.append(f"storescu exit {result.returncode}: {errors[0]}")

    async with trio.open_nursery() as nursery:
        for folder in folders:
            nursery.start_soon(one, folder)
    return failures


async def measure_store(target: Target, folders: list[Path], expected: int, scratch: Path, *, concurrent: bool, timeout: float) -> Sample:
    async with target.start(scratch, concurrent=concurrent) as running:
        cpu_before = running.cpu_seconds()
        started = time.perf_counter()
        failures = await _send(running, folders, timeout)
        elapsed = time.perf_counter() - started
        cpu = running.cpu_seconds() - cpu_before
        stored = await target.stored_count(running)
    if stored == 0:
        raise RuntimeError(f"{target.name} stored nothing: {failures}")
    return Sample(elapsed, cpu, stored, failures)


async def measure_latency(target: Target, scratch: Path, rounds: int) -> list[float]:
    async with target.start(scratch) as running:
        return await trio.to_thread.run_sync(echo_latencies, running.port, target.ae_title, rounds)


def _describe_error(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]  # the nursery's wrapping says nothing useful
    return f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------- report


def _throughput_table(title: str, outcomes: list[Outcome], baseline: str) -> str:
    base = next((o for o in outcomes if o.target == baseline and o.runs), None)
    lines = [
        title,
        f"{'target':<22}{'img/s':>9}{'MB/s':>9}{'wall s':>9}{'server CPU s':>14}{'CPU ms/img':>12}"
        f"{'stored':>11}{'vs ' + baseline:>24}",
    ]
    for outcome in outcomes:
        if not outcome.runs:
            lines.append(f"{outcome.target:<22}  failed: {outcome.errors[-1] if outcome.errors else '?'}")
            continue
        ratio = f"{outcome.images_per_second / base.images_per_second:.2f}x" if base else "-"
        cpu = outcome.median("server_cpu")
        lines.append(
            f"{outcome.target:<22}{outcome.images_per_second:>9.1f}{outcome.megabytes_per_second:>9.1f}"
            f"{outcome.median('seconds'):>9.2f}{cpu:>14.2f}{cpu / outcome.fewest_stored * 1000:>12.2f}"
            f"{f'{outcome.fewest_stored}/{outcome.images}':>11}{ratio:>24}"
        )
    return "\n".join(lines)


def _flush_floor_note(floor: float, base: Outcome | None) -> str:
    """What durability alone costs here, and the best it allows (see bench/flush_floor.py)."""
    note = f"durability floor: the flushes of one stored instance (file, directory, WAL) take {floor * 1000:.2f} ms on this disk"
    if base is None or not base.runs:
        return note
    per_image = 1 / base.images_per_second
    best = 1 / (per_image + floor)
    return (
        f"{note};\na server as fast as {base.target} ({per_image * 1000:.2f} ms/img) that flushed each store before "
        f"answering would reach at most {best:.1f} img/s = {best * per_image:.2f}x {base.target}"
    )


def _latency_table(latencies: dict[str, list[float] | str], baseline: str) -> str:
    lines = [
        "associate + C-ECHO + release, raw-socket client in the benchmark process",
        f"{'target':<22}{'median ms':>11}{'p90 ms':>9}{'rounds':>8}{'vs ' + baseline:>24}",
    ]
    base = latencies.get(baseline)
    base_median = statistics.median(base) if isinstance(base, list) else None
    for name, timings in latencies.items():
        if isinstance(timings, str):
            lines.append(f"{name:<22}  failed: {timings}")
            continue
        median = statistics.median(timings)
        p90 = statistics.quantiles(timings, n=10)[-1] if len(timings) >= 2 else median
        ratio = f"{median / base_median:.2f}x" if base_median else "-"
        lines.append(f"{name:<22}{median * 1000:>11.2f}{p90 * 1000:>9.2f}{len(timings):>8}{ratio:>24}")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


async def run(options: argparse.Namespace) -> int:
    targets = [TARGETS[name]() for name in options.targets]
    for target in targets:
        if reason := target.available():
            print(f"cannot run {target.name}: {reason}", file=sys.stderr)
            return 2
    dcmtk_program("storescu")

    work = Path(tempfile.mkdtemp(prefix="triopacs-bench-", dir=options.work_dir))
    try:
        images = work / "images"
        per_folder = -(-options.count // CONCURRENT_ASSOCIATIONS)
        folders, left, total_bytes = [], options.count, 0
        started = time.perf_counter()
        spec = dicom_samples.SeriesSpec(patient_id="BENCH1", patient_name="BENCH^CT")
        study_uid = dicom_samples.new_uid()
        for part in range(CONCURRENT_ASSOCIATIONS):
            count = min(per_folder, left)
            left -= count
            if count:
                series = dicom_samples.write_series(
                    images / f"part{part}",
                    replace(
                        spec,
                        count=count,
                        study_instance_uid=study_uid,
                        series_number=part + 1,
                        first_instance_number=part * per_folder + 1,
                    ),
                )
                folders.append(series.folder)
                total_bytes += sum(path.stat().st_size for path in series.paths)
                sample_image = series.paths[0]
        print(
            f"generated {options.count} CT images, {total_bytes / options.count / 1024:.0f} KiB each, "
            f"in {time.perf_counter() - started:.1f} s; targets: {', '.join(t.name for t in targets)}; "
            f"{options.runs} run(s), rotated\n",
            flush=True,
        )
        scratch = work / "servers"
        scratch.mkdir()
        report: dict[str, Any] = {"images": options.count, "bytes": total_bytes, "runs": options.runs}
        tables = []

        modes = [("single", False)] + ([] if options.no_concurrent else [("concurrent", True)])
        for mode, concurrent in modes:
            outcomes = {t.name: Outcome(t.name, options.count, total_bytes) for t in targets}
            for run_index in range(options.runs):
                rotation = targets[run_index % len(targets):] + targets[: run_index % len(targets)]
                for target in rotation:
                    send_from = folders if concurrent else [images]
                    try:
                        sample = await measure_store(target, send_from, options.count, scratch, concurrent=concurrent, timeout=options.timeout)
                    except Exception as error:  # report and go on with the others
                        outcomes[target.name].errors.append(_describe_error(error).splitlines()[0])
                        print(f"  {mode} run {run_index + 1} {target.name}: FAILED {_describe_error(error)}", flush=True)
                        continue
                    outcomes[target.name].runs.append(sample)
                    lost = f"  ONLY {sample.stored} STORED: {sample.failures[:1]}" if sample.stored < options.count else ""
                    print(
                        f"  {mode} run {run_index + 1} {target.name:<20} {sample.images_per_second:8.1f} img/s"
                        f"  {sample.seconds:6.2f} s  server CPU {sample.server_cpu:6.2f} s{lost}",
                        flush=True,
                    )
            title = (
                f"C-STORE, {options.count} x {total_bytes / options.count / 1024:.0f} KiB CT, "
                + ("1 association" if not concurrent else f"{CONCURRENT_ASSOCIATIONS} concurrent associations (storescp --fork)")
                + f", DCMTK storescu, TCP_NODELAY=1, median of {options.runs}"
            )
            tables.append(_throughput_table(title, list(outcomes.values()), options.baseline))
            if not concurrent:
                floor = await trio.to_thread.run_sync(measure_flush_floor, sample_image, FLUSH_ROUNDS, work)
                tables.append(_flush_floor_note(floor, outcomes.get(options.baseline)))
                report["flush_floor_seconds"] = floor
            report[mode] = {
                name: {"runs": [asdict(r) for r in o.runs], "errors": o.errors,
                       "images_per_second": o.images_per_second if o.runs else None}
                for name, o in outcomes.items()
            }

        if not options.no_latency:
            latencies: dict[str, list[float] | str] = {}
            for target in targets:
                try:
                    latencies[target.name] = await measure_latency(target, scratch, options.echo_rounds)
                except Exception as error:
                    latencies[target.name] = _describe_error(error).splitlines()[0]
            tables.append(_latency_table(latencies, options.baseline))
            report["latency_seconds"] = latencies

        print()
        print("\n\n".join(tables))
        results = ROOT / "bench" / "results"
        results.mkdir(exist_ok=True)
        path = results / f"store_throughput-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(report, indent=2))
        print(f"\nraw results: {path.relative_to(ROOT)}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 images, 1 run, 20 echo rounds")
    parser.add_argument("--count", type=int, default=None, help="images per measurement (default 1000)")
    parser.add_argument("--runs", type=int, default=None, help="runs per target, median reported (default 3)")
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help=f"comma-separated, from: {', '.join(TARGETS)}")
    parser.add_argument("--baseline", default="dcmtk-storescp")
    parser.add_argument("--echo-rounds", type=int, default=None, help="latency rounds per target (default 100)")
    parser.add_argument("--no-concurrent", action="store_true", help="skip the 4-association mode")
    parser.add_argument("--no-latency", action="store_true", help="skip the echo latency")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per storescu run")
    parser.add_argument("--work-dir", type=Path, default=None, help="where images and server data go (default: system temp)")
    options = parser.parse_args()
    options.count = options.count or (100 if options.quick else 1000)
    options.runs = options.runs or (1 if options.quick else 3)
    options.echo_rounds = options.echo_rounds or (20 if options.quick else 100)
    options.targets = [name.strip() for name in options.targets.split(",") if name.strip()]
    unknown = [name for name in options.targets if name not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; choose from {', '.join(TARGETS)}")
    if options.baseline not in options.targets:
        options.baseline = options.targets[0]
    os.environ["TCP_NODELAY"] = "1"  # for storescu and every server started here
    return trio.run(run, options)


if __name__ == "__main__":
    sys.exit(main())
