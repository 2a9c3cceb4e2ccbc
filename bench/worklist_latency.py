"""Modality Worklist C-FIND latency: triopacs against DCMTK wlmscpfs on the same items.

Both serve the same N items (default 1,000): wlmscpfs from .wl files (one per item, the
way it is meant to be fed), triopacs from its index (items added through the index
actor, in a node running as a process of its own so that it does not share the
client's interpreter). The same queries (default 20, four each of five shapes) go to
both, alternating, each on an association of its own opened by triopacs's client
(connect, C-FIND, release: what a modality does); we time that whole exchange, check
both returned the same number of items, and print the median, p90 and the ratio.

    .venv/bin/python bench/worklist_latency.py [--items 1000] [--queries 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import trio
from pydicom.dataset import Dataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the peers' process handling
from peers import LOOPBACK, wlmscpfs  # noqa: E402

from triopacs import connect  # noqa: E402
from triopacs.client.contexts import worklist_contexts  # noqa: E402

MODALITIES = ("CT", "MR", "US", "CR", "DX", "MG", "NM", "PT", "XA", "RF")
DAYS = 14
STEP = "ScheduledProcedureStepSequence"


def day(offset: int) -> str:
    return (dt.date.today() + dt.timedelta(days=1 + offset)).strftime("%Y%m%d")


def items(count: int) -> list[Dataset]:
    """Deterministic items: modality and station cycle, dates spread over two weeks."""
    made = []
    for n in range(count):
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName, ds.PatientID = f"NAME{n % 97:02d}^P{n:05d}", f"PAT{n:05d}"
        ds.PatientBirthDate, ds.PatientSex = "19700101", "FM"[n % 2]
        ds.AccessionNumber, ds.RequestedProcedureID = f"ACC{n:05d}", f"RP{n:05d}"
        ds.RequestedProcedureDescription = "procedure"
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.9.9.{n + 1}"
        step = Dataset()
        step.Modality = MODALITIES[n % len(MODALITIES)]
        step.ScheduledStationAETitle = f"{step.Modality}{n % 3 + 1}"
        step.ScheduledProcedureStepStartDate = day(n % DAYS)
        step.ScheduledProcedureStepStartTime = f"{7 + n % 11:02d}{(n * 7) % 60:02d}00"
        step.ScheduledProcedureStepID, step.ScheduledProcedureStepDescription = f"SPS{n:05d}", "step"
        step.ScheduledPerformingPhysicianName = "Who^Doctor"
        ds.ScheduledProcedureStepSequence = [step]
        made.append(ds)
    return made


def query(**keys: str) -> Dataset:
    """Patient, request and step keys asked back; `keys` set the ones to match."""
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.AccessionNumber = keys.get("PatientName", ""), keys.get("PatientID", ""), ""
    step = Dataset()
    for keyword in ("Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
                    "ScheduledProcedureStepStartTime", "ScheduledProcedureStepID"):
        setattr(step, keyword, keys.get(keyword, ""))
    ds.ScheduledProcedureStepSequence = [step]
    return ds


SHAPES = {
    "modality + one day": lambda i: query(Modality=MODALITIES[i], ScheduledProcedureStepStartDate=day(i)),
    "station AE title": lambda i: query(ScheduledStationAETitle=f"{MODALITIES[i]}1"),
    "day + morning": lambda i: query(ScheduledProcedureStepStartDate=day(i), ScheduledProcedureStepStartTime="070000-120000"),
    "patient ID": lambda i: query(PatientID=f"PAT{i * 211:05d}"),
    "patient name prefix": lambda i: query(PatientName=f"NAME{i * 13:02d}*"),
}


def queries(count: int) -> list[tuple[str, Dataset]]:
    names = list(SHAPES)
    return [(names[n % len(names)], SHAPES[names[n % len(names)]](n // len(names))) for n in range(count)]


# ---------------------------------------------------------------- the triopacs node


async def serve_node(data: str, count: int) -> None:
    """Child process: a node holding `count` items; prints {"port"} and runs until stdin closes."""
    from node.nodes import node_config

    from triopacs import open_node
    from triopacs.actors.node.index_dimse_n import AddWorklistItems
    from triopacs.storage.worklist import item_from_dataset

    async with open_node(node_config(Path(data), durability="os")) as node:
        made = tuple(item_from_dataset(ds) for ds in items(count))
        await node.index.ask(AddWorklistItems(items=made))
        print(json.dumps({"port": node.address.port, "ae_title": node.config.node.ae_title}), flush=True)
        stdin = trio.lowlevel.FdStream(0)
        while await stdin.receive_some():
            pass


async def drain_for_port(stream, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Read the node's output to its end (its log goes there too, and a full pipe would
    stall it); hand on the {"port"...} line once it comes."""
    buffer, started = b"", False
    while chunk := await stream.receive_some():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if not started and line.startswith(b'{"port"'):
                started = True
                task_status.started(json.loads(line))
    if not started:
        raise RuntimeError("the node process exited before it was ready")


# ---------------------------------------------------------------- measuring


async def one_query(port: int, ae_title: str, identifier: Dataset) -> tuple[float, int]:
    started = time.perf_counter()
    async with connect(LOOPBACK, port, called_ae_title=ae_title, contexts=worklist_contexts()) as association:
        found = [ds async for ds in association.find_worklist(identifier)]
    return time.perf_counter() - started, len(found)


def describe(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[max(0, int(len(ordered) * 0.9) - 1)] * 1000, 2),
    }


async def run(count: int, query_count: int) -> dict:
    made = items(count)
    with tempfile.TemporaryDirectory(prefix="worklist-latency-") as scratch:
        argv = [sys.executable, __file__, "--serve", str(Path(scratch) / "node"), "--items", str(count)]
        async with trio.open_nursery() as nursery:
            process = await nursery.start(partial(trio.run_process, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, check=False))
            with trio.fail_after(120):
                node = await nursery.start(drain_for_port, process.stdout)
            async with wlmscpfs(made, parent_dir=Path(scratch)) as reference:
                targets = {"triopacs": (node["port"], node["ae_title"]), "wlmscpfs": (reference.port, reference.ae_title)}
                for port, ae_title in targets.values():  # warm up: first association, page cache
                    await one_query(port, ae_title, query(Modality="CT"))
                times: dict[str, list[float]] = {name: [] for name in targets}
                rows = []
                for shape, identifier in queries(query_count):
                    row = {"shape": shape}
                    for name, (port, ae_title) in targets.items():
                        seconds, matches = await one_query(port, ae_title, identifier)
                        times[name].append(seconds)
                        row[name] = {"ms": round(seconds * 1000, 2), "matches": matches}
                    rows.append(row)
            await process.stdin.aclose()
    mismatched = [row for row in rows if row["triopacs"]["matches"] != row["wlmscpfs"]["matches"]]
    summary = {name: describe(seconds) for name, seconds in times.items()}
    ratio = summary["triopacs"]["median_ms"] / summary["wlmscpfs"]["median_ms"]
    return {"items": count, "queries": rows, "summary": summary, "ratio_median": round(ratio, 3), "mismatched": mismatched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: run the node child
    args = parser.parse_args()
    if args.serve:
        trio.run(serve_node, args.serve, args.items)
        return
    result = trio.run(run, args.items, args.queries)
    print(f"{'query shape':<22} {'triopacs ms':>12} {'wlmscpfs ms':>12} {'matches':>8}")
    for row in result["queries"]:
        print(f"{row['shape']:<22} {row['triopacs']['ms']:>12} {row['wlmscpfs']['ms']:>12} {row['triopacs']['matches']:>8}")
    for name, figures in result["summary"].items():
        print(f"{name}: median {figures['median_ms']} ms, p90 {figures['p90_ms']} ms")
    print(f"ratio triopacs/wlmscpfs (median): {result['ratio_median']}")
    if result["mismatched"]:
        print(f"queries where the match counts differ: {result['mismatched']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
