"""The prefetcher's messages (what it accepts and answers) and its events."""

from __future__ import annotations

from ...actors import message
from ...storage.worklist_db import ScheduledItem
from .criteria import ChosenStudy
from .jobs import PrefetchStats
from .persistence import CycleRecord

# -- asked of it ----------------------------------------------------------------------------


@message("prefetch.priors")
class PrefetchPriors:
    """Prefetch the priors of one patient. `lookback_days` None: the configured one.
    Answered with PrefetchQueued at once, or - `wait` - with PatientPrefetched once the
    patient's queries and retrievals have all ended (joining a run already under way)."""

    patient_id: str
    lookback_days: int | None = None
    modality: str = ""  # of the step about to be done: preferred priors
    body_part: str = ""
    wait: bool = False


@message("prefetch.queued")
class PrefetchQueued:
    patient_id: str
    queued: bool  # False: it was queued or under way already (deduplicated)
    cycle_id: str


@message("prefetch.run-cycle")
class RunPrefetchCycle:
    """Queue every patient of the worklist items scheduled in the next `lookahead_hours`
    (the periodic cycle sends it; so may anyone)."""


@message("prefetch.cycle-started")
class PrefetchCycleStarted:
    cycle_id: str
    patients: int  # queued by it (patients under way already are not counted)


@message("prefetch.get-status")
class GetPrefetchStatus:
    pass


@message("prefetch.status")
class PrefetchStatus:
    queued_patients: tuple[str, ...]
    queued_studies: int
    running: int
    cumulative: PrefetchStats
    cycles_completed: int
    last_cycle: CycleRecord | None
    next_cycle_in: float | None  # seconds; None when there is no periodic cycle


# -- what its own tasks report back ---------------------------------------------------------------


@message("prefetch.query-done")
class QueryDone:
    """A patient's sources were queried: what to retrieve, what is here already, and
    the sources that failed (still to ask if `transient`)."""

    patient_id: str
    chosen: tuple[tuple[str, ChosenStudy], ...]  # (source, study)
    present: int
    answered: tuple[str, ...]
    failures: tuple[tuple[str, str, bool], ...]  # (source, error, transient)


@message("prefetch.study-done")
class StudyDone:
    study_instance_uid: str
    series: int = 0
    instances: int = 0
    bytes: int = 0
    present: bool = False  # found complete here before retrieving it
    error: str = ""
    transient: bool = False


@message("prefetch.worklist-scanned")
class WorklistScanned:
    """The items a periodic cycle found scheduled in the look ahead (`token` names the
    RunPrefetchCycle ask to answer, if any)."""

    token: str
    items: tuple[ScheduledItem, ...]


@message("prefetch.due")
class JobsDue:
    """A retry delay or the cycle interval has passed, or the node's listener is up:
    look at the queue again."""

    cycle: bool = False
    listening: bool = False  # the node can take the C-STOREs of a C-MOVE now


# -- events ----------------------------------------------------------------------------------


@message("event.prefetch-request-sent")
class PrefetchRequestSent:
    """An association opened to a source (each takes a token of its rate limit)."""

    source: str
    purpose: str  # find, move or get
    subject: str  # the patient ID (find) or the Study Instance UID (move, get)
    at: float  # trio.current_time() when it went


@message("event.prefetch-study-done")
class PrefetchStudyDone:
    patient_id: str
    study_instance_uid: str
    source: str
    series: int
    instances: int
    bytes: int
    present: bool  # complete here already: nothing retrieved


@message("event.prefetch-study-failed")
class PrefetchStudyFailed:
    patient_id: str
    study_instance_uid: str
    source: str
    error: str
    attempts: int
    final: bool  # False: tried again after retry_delay


@message("event.prefetch-query-failed")
class PrefetchQueryFailed:
    patient_id: str
    source: str
    error: str
    attempts: int
    final: bool


@message("event.prefetch-patient-done")
class PatientPrefetched:
    patient_id: str
    stats: PrefetchStats


@message("event.prefetch-cycle-finished")
class PrefetchCycleFinished:
    record: CycleRecord


__all__ = [
    "GetPrefetchStatus", "JobsDue", "PatientPrefetched", "PrefetchCycleFinished", "PrefetchCycleStarted", "PrefetchPriors",
    "PrefetchQueryFailed", "PrefetchQueued", "PrefetchRequestSent", "PrefetchStatus", "PrefetchStudyDone",
    "PrefetchStudyFailed", "QueryDone", "RunPrefetchCycle", "StudyDone", "WorklistScanned",
]
