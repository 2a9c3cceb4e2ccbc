"""What one request to the index actor costs: C-FIND pages and group commits.

Starts the real IndexActor on a fresh SQLite file (in a temp directory), fills it with
STUDIES studies of 5 instances each through RecordInstance (group commits), then times,
from the asking task:

- commit: 64 RecordInstance asks sent together (one group commit), until all answered;
- page: one FindMatches page of 50 STUDY-level responses, every key indexed;
- filtered page: the same with a key that has no column (AdmissionID, matched in Python
  on the stored JSON; 1 study in 20 matches, so a page examines up to 1000 rows);
- page under stores: the plain page while another task keeps committing batches of 16.

It prints the median and 90th percentile of each, and the thread crossings each
request cost where the actor's machinery counts them. Run it before and after a change
to the index's plumbing, in one sitting (this machine's speed drifts):

    .venv/bin/python bench/index_requests.py [--studies 2000] [--rounds 200] [--synchronous FULL]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from triopacs.actors import ActorSpec, ActorSystem, AsyncioPortal, RestartPolicy, open_supervisor
from triopacs.actors.node.index import FindMatches, IndexActor, RecordInstance
from triopacs.storage.attributes import record_from_dataset
from triopacs.storage.query import InformationModel

ROOT = "1.2.826.0.1.3680043.8.498.99"


def record(study: int, sop: int, series: int = 1):
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.StudyInstanceUID = f"{ROOT}.{study}"
    ds.SeriesInstanceUID = f"{ROOT}.{study}.{series}"
    ds.SOPInstanceUID = f"{ROOT}.{study}.{series}.{sop}"
    ds.PatientID = f"P{study % 500}"
    ds.PatientName = f"Doe^Patient{study % 500}"
    ds.StudyDate = f"2024{1 + study % 12:02d}{1 + study % 28:02d}"
    ds.StudyDescription = f"CT study {study}"
    ds.AdmissionID = f"A{study % 20}"
    ds.Modality = "CT"
    ds.SeriesNumber = str(series)
    ds.InstanceNumber = str(sop)
    return record_from_dataset(
        ds,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        file_path=f"files/{study}/{series}/{sop}.dcm",
        file_size=526_000,
        sha256="0" * 64,
    )


def study_query(**keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    ds.PatientName = ""
    ds.StudyDate = ""
    ds.StudyDescription = ""
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def crossing_counters(system: ActorSystem, index_actor) -> dict[str, int]:
    """Every crossing counter the node's machinery exposes (the names differ by version)."""
    counts = {"asyncio portal": system.portal.crossings}
    for name in ("writer", "reader"):
        crossings = getattr(getattr(index_actor, name, None), "crossings", None)
        if crossings is not None:  # a database thread (aiosqlite connections count nothing)
            counts[f"{name} thread"] = crossings
    return counts


def spent(before: dict[str, int], after: dict[str, int], requests: int) -> str:
    return ", ".join(f"{name} {(after[name] - before[name]) / requests:.2f}" for name in after if after[name] != before[name]) or "none counted"


def summary(label: str, seconds: list[float], crossings: str) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[int(len(ms) * 0.9)]
    return f"{label:<34} median {statistics.median(ms):7.2f} ms   p90 {p90:7.2f} ms   crossings per request: {crossings}"


async def main(studies: int, rounds: int, synchronous: str, folder: Path) -> None:
    async with AsyncioPortal() as portal:
        system = ActorSystem(portal=portal)
        async with open_supervisor(system, "/bench", RestartPolicy(max_restarts=0, within=1.0)) as root:
            instances: list[IndexActor] = []

            def factory():
                actor = IndexActor(database=str(folder / "index.sqlite"), synchronous=synchronous)
                instances.append(actor)
                return actor

            index = await root.start(ActorSpec(name="index", actor=factory))
            actor = instances[0]

            async def commit(records) -> None:
                async with trio.open_nursery() as nursery:
                    for r in records:
                        nursery.start_soon(index.ask, RecordInstance(record=r))

            started = time.perf_counter()
            for first in range(0, studies, 20):
                await commit([record(s, i) for s in range(first, min(first + 20, studies)) for i in range(1, 6)])
            print(f"filled: {studies} studies, {studies * 5} instances in {time.perf_counter() - started:.1f} s "
                  f"(synchronous={synchronous})")

            # commit: 64 new instances at once, one group commit
            times = []
            before = crossing_counters(system, actor)
            for round_ in range(rounds // 4):
                batch = [record(studies + round_, i, series=2) for i in range(64)]
                started = time.perf_counter()
                await commit(batch)
                times.append(time.perf_counter() - started)
            print(summary("group commit of 64 stores", times, spent(before, crossing_counters(system, actor), len(times))))

            async def pages(label: str, identifier: Dataset) -> None:
                times = []
                before = crossing_counters(system, actor)
                answered = 0
                for _ in range(rounds):
                    started = time.perf_counter()
                    page = await index.ask(FindMatches(identifier=identifier, model=InformationModel.STUDY_ROOT, size=50))
                    times.append(time.perf_counter() - started)
                    answered = len(page.responses)
                print(summary(f"{label} ({answered} responses)", times, spent(before, crossing_counters(system, actor), rounds)))

            await pages("C-FIND page", study_query())
            await pages("C-FIND page, JSON-matched key", study_query(AdmissionID="A7"))

            # the plain page while stores keep committing beside it
            stop = trio.Event()
            stored = 0

            async def keep_storing() -> None:
                nonlocal stored
                batch_number = 0
                while not stop.is_set():
                    batch_number += 1
                    await commit([record(studies + 10_000 + batch_number, i, series=3) for i in range(16)])
                    stored += 16

            async with trio.open_nursery() as nursery:
                nursery.start_soon(keep_storing)
                await trio.sleep(0.05)
                started = time.perf_counter()
                await pages("C-FIND page under stores", study_query())
                elapsed = time.perf_counter() - started
                stop.set()
            print(f"{'':<34} meanwhile {stored} stores committed ({stored / elapsed:.0f} a second)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="index-requests-") as folder:
        trio.run(main, args.studies, args.rounds, args.synchronous, Path(folder))
    sys.exit(0)
