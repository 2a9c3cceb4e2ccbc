"""C-FIND at scale: STUDY-level queries against an index of 10k, 100k and 1,000,000 instances.

Each index is built through the index's own bulk path (`record_instances`, 10,000 records
per transaction, the same function a group commit runs), not through C-STORE: 20
instances per study in two series, five studies per patient, study dates spread over ten
years, one study in ten with an MR series. Then, server side - `plan_find` + `find_page`
on the index's connection, exactly the work one FindMatches request does on the index's
reader thread - it times the first page (50 responses) and the whole answer of:

- PatientID exact; PatientName prefix wildcard (`DOE^P0012*`, about 10 patients);
- StudyDate range (one week); AccessionNumber exact; ModalitiesInStudy = MR,

each asking for the usual return keys (names, dates, ModalitiesInStudy, the count of
instances). It prints the median and 90th percentile per query and size, and SQLite's
plan for each query shape (`EXPLAIN QUERY PLAN`).

    .venv/bin/python bench/find_scale.py                  # 10k, 100k, 1M (a few minutes)
    .venv/bin/python bench/find_scale.py --quick          # 10k and 100k, under a minute
    .venv/bin/python bench/find_scale.py --sizes 50000 --rounds 50
"""

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pydicom.dataset import Dataset

from triopacs.storage.attributes import InstanceRecord
from triopacs.storage.index_db import DuplicatePolicy, open_index, record_instances
from triopacs.storage.query import InformationModel, _select_sql, find_page, plan_find

ROOT = "1.2.826.0.1.3680043.8.498.77"
CT, MR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"
INSTANCES_PER_SERIES, SERIES_PER_STUDY, STUDIES_PER_PATIENT = 10, 2, 5
BATCH = 10_000
DAY0 = 738_000  # a proleptic ordinal in 2021; dates run ten years from there


def _json(**elements: tuple[str, object]) -> str:
    return json.dumps({tag: {"vr": vr, "Value": [value]} for tag, (vr, value) in elements.items()})


def _date(study: int) -> str:
    import datetime as dt

    return dt.date.fromordinal(DAY0 + (study * 7919) % 3650).strftime("%Y%m%d")


def records(instances: int) -> Iterator[InstanceRecord]:
    per_study = INSTANCES_PER_SERIES * SERIES_PER_STUDY
    for study in range(instances // per_study):
        patient = study // STUDIES_PER_PATIENT
        pid, name, date, accession = f"P{patient:07d}", f"DOE^P{patient:07d}", _date(study), f"ACC{study:08d}"
        patient_json = _json(**{"00100020": ("LO", pid), "00100010": ("PN", {"Alphabetic": name})})
        study_uid = f"{ROOT}.{study}"
        study_json = _json(
            **{"0020000D": ("UI", study_uid), "00080020": ("DA", date), "00080050": ("SH", accession)}
        )
        for series in range(SERIES_PER_STUDY):
            modality = "MR" if series == 1 and study % 10 == 0 else "CT"
            series_uid = f"{study_uid}.{series}"
            series_json = _json(**{"0020000E": ("UI", series_uid), "00080060": ("CS", modality)})
            for number in range(INSTANCES_PER_SERIES):
                sop_uid = f"{series_uid}.{number}"
                yield InstanceRecord(
                    patient_id=pid,
                    patient_name=name,
                    study_instance_uid=study_uid,
                    study_date=date,
                    accession_number=accession,
                    series_instance_uid=series_uid,
                    modality=modality,
                    series_number=series + 1,
                    sop_instance_uid=sop_uid,
                    sop_class_uid=MR if modality == "MR" else CT,
                    instance_number=number + 1,
                    patient_json=patient_json,
                    study_json=study_json,
                    series_json=series_json,
                    instance_json=_json(**{"00080018": ("UI", sop_uid)}),
                    file_path=f"files/{study}/{series}/{number}.dcm",
                    file_size=526_000,
                    sha256="0" * 64,
                    transfer_syntax_uid="1.2.840.10008.1.2.1",
                )


def build(path: Path, instances: int) -> float:
    connection = open_index(path, synchronous="NORMAL")
    started = time.perf_counter()
    batch: list[InstanceRecord] = []
    for record in records(instances):
        batch.append(record)
        if len(batch) == BATCH:
            record_instances(connection, batch, DuplicatePolicy.REPLACE)
            batch = []
    if batch:
        record_instances(connection, batch, DuplicatePolicy.REPLACE)
    connection.close()
    return time.perf_counter() - started


def identifier(**keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate", "AccessionNumber",
                    "ModalitiesInStudy", "NumberOfStudyRelatedInstances"):
        setattr(ds, keyword, "")
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def queries(instances: int, rng: random.Random) -> dict[str, Dataset]:
    studies = instances // (INSTANCES_PER_SERIES * SERIES_PER_STUDY)
    patients = max(1, studies // STUDIES_PER_PATIENT)
    patient, study = rng.randrange(patients), rng.randrange(studies)
    start = _date(study)
    import datetime as dt

    end = (dt.datetime.strptime(start, "%Y%m%d") + dt.timedelta(days=6)).strftime("%Y%m%d")
    return {
        "PatientID exact": identifier(PatientID=f"P{patient:07d}"),
        "PatientName prefix*": identifier(PatientName=f"DOE^P{patient // 10:06d}*"),
        "StudyDate one week": identifier(StudyDate=f"{start}-{end}"),
        "AccessionNumber exact": identifier(AccessionNumber=f"ACC{study:08d}"),
        "ModalitiesInStudy MR": identifier(ModalitiesInStudy="MR"),
    }


def time_query(connection, ds: Dataset) -> tuple[float, float, int]:
    """(first page ms, whole answer ms, matches), as the index's reader thread spends them."""
    started = time.perf_counter()
    plan = plan_find(ds, InformationModel.STUDY_ROOT)
    page = find_page(connection, plan, cursor=0, size=50)
    first = time.perf_counter() - started
    matches = len(page.responses)
    while page.cursor is not None:
        page = find_page(connection, plan, cursor=page.cursor, size=50)
        matches += len(page.responses)
    return first * 1000, (time.perf_counter() - started) * 1000, matches


def query_plan(connection, ds: Dataset) -> str:
    plan = plan_find(ds, InformationModel.STUDY_ROOT)
    sql, _ = _select_sql(plan)
    rows = connection.execute(f"EXPLAIN QUERY PLAN {sql}", (*plan.params, 0, 50)).fetchall()
    return "; ".join(row[-1] for row in rows)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="instances per index, comma-separated")
    parser.add_argument("--quick", action="store_true", help="10k and 100k instances, fewer rounds")
    parser.add_argument("--rounds", type=int, default=30, help="queries of each shape per size")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the index files go (default: a temp dir)")
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    rounds = min(args.rounds, 15) if args.quick else args.rounds
    plans: dict[str, str] = {}
    rows = []
    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        for size in sizes:
            path = Path(work) / f"index-{size}.sqlite"
            seconds = build(path, size)
            print(f"built {size:,} instances in {seconds:.1f} s ({size / seconds:,.0f}/s), "
                  f"{path.stat().st_size / 2**20:.0f} MiB", file=sys.stderr)
            connection = open_index(path, query_only=True)
            rng = random.Random(size)
            samples: dict[str, list[tuple[float, float, int]]] = {}
            for _ in range(rounds):
                for name, ds in queries(size, rng).items():
                    samples.setdefault(name, []).append(time_query(connection, ds))
            for name, ds in queries(size, rng).items():
                plans.setdefault(name, query_plan(connection, ds))
            connection.close()
            path.unlink()
            for name, values in samples.items():
                firsts, wholes, matches = zip(*values)
                rows.append((size, name, statistics.median(firsts), percentile(list(firsts), 0.9),
                             statistics.median(wholes), statistics.median(matches)))

    print(f"\nC-FIND, STUDY level, server side (plan_find + find_page on the index's connection), {rounds} rounds")
    print(f"{'instances':>10}  {'query':<24} {'first page ms':>14} {'p90':>8} {'whole answer ms':>16} {'matches':>8}")
    for size, name, first, p90, whole, matches in rows:
        print(f"{size:>10,}  {name:<24} {first:>14.2f} {p90:>8.2f} {whole:>16.2f} {matches:>8.0f}")
    print("\nquery plans (EXPLAIN QUERY PLAN, last size):")
    for name, text in plans.items():
        print(f"  {name}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
