"""What the prefetcher's queue holds, and the statistics it keeps (seed prefetch_result).

Two kinds of job: a patient's query (C-FIND on each source not answered yet), and a
study's retrieval from the source that has it. Both are kept in the prefetcher's
database until they end, so a restart resumes them.
"""

from __future__ import annotations

import attrs
import cattrs

from .criteria import ChosenStudy, ScheduledStep


@attrs.frozen(kw_only=True)
class PatientJob:
    step: ScheduledStep
    sources: tuple[str, ...]  # the sources (AE titles) still to query
    chosen: int = 0  # studies chosen so far (max_studies_per_patient counts across sources)
    attempts: int = 0  # failed attempts of the sources still to query
    next_attempt_at: float = 0.0  # epoch seconds
    last_error: str = ""
    cycle: str = ""
    queued_at: float = 0.0

    @property
    def patient_id(self) -> str:
        return self.step.patient_id


@attrs.frozen(kw_only=True)
class StudyJob:
    chosen: ChosenStudy
    patient_id: str
    source: str
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""
    cycle: str = ""
    queued_at: float = 0.0

    @property
    def study_instance_uid(self) -> str:
        return self.chosen.study.study_instance_uid


@attrs.frozen(kw_only=True)
class PrefetchStats:
    """Counts of a cycle, or of everything since the database was created."""

    patients_processed: int = 0
    studies_prefetched: int = 0
    studies_already_present: int = 0
    studies_failed: int = 0
    queries_failed: int = 0  # a source that could not be queried for a patient
    series_prefetched: int = 0
    instances_prefetched: int = 0
    bytes_downloaded: int = 0
    duration: float = 0.0  # seconds

    def __add__(self, other: PrefetchStats) -> PrefetchStats:
        return PrefetchStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in attrs.fields(PrefetchStats)})

    def summary(self) -> str:
        return (
            f"{self.patients_processed} patients, {self.studies_prefetched} studies prefetched"
            f" ({self.series_prefetched} series, {self.instances_prefetched} instances, {self.bytes_downloaded} bytes),"
            f" {self.studies_already_present} already present, {self.studies_failed} failed,"
            f" {self.queries_failed} queries failed, {self.duration:.1f} s"
        )


# Jobs are kept as JSON: the converter turns the frozen classes (tuples, None) to and fro.
converter = cattrs.Converter()
