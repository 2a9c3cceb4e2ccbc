"""What the prefetcher takes from a source's C-FIND answers (workflow/prefetch/remote.py):
unusable UIDs dropped, counts and dates that make no sense taken as unknown, text cut
to size; and how failures are told apart (transient or permanent)."""

import pytest
from pydicom import Dataset

from triopacs.client.errors import AssociationAborted, AssociationRejected, ConnectionFailed, DimseTimeout, OperationFailed
from triopacs.workflow.prefetch.remote import classified, series_from, study_from

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR")  # pydicom, as the bad answers are made


def answer(**values) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_a_study_without_a_usable_uid_is_dropped():
    assert study_from(answer(StudyInstanceUID="")) is None
    assert study_from(answer(StudyInstanceUID="1.2.abc")) is None
    assert study_from(answer(StudyInstanceUID="../../etc")) is None
    assert series_from(answer(SeriesInstanceUID="1..2")) is None


def test_nonsense_counts_and_dates_are_unknown_and_text_is_bounded():
    study = study_from(answer(
        StudyInstanceUID="1.2.3", StudyDate="2024", NumberOfStudyRelatedInstances="99999999999",
        StudyDescription="X" * 64, ModalitiesInStudy=["ct", "MR", "ct"], PatientID="P",
    ))
    assert (study.study_date, study.instances, study.modalities, study.patient_id) == ("", None, ("CT", "MR"), "P")
    assert study_from(answer(StudyInstanceUID="1.2.3", NumberOfStudyRelatedInstances="-1")).instances is None
    series = series_from(answer(SeriesInstanceUID="1.2.3.4", Modality="ct", BodyPartExamined="chest", NumberOfSeriesRelatedInstances="7"))
    assert (series.modality, series.body_part, series.instances) == ("CT", "CHEST", 7)


def test_failures_that_may_pass_are_transient_the_others_permanent():
    transient = [
        ConnectionFailed("127.0.0.1", 1, "Connection refused"), AssociationRejected(2, 1, 1), AssociationAborted("gone"),
        DimseTimeout("C-FIND response", 5), OperationFailed("C-MOVE", 0xA702), OperationFailed("C-MOVE", 0xB000),
    ]
    permanent = [AssociationRejected(1, 1, 7), OperationFailed("C-MOVE", 0xA801), OperationFailed("C-FIND", 0xC000)]
    assert all(classified(error, "PACS").transient for error in transient)
    assert not any(classified(error, "PACS").transient for error in permanent)
    assert str(classified(permanent[1], "PACS")).startswith("PACS: C-MOVE failed: 0xA801")
