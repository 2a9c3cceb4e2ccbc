"""The prefetcher's queue and statistics in a real SQLite file (workflow/prefetch/persistence.py)."""

import sqlite3

import pytest

from triopacs.storage.schema import SchemaTooNew
from triopacs.workflow.prefetch.criteria import ChosenStudy, PriorSeries, PriorStudy, ScheduledStep
from triopacs.workflow.prefetch.jobs import PatientJob, PrefetchStats, StudyJob
from triopacs.workflow.prefetch.persistence import (
    MIGRATIONS,
    CycleRecord,
    load_queue,
    open_prefetch_db,
    read_status,
    record_cycle,
    save_patients,
    settle_query,
    settle_study,
)

STEP = ScheduledStep(patient_id="P1", modality="CT", body_part="CHEST", study_instance_uid="1.2.3")
STUDY = ChosenStudy(
    study=PriorStudy(study_instance_uid="1.2.4", study_date="20260101", modalities=("CT",), instances=4,
                     series=(PriorSeries(series_instance_uid="1.2.4.1", modality="CT", body_part="CHEST", instances=4),)),
)


def test_the_queue_survives_a_reopen_with_its_counts(tmp_path):
    path = tmp_path / "prefetch.sqlite"
    db = open_prefetch_db(path)
    save_patients(db, [PatientJob(step=STEP, sources=("A", "B"), cycle="c1", queued_at=1.0, next_attempt_at=1.0)])
    retry = PatientJob(step=STEP, sources=("B",), attempts=1, chosen=2, next_attempt_at=61.0, last_error="B: refused", cycle="c1")
    settle_query(db, "P1", retry, [StudyJob(chosen=STUDY, patient_id="P1", source="A", cycle="c1")], PrefetchStats(studies_already_present=1))
    settle_study(db, "1.2.4", None, PrefetchStats(studies_prefetched=1, series_prefetched=1, instances_prefetched=4, bytes_downloaded=99))
    settle_query(db, "P1", None, [], PrefetchStats(patients_processed=1))
    record_cycle(db, CycleRecord(cycle_id="c1", trigger="request", started_at=0.0, finished_at=2.5, stats=PrefetchStats(duration=2.5)))
    db.close()
    saved = load_queue(open_prefetch_db(path))
    assert saved.patients == () and saved.studies == ()
    assert saved.totals == PrefetchStats(patients_processed=1, studies_prefetched=1, studies_already_present=1, series_prefetched=1,
                                         instances_prefetched=4, bytes_downloaded=99, duration=2.5)
    assert saved.cycles == 1 and saved.last_cycle.cycle_id == "c1"


def test_jobs_come_back_as_they_were_saved(tmp_path):
    path = tmp_path / "prefetch.sqlite"
    db = open_prefetch_db(path)
    patient = PatientJob(step=STEP, sources=("B",), attempts=2, chosen=1, next_attempt_at=5.0, last_error="x", cycle="c", queued_at=1.0)
    study = StudyJob(chosen=STUDY, patient_id="P1", source="A", attempts=1, next_attempt_at=3.0, cycle="c")
    save_patients(db, [patient])
    settle_query(db, "P9", None, [study], PrefetchStats())
    settle_query(db, "P9", None, [StudyJob(chosen=STUDY, patient_id="P1", source="B")], PrefetchStats())  # queued already: kept
    db.close()
    saved = read_status(path)  # read-only, as `triopacs prefetch --status` does
    assert saved.patients == (patient,) and saved.studies == (study,)


def test_no_file_no_status_and_a_newer_schema_is_refused(tmp_path):
    assert read_status(tmp_path / "absent.sqlite") is None
    path = tmp_path / "prefetch.sqlite"
    open_prefetch_db(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(SchemaTooNew, match="prefetch schema version 2 is newer"):
        open_prefetch_db(path)
