"""The prefetcher: prior studies fetched from remote PACS before the patient arrives.

    status = await node.ref("prefetch").ask(GetPrefetchStatus())
    await node.ref("prefetch").ask(PrefetchPriors(patient_id="P1", wait=True), timeout=None)

See service.py and docs/workflow.md.
"""

from .criteria import ChosenStudy, PrefetchCriteria, PriorSeries, PriorStudy, ScheduledStep, select_priors
from .jobs import PrefetchStats
from .messages import (
    GetPrefetchStatus,
    PatientPrefetched,
    PrefetchCycleFinished,
    PrefetchCycleStarted,
    PrefetchPriors,
    PrefetchQueryFailed,
    PrefetchQueued,
    PrefetchRequestSent,
    PrefetchStatus,
    PrefetchStudyDone,
    PrefetchStudyFailed,
    RunPrefetchCycle,
)
from .service import PREFETCH_PATH, PrefetchPolicy, PrefetchService, PrefetchSource

__all__ = [
    "ChosenStudy", "GetPrefetchStatus", "PREFETCH_PATH", "PatientPrefetched", "PrefetchCriteria", "PrefetchCycleFinished",
    "PrefetchCycleStarted", "PrefetchPriors", "PrefetchQueryFailed", "PrefetchQueued", "PrefetchRequestSent",
    "PrefetchPolicy", "PrefetchService", "PrefetchSource", "PrefetchStats", "PrefetchStatus", "PrefetchStudyDone",
    "PrefetchStudyFailed", "PriorSeries", "PriorStudy", "RunPrefetchCycle", "ScheduledStep", "select_priors",
]
