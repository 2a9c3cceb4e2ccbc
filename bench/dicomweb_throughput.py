"""DICOMweb against Orthanc's DICOMweb plugin: STOW-RS and WADO-RS of one study, and
QIDO-RS study search latency over a populated archive.

Each server - triopacs (durability fsync, the default, and os) and Orthanc with its
DICOMweb plugin - is started empty, in its own process, all at once; each step below
goes round them in turn (WADO-RS runs and searches alternating between servers, so that
a busy moment of this shared machine falls on all alike), and each server

1. is sent one study of N x 513 KiB CT images in ONE STOW-RS request (a multipart body
   streamed from the files, with its Content-Length): MB/s of the request;
2. is asked R times for the whole study by WADO-RS (multipart/related;
   type="application/dicom", as stored: explicit VR little endian), the answer read as
   it streams and its parts counted: MB/s, median of R;
3. is filled by storescu (C-STORE, not timed) with a population of Q small MR images
   (patients x 5 studies x 2 series), then answers S study searches, each repeated:
   the median latency of each, and their geometric mean.

Printed per server: MB/s and the server's CPU seconds (from /proc) per phase, and the
ratio to Orthanc in the same run (for latency: Orthanc's time / ours, so above 1.0x is
faster than Orthanc). The client is the same Python code for every server.

    .venv/bin/python bench/dicomweb_throughput.py              # 500-image study, 10,000-instance population, 3 runs
    .venv/bin/python bench/dicomweb_throughput.py --quick      # 500-image study, 2,000 instances, 2 runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import dicom_samples  # noqa: E402
from peers import LOOPBACK, run_dcmtk  # noqa: E402
from store_throughput import Orthanc, Running, TriopacsOsDurability, TriopacsTarget  # noqa: E402

from triopacs.web.dicomweb.multipart import closing, part_head  # noqa: E402

MB = 1024 * 1024
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
BOUNDARY = "bench-dicomweb-boundary"
ACCEPT = 'multipart/related; type="application/dicom"'
SEARCHES = [
    {},
    {"PatientID": "QIDO0042"},
    {"PatientName": "PATIENT^7*"},
    {"StudyDate": "20240101-20240131"},
    {"AccessionNumber": "ACC421"},
    {"ModalitiesInStudy": "MR", "limit": "50"},
]


class TriopacsWeb(TriopacsTarget):
    extra_ports = 1  # HTTP

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        argv = super().command(port, data_dir, workdir, extra_ports, concurrent)
        return [a if a != "0" or argv[i - 1] != "--http-port" else str(extra_ports[0]) for i, a in enumerate(argv)]


class TriopacsWebOs(TriopacsWeb, TriopacsOsDurability):
    name = "triopacs-os"


class OrthancWeb(Orthanc):
    def available(self):
        return super().available() or (None if Path(PLUGIN).exists() else f"{PLUGIN} missing (apt-get install orthanc-dicomweb)")

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        argv = super().command(port, data_dir, workdir, extra_ports, concurrent)
        path = Path(argv[-1])
        config = json.loads(path.read_text())
        config["Plugins"] = [PLUGIN]
        config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
        path.write_text(json.dumps(config))
        return argv


TARGETS = {"triopacs": TriopacsWeb, "triopacs-os": TriopacsWebOs, "orthanc": OrthancWeb}


def base_url(running: Running) -> str:
    return f"http://{LOOPBACK}:{running.server.ports[1]}/dicom-web"


@dataclass
class Result:
    name: str
    stow: tuple[float, float] | None = None  # (MB/s, server CPU s)
    wado: list[tuple[float, float]] = field(default_factory=list)
    qido: dict[str, float] = field(default_factory=dict)  # query -> median seconds
    error: str | None = None


def stow(url: str, files: list[Path]) -> tuple[int, int]:
    """One STOW-RS request with every file; (status, bytes sent)."""
    heads = [part_head(BOUNDARY, "application/dicom") for _ in files]
    length = sum(len(h) + f.stat().st_size + 2 for h, f in zip(heads, files)) + len(closing(BOUNDARY))

    def body():
        for head, path in zip(heads, files):
            yield head + path.read_bytes() + b"\r\n"
        yield closing(BOUNDARY)

    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
               "Content-Length": str(length), "Accept": "application/dicom+json"}
    with httpx.Client(timeout=600) as client:
        response = client.post(f"{url}/studies", content=body(), headers=headers)
    return response.status_code, length


def wado(url: str, study: str) -> tuple[int, int]:
    """Retrieve the study, reading the answer as it streams; (parts, bytes). Parts are
    counted by their delimiters (cheap, so the client takes little of the CPU the
    servers share with it)."""
    received = delimiters = 0
    with httpx.Client(timeout=600) as client, client.stream("GET", f"{url}/studies/{study}", headers={"Accept": ACCEPT}) as response:
        response.raise_for_status()
        boundary = [p.split("=", 1)[1].strip('"') for p in response.headers["content-type"].split(";") if p.strip().startswith("boundary=")][0]
        delimiter = f"--{boundary}".encode()
        tail = b""
        for chunk in response.iter_raw(1024 * 1024):
            received += len(chunk)
            window = tail + chunk[: len(delimiter)]
            delimiters += window.count(delimiter) + chunk.count(delimiter) - chunk[: len(delimiter)].count(delimiter)
            tail = chunk[-(len(delimiter) - 1):]
    return delimiters - 1, received  # the closing delimiter is not a part


def qido(url: str, params: dict[str, str], repeats: int) -> float:
    times = []
    with httpx.Client(timeout=60) as client:
        for _ in range(repeats):
            started = time.perf_counter()
            response = client.get(f"{url}/studies", params=params, headers={"Accept": "application/dicom+json"})
            response.read()
            times.append(time.perf_counter() - started)
            if response.status_code not in (200, 204):
                raise RuntimeError(f"QIDO {params}: {response.status_code} {response.text[:200]}")
    return statistics.median(times)


async def phase(results: dict[str, Result], running: dict[str, Running], work) -> None:
    """Run `work(name, running)` for each server in turn; a server that fails is dropped."""
    for name, server in list(running.items()):
        try:
            await work(name, server)
        except Exception as error:  # one server failing does not stop the others
            while isinstance(error, BaseExceptionGroup) and error.exceptions:
                error = error.exceptions[0]
            results[name].error = f"{type(error).__name__}: {error}"
            del running[name]


async def measure(names: list[str], study, population: Path, population_count: int, runs: int, repeats: int, scratch: Path) -> list[Result]:
    """Every server up at once; each phase goes round them in turn, WADO-RS and QIDO-RS
    rounds alternating, so that a busy moment of this shared machine hits them alike."""
    results = {name: Result(name) for name in names}
    files = sorted(study.folder.rglob("*.dcm"))
    async with contextlib.AsyncExitStack() as stack:
        running: dict[str, Running] = {}
        for name in names:
            (scratch / name).mkdir()
            try:
                running[name] = await stack.enter_async_context(TARGETS[name]().start(scratch / name))
            except Exception as error:
                results[name].error = f"{type(error).__name__}: {error}"

        async def send_study(name: str, server: Running) -> None:
            cpu, started = server.cpu_seconds(), time.perf_counter()
            status, sent = await trio.to_thread.run_sync(stow, base_url(server), files)
            elapsed = time.perf_counter() - started
            stored = await server.target.stored_count(server)
            if status != 200 or stored < len(files):
                raise RuntimeError(f"STOW-RS answered {status}; {stored}/{len(files)} stored")
            results[name].stow = (sent / MB / elapsed, server.cpu_seconds() - cpu)

        async def retrieve_study(name: str, server: Running) -> None:
            cpu, started = server.cpu_seconds(), time.perf_counter()
            parts, received = await trio.to_thread.run_sync(wado, base_url(server), study.study_instance_uid)
            elapsed = time.perf_counter() - started
            if parts != len(files):
                raise RuntimeError(f"WADO-RS gave {parts} of {len(files)} instances")
            results[name].wado.append((received / MB / elapsed, server.cpu_seconds() - cpu))

        async def fill(name: str, server: Running) -> None:
            done = await run_dcmtk("storescu", "-aet", "BENCH", "-aec", server.target.ae_title, "+sd", "+r", LOOPBACK,
                                   str(server.port), str(population), timeout=3600)
            stored = await server.target.stored_count(server)
            if done.returncode != 0 or stored < population_count + len(files):
                raise RuntimeError(f"filling: storescu exit {done.returncode}, {stored} stored")

        await phase(results, running, send_study)
        for _ in range(runs):
            await phase(results, running, retrieve_study)
        await phase(results, running, fill)
        for params in SEARCHES:
            async def search(name: str, server: Running, params=params) -> None:
                results[name].qido[json.dumps(params)] = await trio.to_thread.run_sync(qido, base_url(server), params, repeats)
            await phase(results, running, search)
    return [results[name] for name in names]


def report(results: list[Result], count: int, runs: int) -> str:
    peer = next((r for r in results if r.name == "orthanc" and r.error is None), None)
    lines = [f"STOW-RS of {count} x 513 KiB in one request; WADO-RS of the study, median of {runs}",
             f"{'server':<14}{'STOW MB/s':>11}{'CPU s':>8}{'vs Orthanc':>12}{'WADO MB/s':>11}{'CPU s':>8}{'vs Orthanc':>12}"]
    for r in results:
        if r.error is not None:
            lines.append(f"{r.name:<14}  failed: {r.error}")
            continue
        wado_rate, wado_cpu = statistics.median(w[0] for w in r.wado), statistics.median(w[1] for w in r.wado)
        stow_ratio = f"{r.stow[0] / peer.stow[0]:.2f}x" if peer else "-"
        wado_ratio = f"{wado_rate / statistics.median(w[0] for w in peer.wado):.2f}x" if peer else "-"
        lines.append(f"{r.name:<14}{r.stow[0]:>11.1f}{r.stow[1]:>8.2f}{stow_ratio:>12}{wado_rate:>11.1f}{wado_cpu:>8.2f}{wado_ratio:>12}")
    lines += ["", "QIDO-RS /studies, median latency in ms (Orthanc's time / ours in brackets)"]
    for r in results:
        if r.error is not None or not r.qido:
            continue
        cells = []
        for query, seconds in r.qido.items():
            ratio = f" ({peer.qido[query] / seconds:.2f}x)" if peer and query in peer.qido else ""
            cells.append(f"{query}: {seconds * 1000:.1f}{ratio}")
        geo = ""
        if peer:
            factors = [peer.qido[q] / s for q, s in r.qido.items() if q in peer.qido]
            geo = f"  geometric mean vs Orthanc {math.exp(statistics.mean(math.log(f) for f in factors)):.2f}x"
        lines.append(f"{r.name}:{geo}")
        lines += [f"    {c}" for c in cells]
    return "\n".join(lines)


async def run(options) -> int:
    work = Path(tempfile.mkdtemp(prefix="triopacs-dicomweb-", dir=options.work_dir))
    try:
        study = dicom_samples.write_series(work / "study", dicom_samples.SeriesSpec(count=options.count, patient_id="WEB1"))
        patients = max(1, options.population // 20)
        dicom_samples.write_population(
            work / "population", patients=[(f"QIDO{p:04d}", f"PATIENT^{p}") for p in range(patients)],
            studies_per_patient=5, series_per_study=2, images_per_series=2, modalities=("MR",),
        )
        population_count = patients * 20
        print(f"one study of {options.count} CT images; population {population_count} MR images; "
              f"{options.runs} WADO run(s), {options.repeats} repeats per search", flush=True)
        names = []
        results = []
        for name in options.servers:
            why_not = TARGETS[name]().available()
            if why_not:
                results.append(Result(name, error=why_not))
            else:
                names.append(name)
        scratch = work / "servers"
        scratch.mkdir()
        results += await measure(names, study, work / "population", population_count, options.runs, options.repeats, scratch)
        print()
        print(report(results, options.count, options.runs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000-instance population, 2 WADO runs, 5 repeats")
    parser.add_argument("--count", type=int, default=500, help="images in the STOW/WADO study (default 500)")
    parser.add_argument("--population", type=int, default=None, help="instances to search over (default 10,000; 2,000 with --quick)")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--servers", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--work-dir", default=None, help="where the images and servers' data go (default: the temp dir)")
    options = parser.parse_args()
    options.population = options.population or (2000 if options.quick else 10000)
    options.runs = options.runs or (2 if options.quick else 3)
    options.repeats = options.repeats or (5 if options.quick else 20)
    return trio.run(run, options)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
