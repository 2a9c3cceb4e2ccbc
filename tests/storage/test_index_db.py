"""The SQLite index on real files: migrations, group commits, duplicates, pruning.

The storage functions are plain functions of a sqlite3 connection: these tests call them
directly, no event loop, no thread.
"""

import json
import sqlite3
from contextlib import closing
from types import SimpleNamespace

import attrs
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

from triopacs.storage.attributes import InstanceRecord, record_from_dataset
from triopacs.storage.index_db import DuplicatePolicy, IndexCounts, Outcome, index_counts, open_index, record_instances
from triopacs.storage.schema import SCHEMA_VERSION, Migration, SchemaTooNew, migrate

ROOT = "1.2.826.0.1.3680043.8.498"


@pytest.fixture
def db(tmp_path):
    with closing(open_index(tmp_path / "index.db")) as connection:
        yield connection


def make_record(
    sop,
    *,
    series="1",
    study="1",
    patient_id="P1",
    issuer=None,
    sha="0" * 64,
    path=None,
    size=1000,
    sop_class=CTImageStorage,
    **attributes,
) -> InstanceRecord:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = f"{ROOT}.{study}.{series}.{sop}"
    ds.StudyInstanceUID = f"{ROOT}.{study}"
    ds.SeriesInstanceUID = f"{ROOT}.{study}.{series}"
    ds.PatientID = patient_id
    if issuer is not None:
        ds.IssuerOfPatientID = issuer
    ds.PatientName = "Doe^John"
    ds.Modality = "CT"
    ds.InstanceNumber = str(sop)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return record_from_dataset(
        ds,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        file_path=path or f"/store/{study}/{series}/{sop}.dcm",
        file_size=size,
        sha256=sha,
    )


def rows(db, sql, params=()):
    return [tuple(row) for row in db.execute(sql, params).fetchall()]


def indexed(db, sop_instance_uid):
    """What the index holds for one instance (None if nothing)."""
    row = db.execute(
        "SELECT i.sop_class_uid, se.series_instance_uid, p.patient_id, i.file_path, i.file_size, i.sha256, i.tier,"
        " i.stored_at, i.last_accessed FROM instance i JOIN series se ON se.pk = i.series_pk"
        " JOIN study st ON st.pk = se.study_pk JOIN patient p ON p.pk = st.patient_pk WHERE i.sop_instance_uid = ?",
        (sop_instance_uid,),
    ).fetchone()
    if row is None:
        return None
    names = "sop_class_uid series_instance_uid patient_id file_path file_size sha256 tier stored_at last_accessed"
    return SimpleNamespace(**dict(zip(names.split(), row)))


# -- opening and migrating -------------------------------------------------------------------


def test_an_empty_file_gets_the_whole_schema(db):
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]
    assert rows(db, "PRAGMA foreign_keys") == [(1,)]
    assert rows(db, "PRAGMA synchronous") == [(2,)]  # FULL
    names = {name for (name,) in rows(db, "SELECT name FROM sqlite_master")}
    assert {"patient", "study", "series", "instance"} <= names
    assert {"instance_deleted_prunes_series", "study_by_date", "instance_by_tier_age"} <= names


def test_reopening_is_idempotent_and_keeps_data(tmp_path):
    with closing(open_index(tmp_path / "index.db")) as db:
        record_instances(db, [make_record(1)], DuplicatePolicy.REJECT)
    for _ in range(2):
        with closing(open_index(tmp_path / "index.db")) as db:
            assert index_counts(db).instances == 1
    with closing(sqlite3.connect(tmp_path / "index.db")) as plain:
        assert plain.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    with closing(sqlite3.connect(tmp_path / "index.db")) as plain:
        plain.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNew):
        open_index(tmp_path / "index.db")


def test_a_query_only_connection_refuses_writes(tmp_path, db):
    with closing(open_index(tmp_path / "index.db", query_only=True)) as reader:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            record_instances(reader, [make_record(1)], DuplicatePolicy.REJECT)
        assert not reader.in_transaction
    record_instances(db, [make_record(1)], DuplicatePolicy.REJECT)


def test_a_failing_migration_leaves_the_database_as_it_was(db):
    good = Migration("a table", ("CREATE TABLE a (x)",))
    bad = Migration("broken", ("CREATE TABLE b (y)", "THIS IS NOT SQL"))

    with pytest.raises(sqlite3.OperationalError):
        migrate(db, (*_current_migrations(), good, bad))
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    names = {name for (name,) in rows(db, "SELECT name FROM sqlite_master")}
    assert "a" not in names and "b" not in names
    assert migrate(db, (*_current_migrations(), good)) == SCHEMA_VERSION + 1
    assert rows(db, "SELECT name FROM sqlite_master WHERE name = 'a'") == [("a",)]


def _current_migrations():
    from triopacs.storage.schema import MIGRATIONS

    return MIGRATIONS


def test_synchronous_off_is_not_allowed(tmp_path):
    with pytest.raises(ValueError):
        open_index(tmp_path / "x.db", synchronous="OFF")


# -- recording -------------------------------------------------------------------------------


def test_a_batch_stores_everything_in_one_go(db):
    records = [make_record(i, series=str(i % 3)) for i in range(1, 11)]

    before = db.total_changes
    outcomes = record_instances(db, records, DuplicatePolicy.REJECT, now=100.0)
    assert [o.outcome for o in outcomes] == [Outcome.STORED] * 10
    assert [o.sop_instance_uid for o in outcomes] == [r.sop_instance_uid for r in records]
    assert db.total_changes - before == 1 + 1 + 3 + 10  # patient, study, 3 series, 10 instances
    assert index_counts(db) == IndexCounts(patients=1, studies=1, series=3, instances=10, total_bytes=10_000)
    stored = indexed(db, records[0].sop_instance_uid)
    assert stored.stored_at == stored.last_accessed == 100.0
    assert stored.tier == "local"


def test_batches_larger_than_sqlite_parameter_lists(db):
    base = make_record(1)
    records = [attrs.evolve(base, sop_instance_uid=f"{ROOT}.9.{i}") for i in range(2000)]

    outcomes = record_instances(db, records, DuplicatePolicy.REJECT)
    assert {o.outcome for o in outcomes} == {Outcome.STORED}
    again = record_instances(db, records, DuplicatePolicy.IGNORE)
    assert {o.outcome for o in again} == {Outcome.DUPLICATE_IGNORED}
    assert index_counts(db).instances == 2000


def test_a_failing_record_fails_its_whole_batch(db):
    good = make_record(1)
    broken = attrs.evolve(make_record(2), file_size=None)  # NOT NULL violation at insert

    with pytest.raises(sqlite3.IntegrityError):
        record_instances(db, [good, broken], DuplicatePolicy.REJECT)
    assert index_counts(db) == IndexCounts(patients=0, studies=0, series=0, instances=0, total_bytes=0)
    assert not db.in_transaction
    assert [o.outcome for o in record_instances(db, [good], DuplicatePolicy.REJECT)] == [Outcome.STORED]



@pytest.mark.parametrize(
    "policy, outcome",
    [
        (DuplicatePolicy.REJECT, Outcome.DUPLICATE_REJECTED),
        (DuplicatePolicy.IGNORE, Outcome.DUPLICATE_IGNORED),
        (DuplicatePolicy.REPLACE, Outcome.REPLACED),
    ],
)
def test_duplicate_policies(db, policy, outcome):
    first = make_record(1, sha="a" * 64, path="/store/old.dcm", size=10)
    same = make_record(1, sha="a" * 64, path="/store/old.dcm", size=10)
    changed = make_record(1, sha="b" * 64, path="/store/new.dcm", size=20)

    record_instances(db, [first], policy, now=1.0)
    [resent] = record_instances(db, [same], policy, now=2.0)
    assert resent.outcome is outcome and resent.same_content and resent.previous_path == "/store/old.dcm"
    [other] = record_instances(db, [changed], policy, now=3.0)
    assert other.outcome is outcome and not other.same_content
    stored = indexed(db, first.sop_instance_uid)
    if policy is DuplicatePolicy.REPLACE:
        assert other.previous_path == "/store/old.dcm"
        assert (stored.file_path, stored.sha256, stored.file_size, stored.stored_at) == ("/store/new.dcm", "b" * 64, 20, 3.0)
    else:
        assert other.previous_path == "/store/old.dcm"
        assert (stored.file_path, stored.sha256, stored.stored_at) == ("/store/old.dcm", "a" * 64, 1.0)
    assert index_counts(db).instances == 1


def test_duplicates_within_one_batch(db):
    a = make_record(1, path="/a.dcm", sha="a" * 64)
    b = make_record(1, path="/b.dcm", sha="b" * 64)

    outcomes = record_instances(db, [a, b], DuplicatePolicy.REPLACE)
    assert [o.outcome for o in outcomes] == [Outcome.STORED, Outcome.REPLACED]
    assert outcomes[1].previous_path == "/a.dcm"
    assert (indexed(db, a.sop_instance_uid)).file_path == "/b.dcm"
    outcomes = record_instances(db, [a, b], DuplicatePolicy.REJECT)
    assert [o.outcome for o in outcomes] == [Outcome.DUPLICATE_REJECTED] * 2
    assert {o.previous_path for o in outcomes} == {"/b.dcm"}


def test_replacing_into_another_series_prunes_the_emptied_one(db):
    original = make_record(1, series="1")
    moved = attrs.evolve(
        make_record(1, series="2"), sop_instance_uid=original.sop_instance_uid, file_path="/moved.dcm"
    )

    record_instances(db, [original], DuplicatePolicy.REPLACE)
    record_instances(db, [moved], DuplicatePolicy.REPLACE)
    assert rows(db, "SELECT series_instance_uid FROM series") == [(moved.series_instance_uid,)]
    assert (indexed(db, original.sop_instance_uid)).series_instance_uid == moved.series_instance_uid


def test_patients_are_keyed_by_id_and_issuer(db):
    records = [
        make_record(1, study="1", patient_id="12345", issuer="HOSPITAL-A"),
        make_record(1, study="2", patient_id="12345", issuer="HOSPITAL-B"),
        make_record(1, study="3", patient_id="12345"),
        make_record(2, study="3", patient_id="12345"),
    ]

    record_instances(db, records, DuplicatePolicy.REJECT)
    assert sorted(rows(db, "SELECT patient_id, issuer_of_patient_id FROM patient")) == [
        ("12345", ""),
        ("12345", "HOSPITAL-A"),
        ("12345", "HOSPITAL-B"),
    ]


def test_a_study_sent_again_under_a_corrected_patient_moves_and_prunes(db):
    wrong = make_record(1, patient_id="WRONG")
    corrected = make_record(2, patient_id="RIGHT")
    # A new study of the WRONG patient in the same batch must not be hurt by the pruning.
    other = make_record(1, study="2", patient_id="OTHER")

    record_instances(db, [wrong], DuplicatePolicy.REJECT)
    record_instances(db, [corrected, other], DuplicatePolicy.REJECT)
    assert sorted(rows(db, "SELECT patient_id FROM patient")) == [("OTHER",), ("RIGHT",)]
    assert {(indexed(db, r.sop_instance_uid)).patient_id for r in (wrong, corrected)} == {"RIGHT"}


def test_a_move_and_a_new_child_of_the_old_parent_in_one_batch(db):
    first = make_record(1, patient_id="A")
    moved = make_record(2, patient_id="B")  # same study, now patient B: A is left with no study
    new_for_a = make_record(1, study="2", patient_id="A")

    record_instances(db, [first], DuplicatePolicy.REJECT)
    record_instances(db, [moved, new_for_a], DuplicatePolicy.REJECT)
    assert sorted(rows(db, "SELECT patient_id FROM patient")) == [("A",), ("B",)]


def test_the_last_instance_written_sets_the_level_attributes(db):
    first = make_record(1, StudyDescription="Head")
    second = make_record(2, StudyDescription="Head and neck", PatientName="Doe^Jane")

    record_instances(db, [first], DuplicatePolicy.REJECT)
    record_instances(db, [second], DuplicatePolicy.REJECT)
    [(description, attributes)] = rows(db, "SELECT study_description, attributes FROM study")
    assert description == "Head and neck"
    assert json.loads(attributes)["00081030"]["Value"] == ["Head and neck"]
    assert rows(db, "SELECT patient_name, patient_name_folded FROM patient") == [("Doe^Jane", "doe^jane")]



@pytest.mark.filterwarnings("ignore::UserWarning:pydicom.*")  # legacy DA/TM forms, on purpose
def test_matching_columns_hold_normalized_values(db):
    record = make_record(1, StudyDate="2024.01.05", StudyTime="10:15", SeriesNumber="7", PatientBirthDate="19700101")

    record_instances(db, [record], DuplicatePolicy.REJECT)
    assert rows(db, "SELECT study_date, study_time FROM study") == [("20240105", "101500.000000")]
    assert rows(db, "SELECT series_number, modality FROM series") == [(7, "CT")]
    assert rows(db, "SELECT patient_birth_date FROM patient") == [("19700101",)]



# -- pruning -------------------------------------------------------------------------------------


def test_deleting_instances_prunes_emptied_parents(db):
    records = [
        make_record(1, series="1"),
        make_record(2, series="1"),
        make_record(1, series="2"),
        make_record(1, study="2", patient_id="P2"),
    ]

    def delete(where, *args):
        db.execute(f"DELETE FROM instance WHERE {where}", args)
        counts = index_counts(db)
        return counts.patients, counts.studies, counts.series

    record_instances(db, records, DuplicatePolicy.REJECT)
    assert delete("sop_instance_uid = ?", records[0].sop_instance_uid) == (2, 2, 3)
    assert delete("sop_instance_uid = ?", records[1].sop_instance_uid) == (2, 2, 2)  # series 1 emptied
    assert delete("sop_instance_uid = ?", records[2].sop_instance_uid) == (1, 1, 1)  # then study 1 and P1
    assert delete("1") == (0, 0, 0)


def test_replacing_brings_a_migrated_instance_back_to_local(db):
    record = make_record(1)

    record_instances(db, [record], DuplicatePolicy.REPLACE)
    db.execute("UPDATE instance SET tier = 'azure', file_path = 'az://c/x'")  # as an HSM migration would
    record_instances(db, [record], DuplicatePolicy.REPLACE)
    assert (indexed(db, record.sop_instance_uid)).tier == "local"


def test_instances_of_other_sop_classes_share_the_hierarchy(db):
    records = [make_record(1), make_record(2, sop_class=MRImageStorage, Modality="MR")]

    record_instances(db, records, DuplicatePolicy.REJECT)
    assert sorted(rows(db, "SELECT sop_class_uid FROM instance")) == [(CTImageStorage,), (MRImageStorage,)]

