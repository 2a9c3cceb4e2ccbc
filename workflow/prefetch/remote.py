"""Talking to a prefetch source with the SCU client (triopacs.client): find a patient's
prior studies, retrieve one.

Each function opens one association (one token of the source's rate limit, taken by
the caller) and bounds it: `operation_timeout` for the whole of it, `dimse_timeout`
between two messages, and at most `max_find_matches` C-FIND answers read per query - a
source answering more is cut off (C-CANCEL) and the rest ignored, so a hostile or huge
answer costs a bounded amount of memory and time.

Failures come out as `SourceFailure`, transient (worth another attempt: refused for
now, aborted, timed out, out of resources) or permanent (the source will say the same
again: rejected permanently, move destination unknown, not authorised, a bad answer).
"""

from __future__ import annotations

import os
import ssl
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import trio
from pydicom import Dataset

from ...actors.node.ae_registry import RemoteAE
from ...client.connection import connect
from ...client.contexts import query_retrieve_contexts, retrieve_storage_contexts, storage_contexts_for
from ...client.errors import AssociationAborted, AssociationRejected, ClientError, ConnectionFailed, DimseTimeout, OperationFailed
from ...protocol.uid import is_valid_uid
from .criteria import ChosenStudy, PrefetchCriteria, PriorSeries, PriorStudy, ScheduledStep, date_range, in_lookback

MAX_COUNT = 10_000_000  # a count beyond this is nonsense from the source: taken as unknown


@attrs.frozen(kw_only=True)
class RemoteSettings:
    calling_ae_title: str  # ours, as the source knows us
    connect_timeout: float = 10.0
    dimse_timeout: float = 60.0
    operation_timeout: float = 600.0
    max_find_matches: int = 1000
    # Makes our TLS client context for sources marked tls ([tls]); None: they cannot be reached.
    tls_client: Callable[[], ssl.SSLContext] | None = None


class SourceFailure(Exception):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def _transient_status(status: int) -> bool:
    # A7xx: out of resources; C-MOVE/C-GET sub-operations that failed (B000) may pass later.
    return (status & 0xFF00) == 0xA700 or status == 0xB000


def classified(error: ClientError, source: str) -> SourceFailure:
    text = f"{source}: {error}"
    match error:
        case AssociationRejected():
            return SourceFailure(text, transient=not error.permanent)
        case ConnectionFailed() | AssociationAborted() | DimseTimeout():
            return SourceFailure(text, transient=True)
        case OperationFailed(status=status):
            return SourceFailure(text, transient=_transient_status(status))
    return SourceFailure(text, transient=False)


async def _bounded(source: RemoteAE, settings: RemoteSettings, work: Callable[[], Awaitable]):
    try:
        with trio.fail_after(settings.operation_timeout):
            return await work()
    except trio.TooSlowError:
        raise SourceFailure(f"{source.ae_title}: no end within {settings.operation_timeout:g} s", transient=True) from None
    except ClientError as error:
        raise classified(error, source.ae_title) from None


def _connect(source: RemoteAE, settings: RemoteSettings, contexts):
    if source.tls and settings.tls_client is None:
        raise ConnectionFailed(source.host, source.port, "the source needs TLS and [tls] has no certificates")
    return connect(
        source.host, source.port, called_ae_title=source.ae_title, calling_ae_title=settings.calling_ae_title,
        contexts=contexts, connect_timeout=settings.connect_timeout, dimse_timeout=settings.dimse_timeout,
        ssl_context=settings.tls_client() if source.tls else None,
    )


# -- reading answers --------------------------------------------------------------------------


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if not isinstance(value, (str, bytes)) and hasattr(value, "__iter__"):
        value = next(iter(value), "")
    return str(value).strip()


def _codes(ds: Dataset, keyword: str) -> tuple[str, ...]:
    value = ds.get(keyword)
    if value is None or value == "":
        return ()
    values = [value] if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(str(v).strip().upper() for v in values if str(v).strip()))


def _count(ds: Dataset, keyword: str) -> int | None:
    try:
        number = int(str(ds.get(keyword, "")).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= MAX_COUNT else None


def _date(ds: Dataset) -> str:
    text = _text(ds, "StudyDate")
    return text if len(text) == 8 and text.isdigit() else ""


def study_from(ds: Dataset) -> PriorStudy | None:
    uid = _text(ds, "StudyInstanceUID")
    if not is_valid_uid(uid):
        return None  # nothing we could ask the source to send
    return PriorStudy(
        study_instance_uid=uid, patient_id=_text(ds, "PatientID"), study_date=_date(ds),
        description=_text(ds, "StudyDescription")[:256], accession_number=_text(ds, "AccessionNumber")[:64],
        modalities=_codes(ds, "ModalitiesInStudy")[:32], instances=_count(ds, "NumberOfStudyRelatedInstances"),
    )


def series_from(ds: Dataset) -> PriorSeries | None:
    uid = _text(ds, "SeriesInstanceUID")
    if not is_valid_uid(uid):
        return None
    return PriorSeries(
        series_instance_uid=uid, modality=_text(ds, "Modality").upper()[:16], body_part=_text(ds, "BodyPartExamined").upper()[:64],
        instances=_count(ds, "NumberOfSeriesRelatedInstances"),
    )


# -- finding ----------------------------------------------------------------------------------


def study_query(step: ScheduledStep, lookback_days: int, today) -> Dataset:
    query = Dataset()
    query.PatientID = step.patient_id
    query.StudyDate = date_range(lookback_days, today)
    for keyword in ("StudyInstanceUID", "StudyDescription", "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"):
        setattr(query, keyword, "")
    return query


def series_query(study_uid: str) -> Dataset:
    query = Dataset()
    query.StudyInstanceUID = study_uid
    for keyword in ("SeriesInstanceUID", "Modality", "BodyPartExamined", "NumberOfSeriesRelatedInstances"):
        setattr(query, keyword, "")
    return query


async def _matches(association, query: Dataset, level: str, limit: int) -> list[Dataset]:
    found = []
    async for match in association.find(query, level=level):
        found.append(match)
        if len(found) >= limit:
            break  # unfinished: the next request on the association (or its release) cancels it
    return found


async def find_priors(
    source: RemoteAE, settings: RemoteSettings, step: ScheduledStep, criteria: PrefetchCriteria, today
) -> list[PriorStudy]:
    """The patient's studies on `source` in the lookback (STUDY level), each with its
    series (SERIES level) when the criteria need them or the source gave no modalities
    (only for the studies inside the lookback: a source may ignore the date range)."""
    lookback = step.lookback_days if step.lookback_days is not None else criteria.lookback_days

    async def work() -> list[PriorStudy]:
        async with _connect(source, settings, query_retrieve_contexts("study", move=False, get=False)) as association:
            answers = await _matches(association, study_query(step, lookback, today), "STUDY", settings.max_find_matches)
            studies = [s for s in map(study_from, answers) if s is not None and s.patient_id in ("", step.patient_id)]
            budget = settings.max_find_matches  # series read for this patient, all studies together
            detailed = []
            for study in studies:
                if budget > 0 and in_lookback(study, step, criteria, today) and (criteria.needs_series or not study.modalities):
                    answers = await _matches(association, series_query(study.study_instance_uid), "SERIES", budget)
                    budget -= len(answers)
                    series = tuple(s for s in map(series_from, answers) if s is not None)
                    modalities = study.modalities or tuple(dict.fromkeys(s.modality for s in series if s.modality))
                    study = attrs.evolve(study, series=series, modalities=modalities)
                detailed.append(study)
            return detailed

    return await _bounded(source, settings, work)


# -- retrieving -------------------------------------------------------------------------------


def retrieve_query(chosen: ChosenStudy) -> tuple[Dataset, str]:
    """The identifier naming what is chosen: the study, or its chosen series (a UID list)."""
    query = Dataset()
    query.StudyInstanceUID = chosen.study.study_instance_uid
    if not chosen.series:
        return query, "STUDY"
    query.SeriesInstanceUID = [s.series_instance_uid for s in chosen.series]
    return query, "SERIES"


def retrieve_requests(chosen: ChosenStudy) -> list[tuple[Dataset, str]]:
    """What to ask a source for: the study, or each chosen series on its own (not every
    source takes a list of UIDs in a C-MOVE identifier)."""
    if not chosen.series:
        return [retrieve_query(chosen)]
    requests = []
    for series in chosen.series:
        query = Dataset()
        query.StudyInstanceUID = chosen.study.study_instance_uid
        query.SeriesInstanceUID = series.series_instance_uid
        requests.append((query, "SERIES"))
    return requests


@attrs.frozen(kw_only=True)
class Retrieved:
    completed: int  # sub-operations the source reported complete (C-GET: instances stored here)
    failed: int = 0
    warning: int = 0

    def __add__(self, other: "Retrieved") -> "Retrieved":
        return Retrieved(completed=self.completed + other.completed, failed=self.failed + other.failed, warning=self.warning + other.warning)


async def move_study(source: RemoteAE, settings: RemoteSettings, chosen: ChosenStudy, destination: str) -> Retrieved:
    """C-MOVE the study (or each chosen series) to `destination`, our own AE, on one association."""

    async def work() -> Retrieved:
        total = Retrieved(completed=0)
        async with _connect(source, settings, query_retrieve_contexts("study", find=False, get=False)) as association:
            for query, level in retrieve_requests(chosen):
                last = None
                async for progress in association.move(query, destination, level=level):
                    last = progress
                total += _retrieved(last)
        return total

    return await _bounded(source, settings, work)


def _retrieved(last) -> Retrieved:
    if last is None:
        return Retrieved(completed=0)
    return Retrieved(completed=last.completed or 0, failed=last.failed or 0, warning=last.warning or 0)


async def get_study(
    source: RemoteAE, settings: RemoteSettings, chosen: ChosenStudy, staging: Path, node: RemoteAE
) -> Retrieved:
    """C-GET the study (or each chosen series) into a folder under `staging`, then C-STORE
    each file to `node` (our own listener): the instances take the node's normal storage path."""

    async def work() -> Retrieved:
        await trio.to_thread.run_sync(lambda: staging.mkdir(parents=True, exist_ok=True))
        folder = Path(await trio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="get-", dir=staging)))
        try:
            got = Retrieved(completed=0)
            contexts = [*query_retrieve_contexts("study", find=False, move=False), *retrieve_storage_contexts()]
            async with _connect(source, settings, contexts) as association:
                for query, level in retrieve_requests(chosen):
                    last = None
                    async for progress in association.get(query, folder, level=level):
                        last = progress
                    got += _retrieved(last)
            stored = await _store_files(sorted(folder.iterdir()), node, settings)
            return attrs.evolve(got, completed=stored, failed=got.failed + max(0, got.completed - stored))
        finally:
            await trio.to_thread.run_sync(shutil.rmtree, folder, True)

    return await _bounded(source, settings, work)


async def _store_files(files: list[Path], node: RemoteAE, settings: RemoteSettings) -> int:
    if not files:
        return 0
    contexts = await trio.to_thread.run_sync(storage_contexts_for, files)
    stored = 0
    async with connect(node.host, node.port, called_ae_title=node.ae_title, calling_ae_title=settings.calling_ae_title,
                       contexts=contexts, connect_timeout=settings.connect_timeout, dimse_timeout=settings.dimse_timeout) as association:
        for path in files:
            if (await association.store(os.fspath(path))).ok:
                stored += 1
    return stored
