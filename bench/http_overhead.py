"""What the operating face costs the C-STORE path: store throughput of `triopacs serve`
with its HTTP API on and scraped every second (/metrics, /api/v1/statistics, /health,
/api/v1/associations, as Prometheus and the status page do) against the same node with
--no-http, in one run.

    .venv/bin/python bench/http_overhead.py              # 1000 images over 4 associations, 5 runs each
    .venv/bin/python bench/http_overhead.py --quick      # 200 images, 3 runs each

The two variants alternate (off, on, on, off, ...) so neither always runs first; each
figure is the median over runs; the ratio is on / off (1.0: no cost). Every run is a
fresh node process on 127.0.0.1 with [storage] durability = os (no fsync: the disk's
flush time would hide the difference being measured).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_throughput import CONCURRENT_ASSOCIATIONS, TriopacsTarget, _send, dicom_samples  # noqa: E402

SCRAPED = ("/metrics", "/api/v1/statistics", "/health", "/api/v1/associations")


class NodeWithHttp(TriopacsTarget):
    name = "http-on-scraped"
    extra_ports = 2  # the admin API and the event stream

    def http_args(self, extra_ports: list[int]) -> list[str]:
        return ["--http-port", str(extra_ports[0]), "--events-port", str(extra_ports[1])]

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        config = workdir / "triopacs.toml"
        config.write_text('[storage]\ndurability = "os"\n[log]\nlevel = "warning"\n')
        return [self.program(), "serve", "--port", str(port), "--data", str(data_dir), "--ae-title", self.ae_title,
                "--config", str(config), *self.http_args(extra_ports)]


class NodeWithoutHttp(NodeWithHttp):
    name = "http-off"
    extra_ports = 0

    def http_args(self, extra_ports: list[int]) -> list[str]:
        return ["--no-http"]


async def scrape_every_second(base: str, counts: list[int]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        while True:
            for path in SCRAPED:
                response = await client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status_code}")
                counts[0] += 1
            await trio.sleep(1.0)


async def one_run(target: NodeWithHttp, folders: list[Path], scratch: Path, timeout: float) -> tuple[float, float, int]:
    """Images per second, the node's CPU milliseconds per image, and the scrapes made meanwhile."""
    async with target.start(scratch, concurrent=True) as running:
        scrapes = [0]
        cpu_before = running.cpu_seconds()
        async with trio.open_nursery() as nursery:
            if target.extra_ports:
                http_port = running.server.ports[1]
                nursery.start_soon(scrape_every_second, f"http://127.0.0.1:{http_port}", scrapes)
                await trio.sleep(0.2)  # the first scrape is under way when the stores start
            started = time.perf_counter()
            failures = await _send(running, folders, timeout)
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        cpu = running.cpu_seconds() - cpu_before
        stored = await target.stored_count(running)
    if failures:
        raise RuntimeError(f"{target.name}: {failures}")
    return stored / elapsed, 1000 * cpu / stored, scrapes[0]


async def run(options: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="triopacs-http-bench-"))
    try:
        folders, per_folder = [], -(-options.count // CONCURRENT_ASSOCIATIONS)
        spec = dicom_samples.SeriesSpec(patient_id="BENCH1", patient_name="BENCH^CT")
        study_uid, left = dicom_samples.new_uid(), options.count
        for part in range(CONCURRENT_ASSOCIATIONS):
            count, left = min(per_folder, left), left - min(per_folder, left)
            if count:
                dicom_samples.write_series(work / "images" / f"part{part}", replace(
                    spec, count=count, study_instance_uid=study_uid, series_number=part + 1, first_instance_number=part * per_folder + 1))
                folders.append(work / "images" / f"part{part}")
        on, off = NodeWithHttp(), NodeWithoutHttp()
        rates: dict[str, list[float]] = {on.name: [], off.name: []}
        cpu: dict[str, list[float]] = {on.name: [], off.name: []}
        scrapes = 0
        for run_number in range(options.runs):
            order = (off, on) if run_number % 2 == 0 else (on, off)
            for target in order:
                rate, cpu_ms, made = await one_run(target, folders, work, options.timeout)
                rates[target.name].append(rate)
                cpu[target.name].append(cpu_ms)
                scrapes += made
                print(f"run {run_number + 1} {target.name:>16}: {rate:8.1f} img/s {cpu_ms:6.2f} CPU ms/img"
                      + (f" ({made} requests)" if made else ""), flush=True)
        median_on, median_off = statistics.median(rates[on.name]), statistics.median(rates[off.name])
        print()
        print(f"{options.count} images over {len(folders)} associations, median of {options.runs} runs each")
        cpu_on, cpu_off = statistics.median(cpu[on.name]), statistics.median(cpu[off.name])
        print(f"  HTTP off:              {median_off:8.1f} img/s  {cpu_off:6.2f} node CPU ms per image")
        print(f"  HTTP on, scraped 1/s:  {median_on:8.1f} img/s  {cpu_on:6.2f} node CPU ms per image  ({scrapes} requests answered)")
        print(f"  ratio on/off:          {median_on / median_off:8.3f} (throughput)  {cpu_off / cpu_on:8.3f} (CPU per image, off/on)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 images, 3 runs")
    parser.add_argument("--count", type=int, default=None, help="images per run (default 1000)")
    parser.add_argument("--runs", type=int, default=None, help="runs per variant (default 5)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one storescu may take")
    options = parser.parse_args()
    options.count = options.count or (200 if options.quick else 1000)
    options.runs = options.runs or (3 if options.quick else 5)
    return trio.run(run, options)


if __name__ == "__main__":
    sys.exit(main())
