"""Peak memory of the node while it migrates one very large instance (default 1 GiB)
from the hot tier to S3 (moto), multipart.

    .venv/bin/python bench/large_migration_rss.py [--gib 1] [--target s3|azure]

The instance is stored into a node in this process first; then `triopacs migrate --now`
runs the cycle as a process of its own, whose peak resident set size (VmHWM from
/proc/PID/status, start-up included) is reported. The bound is 200 MB: parts of
`part_size` (8 MiB), at most `max_concurrency` (4) in flight, never the whole file.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
from large_dataset_rss import FRAME, MB, write_large_ct  # noqa: E402
from peers.buckets import azure_settings, create_bucket, create_container, s3_settings  # noqa: E402
from peers.object_stores import azurite_blob, moto_s3  # noqa: E402

from triopacs import connect, open_node  # noqa: E402
from triopacs.actors import AsyncioPortal  # noqa: E402
from triopacs.client.contexts import storage_contexts_for  # noqa: E402
from triopacs.config import load_config  # noqa: E402


def vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB
    except OSError:
        return None
    return None


async def run(options, work: Path, tier_toml: str) -> None:
    frames = max(1, round(options.gib * 2**30 / FRAME))
    path = work / "large.dcm"
    size = write_large_ct(path, frames)
    toml = work / "node.toml"
    toml.write_text(
        f'[node]\nport = 0\ndata_dir = "{work / "data"}"\n\n[log]\nlevel = "warning"\n\n'
        f'[hsm]\nwarm_tier = "cold"\nhot_to_warm = 0.0\n\n{tier_toml}'
    )
    async with open_node(load_config(toml)) as node:
        async with connect("127.0.0.1", node.address.port, called_ae_title=node.config.node.ae_title, contexts=storage_contexts_for([path])) as association:
            assert (await association.store(path)).ok
    started = time.perf_counter()
    process = await trio.lowlevel.open_process([sys.executable, "-m", "triopacs", "migrate", "--now", "--config", str(toml)])
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, vm_hwm_mb(process.pid) or 0.0)
        await trio.sleep(0.02)
    elapsed = time.perf_counter() - started
    print(f"one {size / 2**30:.2f} GiB instance, hot -> {options.target}: exit {process.returncode}, "
          f"{elapsed:.1f} s ({size / elapsed / MB:.1f} MB/s, process start included), peak RSS {peak:.0f} MB")


async def main(options) -> None:
    work = Path(tempfile.mkdtemp(prefix="triopacs-migration-rss-"))
    try:
        if options.target == "s3":
            async with moto_s3(parent_dir=work) as endpoint:
                settings = s3_settings(endpoint, bucket="big")
                async with AsyncioPortal() as portal:
                    await create_bucket(portal, settings)
                await run(options, work, (
                    f'[[tier]]\nname = "cold"\nkind = "s3"\nbucket = "big"\nendpoint_url = "{settings.endpoint_url}"\n'
                    f'access_key_id = "testing"\nsecret_access_key = "testing"\npart_size = 8388608\nmultipart_threshold = 16777216\n'
                ))
        else:
            async with azurite_blob(parent_dir=work) as endpoint:
                settings = azure_settings(endpoint, container="big")
                async with AsyncioPortal() as portal:
                    await create_container(portal, settings)
                await run(options, work, (
                    f'[[tier]]\nname = "cold"\nkind = "azure"\ncontainer = "big"\nconnection_string = "{settings.connection_string}"\n'
                    f'block_size = 8388608\nblock_upload_threshold = 16777216\n'
                ))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--target", choices=["s3", "azure"], default="s3")
    trio.run(main, parser.parse_args())
