"""What security costs the C-STORE path, in one run: store throughput of `triopacs
serve` over DICOM TLS against plain TCP (and DCMTK storescp +tls against plain, the
same ratio for a reference), and with the audit trail on against off.

    .venv/bin/python bench/security_overhead.py              # 1000 images over 4 associations, 3 runs each
    .venv/bin/python bench/security_overhead.py --quick      # 200 images, 2 runs each

Every run is a fresh server process on 127.0.0.1, sent to by 4 DCMTK storescu
processes at once; variants alternate (the order rotates each run) and each figure is
the median over runs; a ratio is the median of the ratios within each run (the machine's
speed drifts between runs, so that pairs like with like). TLS runs use mutual authentication (client certificates from a
CA made for the run with trustme) and BCP 195 suites; the node serves TLS associations
in its own process, so its TLS and plain variants both run with --workers 0 (one
process: the difference is TLS alone). Two audit pairs: [storage] durability = os with
[audit] sync = os (nothing waits for the disk: the cost of writing records), and both
fsync (the defaults: a store waits for its index commit and its audit record's group
commit).
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

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_throughput import CONCURRENT_ASSOCIATIONS, DcmtkStorescp, Target, TriopacsTarget, dicom_samples  # noqa: E402

from peers import LOOPBACK, run_dcmtk  # noqa: E402  (store_throughput put tests/ on the path)
from peers.certificates import TlsFiles, make_tls_files  # noqa: E402
from peers.dcmtk import dcmtk_program  # noqa: E402


class Node(TriopacsTarget):
    """`triopacs serve --workers 0` with a config of the variant's."""

    tls = False
    settings = '[storage]\ndurability = "os"\n'

    def __init__(self, name: str, files: TlsFiles, *, tls: bool = False, settings: str | None = None) -> None:
        self.name, self.files, self.tls = name, files, tls
        if settings is not None:
            self.settings = settings
        self.extra_ports = 1 if tls else 0

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        config = workdir / "triopacs.toml"
        text = self.settings + '[log]\nlevel = "warning"\n'
        if self.tls:
            f = self.files
            text += (
                f'[tls]\nenabled = true\nport = {extra_ports[0]}\ncert_file = "{f.server_cert}"\n'
                f'key_file = "{f.server_key}"\nca_file = "{f.ca}"\nrequire_client_certificate = true\n'
            )
        config.write_text(text)
        return [*super().command(port, data_dir, workdir, extra_ports, concurrent), "--config", str(config), "--workers", "0"]


class TlsStorescp(DcmtkStorescp):
    """DCMTK storescp +tls (BCP 195 profile, client certificates required by default)."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self.name = "dcmtk-storescp-tls"

    def command(self, port, data_dir, workdir, extra_ports, concurrent):
        f = self.files
        return [dcmtk_program("storescp"), "--aetitle", self.ae_title, "--output-directory", str(data_dir), "--fork",
                "+tls", str(f.server_key), str(f.server_cert), "+cf", str(f.ca), str(port)]


def is_tls(target: Target) -> bool:
    return isinstance(target, TlsStorescp) or getattr(target, "tls", False)


async def send(target: Target, running, folders: list[Path], timeout: float) -> None:
    f = target.files if is_tls(target) else None
    tls = ["+tls", str(f.client_key), str(f.client_cert), "+cf", str(f.ca)] if f is not None else []
    port = running.server.ports[1] if isinstance(target, Node) and target.tls else running.port
    failures: list[str] = []

    async def one(folder: Path) -> None:
        result = await run_dcmtk(
            "storescu", "-aet", "BENCH", "-aec", target.ae_title, "+sd", "+r", "-nh", *tls, LOOPBACK, str(port), str(folder),
            timeout=timeout,
        )
        if result.returncode != 0 or result.errors():
            failures.append((result.errors() or [f"exit status {result.returncode}"])[0])

    async with trio.open_nursery() as nursery:
        for folder in folders:
            nursery.start_soon(one, folder)
    if failures:
        raise RuntimeError(f"{target.name}: {failures[0]}")


async def one_run(target: Target, folders: list[Path], expected: int, scratch: Path, timeout: float) -> tuple[float, float]:
    """Images per second, and the server's CPU milliseconds per image."""
    async with target.start(scratch, concurrent=True) as running:
        cpu_before = running.cpu_seconds()
        started = time.perf_counter()
        await send(target, running, folders, timeout)
        elapsed = time.perf_counter() - started
        cpu = running.cpu_seconds() - cpu_before
        stored = await target.stored_count(running)
    if stored != expected:
        raise RuntimeError(f"{target.name} stored {stored} of {expected}")
    return stored / elapsed, 1000 * cpu / stored


async def run(options: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="triopacs-security-bench-"))
    try:
        files = make_tls_files(work / "tls")
        folders, per_folder = [], -(-options.count // CONCURRENT_ASSOCIATIONS)
        spec = dicom_samples.SeriesSpec(patient_id="BENCH1", patient_name="BENCH^CT")
        study_uid, left = dicom_samples.new_uid(), options.count
        for part in range(CONCURRENT_ASSOCIATIONS):
            count, left = min(per_folder, left), left - min(per_folder, left)
            if count:
                dicom_samples.write_series(work / "images" / f"part{part}", replace(
                    spec, count=count, study_instance_uid=study_uid, series_number=part + 1, first_instance_number=part * per_folder + 1))
                folders.append(work / "images" / f"part{part}")
        fsync = '[storage]\ndurability = "fsync"\n'
        targets = [
            Node("plain", files), Node("tls", files, tls=True),
            DcmtkStorescp(), TlsStorescp(files),
            Node("audit-off", files), Node("audit-on", files, settings='[storage]\ndurability = "os"\n[audit]\nenabled = true\nsync = "os"\n'),
            Node("audit-off-fsync", files, settings=fsync), Node("audit-on-fsync", files, settings=fsync + '[audit]\nenabled = true\n'),
        ]
        if options.only:
            keep = {"tls": ("plain", "tls", "dcmtk-storescp", "dcmtk-storescp-tls"), "audit": ("audit-off", "audit-on", "audit-off-fsync", "audit-on-fsync")}
            targets = [t for t in targets if t.name in keep[options.only]]
        rates: dict[str, list[float]] = {t.name: [] for t in targets}
        cpu: dict[str, list[float]] = {t.name: [] for t in targets}
        for run_number in range(options.runs):
            shift = run_number % len(targets)
            for target in targets[shift:] + targets[:shift]:
                rate, cpu_ms = await one_run(target, folders, options.count, work, options.timeout)
                rates[target.name].append(rate)
                cpu[target.name].append(cpu_ms)
                print(f"run {run_number + 1} {target.name:>20}: {rate:8.1f} img/s {cpu_ms:6.2f} CPU ms/img", flush=True)
        median = {name: statistics.median(values) for name, values in rates.items()}
        cpu_median = {name: statistics.median(values) for name, values in cpu.items()}
        print()
        print(f"{options.count} images over {len(folders)} associations, median of {options.runs} runs each")
        for name in rates:
            print(f"  {name:>20}: {median[name]:8.1f} img/s  {cpu_median[name]:6.2f} server CPU ms per image")
        for label, on, off in (
            ("triopacs TLS / plain", "tls", "plain"), ("DCMTK storescp +tls / plain", "dcmtk-storescp-tls", "dcmtk-storescp"),
            ("audit on / off (os)", "audit-on", "audit-off"), ("audit on / off (fsync)", "audit-on-fsync", "audit-off-fsync"),
        ):
            if on in median:
                # Paired within each run (the machine's speed drifts between runs), then the median.
                paired = statistics.median(a / b for a, b in zip(rates[on], rates[off]))
                print(f"  {label + ':':<32} {paired:6.3f}  (ratio of medians {median[on] / median[off]:5.3f};"
                      f" CPU per image off/on {cpu_median[off] / cpu_median[on]:5.3f})")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 images, 2 runs")
    parser.add_argument("--count", type=int, default=None, help="images per run (default 1000)")
    parser.add_argument("--runs", type=int, default=None, help="runs per variant (default 3)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one storescu may take")
    parser.add_argument("--only", choices=("tls", "audit"), help="only the TLS or only the audit variants")
    options = parser.parse_args()
    options.count = options.count or (200 if options.quick else 1000)
    options.runs = options.runs or (2 if options.quick else 3)
    return trio.run(run, options)


if __name__ == "__main__":
    sys.exit(main())
