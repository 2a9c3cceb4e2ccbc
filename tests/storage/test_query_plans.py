"""The query shapes a PACS sees most are answered through an index, not a table scan.

A million-instance archive answers a PatientID, a patient-name prefix, an accession
number or a ModalitiesInStudy key in milliseconds only while SQLite can search an index
for them (bench/find_scale.py measures it); a schema or SQL change that loses one would
show only at scale. So each shape's page query is checked with EXPLAIN QUERY PLAN.
"""

import pytest
from pydicom.dataset import Dataset

from triopacs.storage.index_db import open_index
from triopacs.storage.query import InformationModel, _select_sql, plan_find

RETURN_KEYS = ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate", "AccessionNumber",
               "ModalitiesInStudy", "NumberOfStudyRelatedInstances")


def study_query(**keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in RETURN_KEYS:
        setattr(ds, keyword, "")
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def page_plan(connection, ds: Dataset) -> list[str]:
    plan = plan_find(ds, InformationModel.STUDY_ROOT)
    sql, _ = _select_sql(plan)
    return [row[-1] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", (*plan.params, 0, 50))]


@pytest.fixture
def index(tmp_path):
    connection = open_index(tmp_path / "index.sqlite")
    yield connection
    connection.close()


@pytest.mark.parametrize(
    ("keys", "searched"),
    [
        ({"PatientID": "P0001"}, "SEARCH p USING INDEX sqlite_autoindex_patient_1 (patient_id=?)"),
        ({"PatientName": "DOE^J*"}, "SEARCH p USING INDEX patient_by_name (patient_name_folded>? AND patient_name_folded<?)"),
        ({"AccessionNumber": "ACC1"}, "SEARCH st USING INDEX study_by_accession (accession_number=?"),
        ({"StudyInstanceUID": "1.2.3"}, "SEARCH st USING INDEX sqlite_autoindex_study_1 (study_instance_uid=?"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_a_selective_study_key_searches_its_index(index, keys, searched):
    steps = page_plan(index, study_query(**keys))
    assert any(step.startswith(searched) for step in steps), steps
    assert not any(step.startswith(("SCAN st", "SCAN p")) for step in steps), steps


def test_modalities_in_study_is_checked_per_study_through_the_series_index(index):
    steps = page_plan(index, study_query(ModalitiesInStudy="MR"))
    assert "SEARCH x USING COVERING INDEX series_by_study (study_pk=? AND modality=?)" in steps, steps
    # Pages walk studies in key order from the cursor: never a scan from the start.
    assert steps[0] == "SEARCH st USING INTEGER PRIMARY KEY (rowid>?)", steps


def test_counts_and_modalities_returned_come_from_covering_indexes(index):
    steps = page_plan(index, study_query(PatientID="P0001"))
    subqueries = [step for step in steps if step.startswith("SEARCH x") or step.startswith("SEARCH z")]
    assert subqueries and all("COVERING INDEX" in step for step in subqueries), steps
