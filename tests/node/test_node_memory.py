"""A memory soak: a node that has answered a few thousand requests holds no more than before.

The node runs in this process (so that tracemalloc sees it); the load comes from another
process (soak_client.py: the triopacs client over loopback TCP), so nothing of the client
is measured; C-MOVEs go to a DCMTK storescp. A round (soak_client.py) is one association
with 20 stores replacing stored instances, 20 stores of a new patient, one C-FIND per
level (10 + 20 + 40 + 200 matches), a C-GET and a C-MOVE of 5 instances each.

After a warm-up, two measurements:

1. RSS (VmRSS in /proc/self/status) before and after rounds of replacing stores, C-FINDs,
   C-GETs and C-MOVEs (no new instances: the database, and so SQLite's page cache, keep
   their size) must stay within RSS_MARGIN.
2. tracemalloc snapshots before and after whole rounds, new instances included: the
   blocks that grew and were allocated by the node's code must stay under
   TRACED_MARGIN, and everything that grew, whoever allocated it, under TOTAL_MARGIN.

Before each reading the node is left idle and brought to a state that does not depend on
when it is read (`settle`): what still differs is kept for good. Before this test was
written, one round kept ~1 MB (every C-FIND page and store outcome the index answered).
"""

import gc
import sys
import tracemalloc
from pathlib import Path

import trio
import trio.testing
from peers import storescp

import triopacs
from triopacs.storage.dicom_json import forget_remembered_values

from .nodes import LOOPBACK, remote, running_node
from .soak_client import soak_client

PACKAGE = str(Path(triopacs.__file__).resolve().parent)
NOT_OURS = (str(Path(__file__).resolve().parent.parent), str(Path(sys.prefix).resolve()))  # tests, a venv inside
ARCHIVE = ["--patients", "10", "--studies", "2", "--series", "2", "--images", "5"]  # 200 instances
MATCHES_PER_ROUND = {"find_patient": 10, "find_study": 20, "find_series": 40, "find_image": 200}
WARM_UP_ROUNDS = 10
RSS_ROUNDS = 50  # 1,000 stores, 200 C-FINDs (13,500 matches), 250 + 250 instances retrieved
TRACED_ROUNDS = 10
RSS_MARGIN = 3 * 2**20
TRACED_MARGIN = 64 * 2**10
TOTAL_MARGIN = 256 * 2**10


def vm_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def settle() -> None:
    """Leave the node idle and in a state that does not depend on when it is measured."""
    await trio.testing.wait_all_tasks_blocked()  # associations closed, index idle
    # trio keeps the deadlines of finished cancel scopes in its timer heap until they
    # outnumber the live ones by 1,000, then prunes them all: passing the threshold with
    # throwaway scopes makes that happen now rather than at a random point.
    for _ in range(2_500):
        with trio.move_on_after(3600):
            pass
    await trio.sleep(0)
    # A bounded memo (storage/dicom_json.py; its bound has a test of its own) that new
    # instances fill and empty in turn.
    forget_remembered_values()
    gc.collect()


def growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> tuple[int, int, list[str]]:
    """(bytes grown in blocks the node's code allocated, bytes grown in all, the node's
    biggest growing lines)."""
    node, report = 0, []
    for stat in after.compare_to(before, "lineno"):
        name = stat.traceback[0].filename
        if stat.size_diff > 0 and name.startswith(PACKAGE) and not name.startswith(NOT_OURS):
            node += stat.size_diff
            report.append(str(stat))
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return node, total, report[:10]


def check_work(done, rounds: int, *, new: bool = True) -> None:
    """Every request of `rounds` rounds was answered as it should."""
    expected = {"stored": 20 * rounds, "got": 5 * rounds, "moved": 5 * rounds}
    if new:
        expected["stored_new"] = 20 * rounds
    expected |= {key: matches * rounds for key, matches in MATCHES_PER_ROUND.items()}
    assert dict(done) == expected


async def test_memory_stays_flat_under_stores_queries_and_retrieves(tmp_path):
    async with (
        storescp("SOAKDEST", extra_args=["--ignore"], parent_dir=tmp_path) as destination,
        running_node(tmp_path, durability="os", remote=[remote(destination.ae_title, destination.port)]) as node,
        soak_client(LOOPBACK, node.address.port, move_to=destination.ae_title, log=tmp_path / "client.log", options=ARCHIVE) as load,
    ):
        assert (await load.run("populate"))["stored"] == 200
        check_work(await load.rounds(WARM_UP_ROUNDS), WARM_UP_ROUNDS)

        await settle()
        rss_before = vm_rss()
        check_work(await load.rounds(RSS_ROUNDS, "store", "find", "get", "move"), RSS_ROUNDS, new=False)
        await settle()
        rss_after = vm_rss()

        tracemalloc.start(1)  # the innermost frame only: deeper tracebacks cost 5-10x the time
        try:
            check_work(await load.rounds(1), 1)  # tracemalloc's own first allocations
            await settle()
            before = tracemalloc.take_snapshot()
            check_work(await load.rounds(TRACED_ROUNDS), TRACED_ROUNDS)
            await settle()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()

    node, total, report = growth(before, after)
    print(
        f"RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB over {RSS_ROUNDS} rounds; "
        f"traced over {TRACED_ROUNDS} rounds: node's code +{node} B, everything {total:+} B"
    )
    print("the node's biggest growing lines:", *report, sep="\n")  # shown when failing
    assert rss_after - rss_before < RSS_MARGIN, f"RSS grew {(rss_after - rss_before) / 2**20:.1f} MiB"
    assert node < TRACED_MARGIN, "\n".join(report)
    assert total < TOTAL_MARGIN, f"{total} B more traced memory"
