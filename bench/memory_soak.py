"""Memory of a long-running node: the RSS of `triopacs serve` under a long soak.

    .venv/bin/python bench/memory_soak.py                  # 2,500 cycles: 100,000 stores, 20,000 queries
    .venv/bin/python bench/memory_soak.py --cycles 250     # a tenth of it
    .venv/bin/python bench/memory_soak.py --node-tree DIR  # the node from another checkout (DIR/triopacs)

The node runs as `triopacs serve` (durability os, its own process; its VmRSS is read from
/proc/PID/status); a DCMTK storescp (--ignore) is the C-MOVE destination; the load is
tests/node/soak_client.py in a process of its own, over loopback TCP. The archive is 10
patients x 2 studies x 2 series x 5 images. One cycle:

- an association storing one patient's 20 instances again (replacing them) and the 20
  instances of a new patient (fresh UIDs: the index keeps growing), a C-GET and a C-MOVE
  of one series (5 instances each);
- two associations, each with one C-FIND per level: PATIENT (10 matches), STUDY (20),
  SERIES (40) and IMAGE (200).

That is 40 stores and 8 queries (2,160 matches) a cycle. The RSS is read after every
chunk of cycles (VmRSS, and its heap and mapped-file parts); the samples go to
bench/results/memory_soak.csv and a plot to bench/results/memory_soak.png (matplotlib: `pip install -e '.[bench]'`; without it the
CSV is written and the plot skipped). Printed: RSS at the start of the soak (after the
archive is stored), its low and high over the second half, at the end, and the slope of
a straight line fitted to the second half (KB per 1,000 operations).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the peers' process handling, the soak client

from node.soak_client import soak_client  # noqa: E402
from peers import LOOPBACK, storescp  # noqa: E402
from peers.process import serve  # noqa: E402

ARCHIVE = ["--patients", "10", "--studies", "2", "--series", "2", "--images", "5"]
RESULTS = ROOT / "bench" / "results"
KB = 1024
MB = 1024 * 1024


@dataclass
class Sample:
    seconds: float
    stores: int
    queries: int
    matches: int
    retrieved: int
    rss: int  # bytes: VmRSS, the sum of the two below
    anon: int  # RssAnon: the heap (Python objects, SQLite caches, thread arenas)
    file: int  # RssFile + RssShmem: mapped libraries, SQLite's -shm map

    @property
    def operations(self) -> int:
        """Requests answered: stores, queries and retrieved instances (sub-operations)."""
        return self.stores + self.queries + self.retrieved


def memory_of(pid: int) -> tuple[int, int, int]:
    """(VmRSS, RssAnon, RssFile + RssShmem) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            fields[key] = int(value.split()[0]) * KB
    return fields["VmRSS"], fields["RssAnon"], fields["RssFile"] + fields["RssShmem"]


def node_command(port: int, workdir: Path, destination_port: int) -> list[str]:
    config = workdir / "triopacs.toml"
    config.write_text(
        '[storage]\ndurability = "os"\n\n'
        f'[[remote]]\nae_title = "SOAKDEST"\nhost = "{LOOPBACK}"\nport = {destination_port}\n'
    )
    return [sys.executable, "-m", "triopacs", "serve", "--config", str(config), "--port", str(port), "--data", str(workdir / "data")]


def totals(done: Counter) -> tuple[int, int, int, int]:
    """(stores, queries, matches, retrieved) in one answer of the soak client."""
    matches = sum(count for key, count in done.items() if key.startswith("find_"))
    queries = 4 * done["query_rounds"]
    return done["stored"] + done["stored_new"], queries, matches, done["got"] + done["moved"]


async def soak(cycles: int, chunk: int, node_tree: Path | None, scratch: Path) -> list[Sample]:
    env = {"PYTHONPATH": str(node_tree.resolve().parent)} if node_tree is not None else None
    samples: list[Sample] = []
    async with storescp("SOAKDEST", extra_args=["--ignore"], parent_dir=scratch) as destination:
        async with serve(
            "triopacs",
            lambda ports, workdir: node_command(ports[0], workdir, destination.port),
            ready_line="ready",
            env=env,
            parent_dir=scratch,
        ) as node:
            async with soak_client(
                LOOPBACK, node.port, move_to="SOAKDEST", log=scratch / "client.log", options=ARCHIVE
            ) as load:
                await load.run("populate")
                started = time.monotonic()
                done: Counter = Counter()
                samples.append(Sample(0.0, 0, 0, 0, 0, *memory_of(node.pid)))
                for first in range(0, cycles, chunk):
                    count = min(chunk, cycles - first)
                    done += await load.rounds(count, "store", "new", "get", "move")
                    queried = await load.rounds(2 * count, "find")
                    done += queried + Counter(query_rounds=2 * count)
                    stores, queries, matches, retrieved = totals(done)
                    samples.append(Sample(time.monotonic() - started, stores, queries, matches, retrieved, *memory_of(node.pid)))
                    last = samples[-1]
                    print(
                        f"{first + count:>6} cycles {last.seconds:7.0f} s  stores {stores:>7}  queries {queries:>6}  "
                        f"retrieved {retrieved:>6}  RSS {last.rss / MB:6.1f} MiB (anon {last.anon / MB:5.1f}, file {last.file / MB:4.1f})",
                        flush=True,
                    )
    return samples


def slope_per_thousand(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over operations, in bytes per 1,000 operations."""
    xs = [s.operations for s in samples]
    ys = [s.rss for s in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return 1000 * sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread if spread else 0.0


def write_csv(samples: list[Sample], path: Path) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["seconds", "stores", "queries", "matches", "retrieved", "rss_bytes", "anon_bytes", "file_bytes"])
        for s in samples:
            writer.writerow([f"{s.seconds:.1f}", s.stores, s.queries, s.matches, s.retrieved, s.rss, s.anon, s.file])


def plot(samples: list[Sample], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(9, 4.5))
    stores = [s.stores for s in samples]
    axis.plot(stores, [s.rss / MB for s in samples], marker=".", linewidth=1, label="VmRSS")
    axis.plot(stores, [s.anon / MB for s in samples], linewidth=1, label="RssAnon (heap)")
    axis.plot(stores, [s.file / MB for s in samples], linewidth=1, label="RssFile + RssShmem (mapped files)")
    axis.legend(loc="lower right")
    axis.set_xlabel("stores (each cycle of 40 stores also runs 8 C-FINDs, a C-GET and a C-MOVE)")
    axis.set_ylabel("node RSS (MiB)")
    axis.set_ylim(bottom=0, top=max(s.rss for s in samples) / MB * 1.25)
    axis.grid(True, alpha=0.3)
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2500, help="40 stores + 8 queries each (default 2500)")
    parser.add_argument("--chunk", type=int, default=25, help="cycles between two RSS readings")
    parser.add_argument("--node-tree", type=Path, help="run the node from this source tree (a folder named triopacs)")
    parser.add_argument("--name", default="memory_soak", help="file name of the results (csv, png)")
    args = parser.parse_args()
    if args.node_tree is not None and args.node_tree.resolve().name != "triopacs":
        parser.error("--node-tree must be a folder named triopacs (it is imported as the package)")
    os.environ.setdefault("TCP_NODELAY", "1")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="memory-soak-") as scratch:
        samples = trio.run(soak, args.cycles, args.chunk, args.node_tree, Path(scratch))
    start, end = samples[0], samples[-1]
    second_half = samples[len(samples) // 2 :]
    low, high = min(s.rss for s in second_half), max(s.rss for s in second_half)
    print(
        f"\n{end.stores} stores, {end.queries} queries ({end.matches} matches), {end.retrieved} instances retrieved "
        f"in {end.seconds / 60:.1f} min\nRSS: {start.rss / MB:.1f} MiB at the start, {low / MB:.1f}-{high / MB:.1f} "
        f"over the second half, {end.rss / MB:.1f} at the end; slope over the second half "
        f"{slope_per_thousand(second_half) / KB:+.1f} KiB per 1,000 operations"
    )
    write_csv(samples, RESULTS / f"{args.name}.csv")
    title = f"triopacs serve, durability os: RSS under {end.stores:,} stores and {end.queries:,} queries"
    if plot(samples, RESULTS / f"{args.name}.png", title):
        print(f"plot: {RESULTS / (args.name + '.png')}")
    else:
        print("matplotlib is not installed (pip install -e '.[bench]'): plot skipped")


if __name__ == "__main__":
    main()
