"""Which priors the prefetcher chooses (workflow/prefetch/criteria.py): the lookback, the
include/exclude lists, the preferences as ordering and then the cuts."""

import datetime as dt

from triopacs.workflow.prefetch.criteria import (
    PrefetchCriteria,
    PriorSeries,
    PriorStudy,
    ScheduledStep,
    date_range,
    select_priors,
)

TODAY = dt.date(2026, 6, 15)


def study(uid: str, days_ago: int, *series: tuple[str, str], instances: int | None = None, modalities=None) -> PriorStudy:
    listed = tuple(PriorSeries(series_instance_uid=f"{uid}.{n}", modality=m, body_part=b, instances=3) for n, (m, b) in enumerate(series, 1))
    return PriorStudy(
        study_instance_uid=uid, study_date=f"{TODAY - dt.timedelta(days=days_ago):%Y%m%d}", instances=instances,
        modalities=modalities if modalities is not None else tuple(dict.fromkeys(m for m, _ in series)), series=listed,
    )


def chosen_uids(studies, step=ScheduledStep(patient_id="P"), **criteria) -> list[str]:
    return [c.study.study_instance_uid for c in select_priors(studies, step, PrefetchCriteria(**criteria), TODAY)]


def test_the_date_range_covers_the_lookback_up_to_today():
    assert date_range(30, TODAY) == "20260516-20260615"


def test_studies_outside_the_lookback_undated_or_the_scheduled_one_are_not_priors():
    studies = [study("1.1", 10, ("CT", "CHEST")), study("1.2", 400, ("CT", "CHEST")), PriorStudy(study_instance_uid="1.3"),
               study("1.4", 5, ("CT", "CHEST")), study("1.5", -3, ("CT", "CHEST"))]
    step = ScheduledStep(patient_id="P", study_instance_uid="1.4")
    assert chosen_uids(studies, step) == ["1.1"]
    assert chosen_uids(studies, ScheduledStep(patient_id="P", lookback_days=500)) == ["1.4", "1.1", "1.2"]


def test_include_and_exclude_modalities():
    studies = [study("2.1", 1, ("CT", "CHEST")), study("2.2", 2, ("MR", "HEAD")), study("2.3", 3, ("SR", "")), study("2.4", 4, ("CT", "CHEST"), ("SR", ""))]
    assert chosen_uids(studies, include_modalities=("mr",)) == ["2.2"]
    assert chosen_uids(studies, exclude_modalities=("SR",)) == ["2.1", "2.2", "2.4"]  # an SR beside a CT does not exclude it
    (mixed,) = select_priors(studies[3:], ScheduledStep(patient_id="P"), PrefetchCriteria(exclude_modalities=("SR",)), TODAY)
    assert [s.modality for s in mixed.series] == ["CT"]  # only its CT series is retrieved


def test_include_body_parts_needs_a_series_of_one_of_them():
    studies = [study("3.1", 1, ("CT", "ABDOMEN")), study("3.2", 2, ("CT", "CHEST"), ("CT", "ABDOMEN")), PriorStudy(study_instance_uid="3.3", study_date="20260601")]
    chosen = select_priors(studies, ScheduledStep(patient_id="P"), PrefetchCriteria(include_body_parts=("CHEST",)), TODAY)
    assert [(c.study.study_instance_uid, [s.body_part for s in c.series]) for c in chosen] == [("3.2", ["CHEST"])]


def test_preferences_order_before_the_cut_newest_first_among_equals():
    studies = [study("4.1", 1, ("MR", "HEAD")), study("4.2", 2, ("CT", "HEAD")), study("4.3", 3, ("CT", "CHEST")), study("4.4", 4, ("CT", "CHEST"))]
    step = ScheduledStep(patient_id="P", modality="CT", body_part="CHEST")
    assert chosen_uids(studies, step) == ["4.3", "4.4", "4.2", "4.1"]
    assert chosen_uids(studies, step, max_studies_per_patient=2) == ["4.3", "4.4"]
    assert chosen_uids(studies, step, prefer_same_body_part=False, max_studies_per_patient=2) == ["4.2", "4.3"]
    assert chosen_uids(studies, step, prefer_same_modality=False, prefer_same_body_part=False, max_studies_per_patient=2) == ["4.1", "4.2"]


def test_max_series_per_study_keeps_the_preferred_series_and_counts_their_instances():
    studies = [study("5.1", 1, ("MR", "HEAD"), ("CT", "CHEST"), ("CT", "HEAD"), instances=9)]
    step = ScheduledStep(patient_id="P", modality="CT", body_part="CHEST")
    (whole,) = select_priors(studies, step, PrefetchCriteria(), TODAY)
    assert whole.series == () and whole.expected_instances == 9
    (cut,) = select_priors(studies, step, PrefetchCriteria(max_series_per_study=2), TODAY)
    assert [(s.modality, s.body_part) for s in cut.series] == [("CT", "CHEST"), ("CT", "HEAD")] and cut.expected_instances == 6


def test_a_study_answered_twice_counts_once_the_first_seen_wins():
    first, again = study("6.1", 1, ("CT", "CHEST")), study("6.1", 1, ("MR", "HEAD"))
    (chosen,) = select_priors([first, again], ScheduledStep(patient_id="P"), PrefetchCriteria(), TODAY)
    assert chosen.study is first
