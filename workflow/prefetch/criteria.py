"""Which prior studies of a patient to prefetch: pure rules, no I/O (seed DES-WKF-002).

A source's C-FIND answers become `PriorStudy` values (with their series when they were
asked for); `select_priors` keeps those the criteria allow and orders them - the studies
sharing the scheduled step's modality, then its body part, first (when preferred), newest
first among equals - then cuts at `max_studies_per_patient`. Inside a kept study the
series the criteria allow are ordered the same way and cut at `max_series_per_study`;
a study keeping fewer series than it has is retrieved series by series.

Modality and body part codes compare case-insensitively. A study whose modalities or
body parts are unknown (the source did not return them) does not pass an include list
that needs them.
"""

from __future__ import annotations

import datetime as dt

import attrs


@attrs.frozen(kw_only=True)
class PrefetchCriteria:
    lookback_days: int = 365
    max_studies_per_patient: int = 10
    max_series_per_study: int = 0  # 0: every series
    include_modalities: tuple[str, ...] = ()  # empty: every modality
    exclude_modalities: tuple[str, ...] = ()
    include_body_parts: tuple[str, ...] = ()  # empty: every body part
    prefer_same_modality: bool = True
    prefer_same_body_part: bool = True

    @property
    def needs_series(self) -> bool:
        """Whether choosing needs the series of each study (body parts, series cut)."""
        return bool(self.include_body_parts or self.max_series_per_study or self.prefer_same_body_part)


@attrs.frozen(kw_only=True)
class ScheduledStep:
    """Whom to prefetch for, and what is about to be done (for the preferences)."""

    patient_id: str
    modality: str = ""
    body_part: str = ""
    study_instance_uid: str = ""  # the scheduled study itself is not a prior
    lookback_days: int | None = None  # None: the criteria's


@attrs.frozen(kw_only=True)
class PriorSeries:
    series_instance_uid: str
    modality: str = ""
    body_part: str = ""
    instances: int | None = None  # NumberOfSeriesRelatedInstances, when returned


@attrs.frozen(kw_only=True)
class PriorStudy:
    study_instance_uid: str
    patient_id: str = ""
    study_date: str = ""  # YYYYMMDD
    description: str = ""
    accession_number: str = ""
    modalities: tuple[str, ...] = ()  # ModalitiesInStudy, or those of its series
    instances: int | None = None  # NumberOfStudyRelatedInstances, when returned
    series: tuple[PriorSeries, ...] | None = None  # None: not asked for

    @property
    def body_parts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.body_part for s in self.series or () if s.body_part))


@attrs.frozen(kw_only=True)
class ChosenStudy:
    """A study to retrieve: whole (`series` empty) or only the series named."""

    study: PriorStudy
    series: tuple[PriorSeries, ...] = ()

    @property
    def expected_instances(self) -> int | None:
        """What the source said it holds of what we retrieve (None: it did not say)."""
        if not self.series:
            return self.study.instances
        counts = [s.instances for s in self.series]
        return None if any(c is None for c in counts) else sum(counts)  # type: ignore[misc]


def date_range(lookback_days: int, today: dt.date) -> str:
    """The StudyDate range matching key of a lookback: 'YYYYMMDD-YYYYMMDD'."""
    first = today - dt.timedelta(days=lookback_days)
    return f"{first:%Y%m%d}-{today:%Y%m%d}"


def _codes(values) -> set[str]:
    return {v.strip().upper() for v in values if v and v.strip()}


def _series_allowed(series: PriorSeries, criteria: PrefetchCriteria) -> bool:
    modality, body_part = series.modality.upper(), series.body_part.upper()
    if criteria.include_modalities and modality not in _codes(criteria.include_modalities):
        return False
    if modality and modality in _codes(criteria.exclude_modalities):
        return False
    if criteria.include_body_parts and body_part not in _codes(criteria.include_body_parts):
        return False
    return True


def _first_date(step: ScheduledStep, criteria: PrefetchCriteria, today: dt.date) -> str:
    lookback = step.lookback_days if step.lookback_days is not None else criteria.lookback_days
    return f"{today - dt.timedelta(days=lookback):%Y%m%d}"


def in_lookback(study: PriorStudy, step: ScheduledStep, criteria: PrefetchCriteria, today: dt.date) -> bool:
    """A prior of the step inside its lookback (undated: cannot be shown to be inside)."""
    if step.study_instance_uid and study.study_instance_uid == step.study_instance_uid:
        return False
    return bool(study.study_date) and _first_date(step, criteria, today) <= study.study_date <= f"{today:%Y%m%d}"


def _study_allowed(study: PriorStudy, step: ScheduledStep, criteria: PrefetchCriteria, today: dt.date) -> bool:
    if not in_lookback(study, step, criteria, today):
        return False
    modalities = _codes(study.modalities)
    if criteria.include_modalities and not modalities & _codes(criteria.include_modalities):
        return False
    if modalities and modalities <= _codes(criteria.exclude_modalities):
        return False  # only excluded modalities (an SR beside a CT does not exclude the CT)
    if criteria.include_body_parts and not _codes(study.body_parts) & _codes(criteria.include_body_parts):
        return False
    return True


def _preference(modalities: set[str], body_parts: set[str], date: str, step: ScheduledStep, criteria: PrefetchCriteria):
    """A sort key: preferred first, then newest."""
    other_modality = criteria.prefer_same_modality and bool(step.modality) and step.modality.upper() not in modalities
    other_body_part = criteria.prefer_same_body_part and bool(step.body_part) and step.body_part.upper() not in body_parts
    return (other_modality, other_body_part, _descending(date))


def _descending(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


def _chosen_series(study: PriorStudy, step: ScheduledStep, criteria: PrefetchCriteria) -> tuple[PriorSeries, ...] | None:
    """The series to retrieve, or None when the whole study goes (every series allowed and within the cut)."""
    if study.series is None:
        return None
    allowed = [s for s in study.series if _series_allowed(s, criteria)]
    allowed.sort(key=lambda s: _preference(_codes([s.modality]), _codes([s.body_part]), "", step, criteria))
    if criteria.max_series_per_study:
        allowed = allowed[: criteria.max_series_per_study]
    if len(allowed) == len(study.series):
        return None
    return tuple(allowed)


def select_priors(
    studies: list[PriorStudy], step: ScheduledStep, criteria: PrefetchCriteria, today: dt.date
) -> list[ChosenStudy]:
    """The studies to prefetch for `step`, in the order to fetch them, at most
    max_studies_per_patient (duplicates by Study Instance UID kept once, first seen)."""
    unique = {s.study_instance_uid: s for s in reversed(studies)}  # the first seen wins
    allowed = [s for s in unique.values() if _study_allowed(s, step, criteria, today)]
    allowed.sort(key=lambda s: _preference(_codes(s.modalities), _codes(s.body_parts), s.study_date, step, criteria))
    chosen = []
    for study in allowed:
        series = _chosen_series(study, step, criteria)
        if series != ():  # () : none of its series is allowed
            chosen.append(ChosenStudy(study=study, series=series or ()))
    return chosen[: criteria.max_studies_per_patient]
