"""HSM migration speed: hot -> S3 (moto) and hot -> Azure Blob (Azurite) by the node's
migration service, against a plain upload loop of the same files with the same
concurrency in the same run (boto3's upload_file with its TransferConfig; azure's
upload_blob), printing MB/s (10^6 bytes) and the ratio.

    .venv/bin/python bench/migration.py [--count 1000] [--concurrency 4] [--rounds 3] [--targets s3,azure]

The instances are 512x512 CT images (~514 KiB), stored into a fresh node over one
association first (not timed). The migration is timed as one cycle (RunMigration): per
instance the study lock, journal, hash of the source, upload, head, index switch and
deletion of the hot file - everything the plain loop does not do.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from dicom_samples import SeriesSpec, new_uid, write_series  # noqa: E402
from peers.buckets import azure_settings, create_bucket, create_container, s3_settings  # noqa: E402
from peers.object_stores import azurite_blob, moto_s3  # noqa: E402

from triopacs import connect, open_node  # noqa: E402
from triopacs.actors import AsyncioPortal  # noqa: E402
from triopacs.client.contexts import storage_contexts_for  # noqa: E402
from triopacs.config import Config, HsmSettings, NodeSettings, LogSettings  # noqa: E402
from triopacs.storage.tier_settings import TierDefinition  # noqa: E402
from triopacs.workflow.migration import RunMigration  # noqa: E402


def plain_s3(files: list[Path], settings, concurrency: int) -> float:
    import boto3
    from boto3.s3.transfer import TransferConfig

    client = boto3.client(
        "s3", endpoint_url=settings.endpoint_url, region_name=settings.region,
        aws_access_key_id=settings.access_key_id, aws_secret_access_key=settings.secret_access_key,
    )
    transfer = TransferConfig(multipart_threshold=settings.multipart_threshold, max_concurrency=1)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda p: client.upload_file(str(p), settings.bucket, f"plain/{p.name}", Config=transfer), files))
    return time.perf_counter() - started


def plain_azure(files: list[Path], settings, concurrency: int) -> float:
    from azure.storage.blob import ContainerClient

    container = ContainerClient.from_connection_string(settings.connection_string, settings.container)

    def upload(path: Path) -> None:
        with open(path, "rb") as data:
            container.upload_blob(f"plain/{path.name}", data, overwrite=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(upload, files))
    return time.perf_counter() - started


class Cpu:
    """CPU seconds of this process (all its threads: the node, the asyncio portal, the
    plain loop's threads) and of the server process, per lap."""

    def __init__(self, server) -> None:
        self.server = server
        self.last = (time.process_time(), server.cpu_seconds())

    def lap(self) -> tuple[float, float]:
        now = (time.process_time(), self.server.cpu_seconds())
        lap, self.last = (now[0] - self.last[0], now[1] - self.last[1]), now
        return lap


def profiler(output: str | None):
    """py-spy sampling this process (all threads, idle ones left out) into `output`, as
    collapsed stacks (one line a stack, with its sample count), or None."""
    if not output:
        return None
    command = ["py-spy", "record", "--pid", str(os.getpid()), "--format", "raw", "--threads", "--nonblocking", "--rate", "200", "-o", output]
    return subprocess.Popen([str(Path(sys.executable).parent / command[0]), *command[1:]], stdout=subprocess.DEVNULL)


def stop_profiler(process) -> None:
    if process is not None:
        process.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        process.wait()


async def migrate(
    files: list[Path], tier: TierDefinition, data: Path, concurrency: int, cpu: Cpu, profile: str | None = None
) -> tuple[float, int]:
    config = Config(
        node=NodeSettings(port=0, data_dir=str(data)),
        log=LogSettings(level="warning"),
        hsm=HsmSettings(warm_tier=tier.name, hot_to_warm=0.0, max_concurrent_migrations=concurrency, max_instances_per_cycle=len(files)),
        tier=(tier,),
    )
    async with open_node(config) as node:
        async with connect("127.0.0.1", node.address.port, called_ae_title=config.node.ae_title, contexts=storage_contexts_for(files[:1])) as association:
            for path in files:
                assert (await association.store(path)).ok
        spy = profiler(profile)
        if spy is not None:
            await trio.sleep(1)  # py-spy attaches
        cpu.lap()  # the stores are not the migration's
        started = time.perf_counter()
        report = await node.migration.ask(RunMigration(), timeout=None)
        elapsed = time.perf_counter() - started
        stop_profiler(spy)
    assert report.failures == 0 and report.migrated == len(files), report.summary()
    return elapsed, report.bytes


async def rounds(target: str, files: list[Path], work: Path, args) -> list[tuple]:
    """`args.rounds` pairs of (plain loop, migration) against one server, the order
    alternating from round to round so that a load that comes and goes on the machine
    weighs on both sides alike. Returns (plain s, migration s, bytes, CPU plain, CPU
    migration) per round."""
    results = []
    if target == "s3":
        server, make = moto_s3(parent_dir=work), lambda e: s3_settings(e, bucket="bench", max_concurrency=args.concurrency)
        create, plain_loop = create_bucket, plain_s3
    else:
        server = azurite_blob(parent_dir=work)
        make = lambda e: azure_settings(e, container="bench", max_concurrency=args.concurrency, block_upload_threshold=64 * 1024 * 1024)  # noqa: E731
        create, plain_loop = create_container, plain_azure
    async with server as endpoint:
        settings = make(endpoint)
        async with AsyncioPortal() as portal:
            await create(portal, settings)
        cpu = Cpu(endpoint.server)
        for number in range(args.rounds):
            tier = TierDefinition(name="cold", kind=target, prefix=f"m{number}/", settings=settings)
            profile = args.profile and number == 0 and f"{args.profile}-{target}.txt"
            measured = {}
            for side in ("plain", "migration") if number % 2 == 0 else ("migration", "plain"):
                cpu.lap()
                if side == "plain":
                    elapsed = await trio.to_thread.run_sync(plain_loop, files, settings, args.concurrency)
                else:
                    elapsed, size = await migrate(files, tier, work / f"node-{target}-{number}", args.concurrency, cpu, profile)
                measured[side] = (elapsed, cpu.lap())
            results.append((measured["plain"][0], measured["migration"][0], size, measured["plain"][1], measured["migration"][1]))
    return results


async def main(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-migration-"))
    series = write_series(work / "source", SeriesSpec(count=args.count, modality="CT", study_instance_uid=new_uid()))
    files = list(series.paths)
    total = sum(p.stat().st_size for p in files)
    table = {target: await rounds(target, files, work, args) for target in args.targets.split(",")}
    print(f"{args.count} x {total / args.count / 1024:.0f} KiB, concurrency {args.concurrency}, {args.rounds} rounds (order alternating)")
    print("| target | round | plain loop MB/s | migration MB/s | ratio | CPU s client/server: plain | migration |")
    print("|---|---|---|---|---|---|---|")
    for target, results in table.items():
        for number, (plain, moved, size, plain_cpu, moved_cpu) in enumerate(results, 1):
            print(
                f"| {target} | {number} | {total / plain / 1e6:.1f} | {size / moved / 1e6:.1f} | {plain / moved:.2f}x "
                f"| {plain_cpu[0]:.1f} / {plain_cpu[1]:.1f} | {moved_cpu[0]:.1f} / {moved_cpu[1]:.1f} |"
            )
    for target, results in table.items():
        print(f"{target}: median ratio {statistics.median(plain / moved for plain, moved, *_ in results):.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--targets", default="s3,azure")
    parser.add_argument("--profile", help="py-spy the migration into PROFILE-{target}.txt (collapsed stacks; py-spy installed)")
    trio.run(main, parser.parse_args())
