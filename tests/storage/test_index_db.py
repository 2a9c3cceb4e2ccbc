"""The SQLite index on real files: migrations, group commits, duplicates, lookups, deletions.

The storage functions are asyncio (aiosqlite); these are plain sync tests that drive them
with ``asyncio.run`` through ``run_with_index`` until the Trio-side portal exists.
"""

import asyncio
import json
import sqlite3

import attrs
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

from triopacs.storage.attributes import InstanceRecord, record_from_dataset
from triopacs.storage.index_db import (
    DuplicatePolicy,
    IndexCounts,
    Outcome,
    delete_instances,
    delete_patient,
    delete_series,
    delete_study,
    get_instance,
    index_counts,
    open_index,
    record_instances,
    series_instances,
    set_location,
    study_instances,
    touch_instances,
)
from triopacs.storage.schema import SCHEMA_VERSION, Migration, SchemaTooNew, migrate

ROOT = "1.2.826.0.1.3680043.8.498"


def run_with_index(tmp_path, body, name="index.db"):
    """Open the index at tmp_path/name on a fresh asyncio loop, run ``body(db)``, close."""

    async def main():
        db = await open_index(tmp_path / name)
        try:
            return await body(db)
        finally:
            await db.close()

    return asyncio.run(main())


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


async def rows(db, sql, params=()):
    return [tuple(row) for row in await db.execute_fetchall(sql, params)]


# -- opening and migrating -------------------------------------------------------------------


def test_an_empty_file_gets_the_whole_schema(tmp_path):
    async def body(db):
        assert await rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert await rows(db, "PRAGMA journal_mode") == [("wal",)]
        assert await rows(db, "PRAGMA foreign_keys") == [(1,)]
        assert await rows(db, "PRAGMA synchronous") == [(2,)]  # FULL
        names = {name for (name,) in await rows(db, "SELECT name FROM sqlite_master")}
        assert {"patient", "study", "series", "instance"} <= names
        assert {"instance_deleted_prunes_series", "study_by_date", "instance_by_tier_age"} <= names

    run_with_index(tmp_path, body)


def test_reopening_is_idempotent_and_keeps_data(tmp_path):
    record = make_record(1)
    run_with_index(tmp_path, lambda db: record_instances(db, [record], DuplicatePolicy.REJECT))
    for _ in range(2):
        counts = run_with_index(tmp_path, index_counts)
        assert counts.instances == 1
    with sqlite3.connect(tmp_path / "index.db") as plain:
        assert plain.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    with sqlite3.connect(tmp_path / "index.db") as plain:
        plain.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNew):
        run_with_index(tmp_path, index_counts)


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path):
    good = Migration("a table", ("CREATE TABLE a (x)",))
    bad = Migration("broken", ("CREATE TABLE b (y)", "THIS IS NOT SQL"))

    async def body(db):
        with pytest.raises(sqlite3.OperationalError):
            await migrate(db, (*_current_migrations(), good, bad))
        assert await rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        names = {name for (name,) in await rows(db, "SELECT name FROM sqlite_master")}
        assert "a" not in names and "b" not in names
        assert await migrate(db, (*_current_migrations(), good)) == SCHEMA_VERSION + 1
        assert await rows(db, "SELECT name FROM sqlite_master WHERE name = 'a'") == [("a",)]

    run_with_index(tmp_path, body)


def _current_migrations():
    from triopacs.storage.schema import MIGRATIONS

    return MIGRATIONS


def test_synchronous_off_is_not_allowed(tmp_path):
    with pytest.raises(ValueError):
        asyncio.run(open_index(tmp_path / "x.db", synchronous="OFF"))


# -- recording -------------------------------------------------------------------------------


def test_a_batch_stores_everything_in_one_go(tmp_path):
    records = [make_record(i, series=str(i % 3)) for i in range(1, 11)]

    async def body(db):
        before = db.total_changes
        outcomes = await record_instances(db, records, DuplicatePolicy.REJECT, now=100.0)
        assert [o.outcome for o in outcomes] == [Outcome.STORED] * 10
        assert [o.sop_instance_uid for o in outcomes] == [r.sop_instance_uid for r in records]
        assert db.total_changes - before == 1 + 1 + 3 + 10  # patient, study, 3 series, 10 instances
        assert await index_counts(db) == IndexCounts(patients=1, studies=1, series=3, instances=10, total_bytes=10_000)
        stored = await get_instance(db, records[0].sop_instance_uid)
        assert stored.stored_at == stored.last_accessed == 100.0
        assert stored.tier == "local"

    run_with_index(tmp_path, body)


def test_batches_larger_than_sqlite_parameter_lists(tmp_path):
    base = make_record(1)
    records = [attrs.evolve(base, sop_instance_uid=f"{ROOT}.9.{i}") for i in range(2000)]

    async def body(db):
        outcomes = await record_instances(db, records, DuplicatePolicy.REJECT)
        assert {o.outcome for o in outcomes} == {Outcome.STORED}
        again = await record_instances(db, records, DuplicatePolicy.IGNORE)
        assert {o.outcome for o in again} == {Outcome.DUPLICATE_IGNORED}
        assert (await index_counts(db)).instances == 2000
        assert len(await delete_instances(db, [r.sop_instance_uid for r in records])) == 2000

    run_with_index(tmp_path, body)


def test_a_failing_record_fails_its_whole_batch(tmp_path):
    good = make_record(1)
    broken = attrs.evolve(make_record(2), file_size=None)  # NOT NULL violation at insert

    async def body(db):
        with pytest.raises(sqlite3.IntegrityError):
            await record_instances(db, [good, broken], DuplicatePolicy.REJECT)
        assert await index_counts(db) == IndexCounts(patients=0, studies=0, series=0, instances=0, total_bytes=0)
        assert not db.in_transaction
        assert [o.outcome for o in await record_instances(db, [good], DuplicatePolicy.REJECT)] == [Outcome.STORED]

    run_with_index(tmp_path, body)


@pytest.mark.parametrize(
    "policy, outcome",
    [
        (DuplicatePolicy.REJECT, Outcome.DUPLICATE_REJECTED),
        (DuplicatePolicy.IGNORE, Outcome.DUPLICATE_IGNORED),
        (DuplicatePolicy.REPLACE, Outcome.REPLACED),
    ],
)
def test_duplicate_policies(tmp_path, policy, outcome):
    first = make_record(1, sha="a" * 64, path="/store/old.dcm", size=10)
    same = make_record(1, sha="a" * 64, path="/store/old.dcm", size=10)
    changed = make_record(1, sha="b" * 64, path="/store/new.dcm", size=20)

    async def body(db):
        await record_instances(db, [first], policy, now=1.0)
        [resent] = await record_instances(db, [same], policy, now=2.0)
        assert resent.outcome is outcome and resent.same_content and resent.previous_path == "/store/old.dcm"
        [other] = await record_instances(db, [changed], policy, now=3.0)
        assert other.outcome is outcome and not other.same_content
        stored = await get_instance(db, first.sop_instance_uid)
        if policy is DuplicatePolicy.REPLACE:
            assert other.previous_path == "/store/old.dcm"
            assert (stored.file_path, stored.sha256, stored.file_size, stored.stored_at) == ("/store/new.dcm", "b" * 64, 20, 3.0)
        else:
            assert other.previous_path == "/store/old.dcm"
            assert (stored.file_path, stored.sha256, stored.stored_at) == ("/store/old.dcm", "a" * 64, 1.0)
        assert (await index_counts(db)).instances == 1

    run_with_index(tmp_path, body)


def test_duplicates_within_one_batch(tmp_path):
    a = make_record(1, path="/a.dcm", sha="a" * 64)
    b = make_record(1, path="/b.dcm", sha="b" * 64)

    async def body(db):
        outcomes = await record_instances(db, [a, b], DuplicatePolicy.REPLACE)
        assert [o.outcome for o in outcomes] == [Outcome.STORED, Outcome.REPLACED]
        assert outcomes[1].previous_path == "/a.dcm"
        assert (await get_instance(db, a.sop_instance_uid)).file_path == "/b.dcm"
        outcomes = await record_instances(db, [a, b], DuplicatePolicy.REJECT)
        assert [o.outcome for o in outcomes] == [Outcome.DUPLICATE_REJECTED] * 2
        assert {o.previous_path for o in outcomes} == {"/b.dcm"}

    run_with_index(tmp_path, body)


def test_replacing_into_another_series_prunes_the_emptied_one(tmp_path):
    original = make_record(1, series="1")
    moved = attrs.evolve(
        make_record(1, series="2"), sop_instance_uid=original.sop_instance_uid, file_path="/moved.dcm"
    )

    async def body(db):
        await record_instances(db, [original], DuplicatePolicy.REPLACE)
        await record_instances(db, [moved], DuplicatePolicy.REPLACE)
        assert await rows(db, "SELECT series_instance_uid FROM series") == [(moved.series_instance_uid,)]
        assert (await get_instance(db, original.sop_instance_uid)).series_instance_uid == moved.series_instance_uid

    run_with_index(tmp_path, body)


def test_patients_are_keyed_by_id_and_issuer(tmp_path):
    records = [
        make_record(1, study="1", patient_id="12345", issuer="HOSPITAL-A"),
        make_record(1, study="2", patient_id="12345", issuer="HOSPITAL-B"),
        make_record(1, study="3", patient_id="12345"),
        make_record(2, study="3", patient_id="12345"),
    ]

    async def body(db):
        await record_instances(db, records, DuplicatePolicy.REJECT)
        assert sorted(await rows(db, "SELECT patient_id, issuer_of_patient_id FROM patient")) == [
            ("12345", ""),
            ("12345", "HOSPITAL-A"),
            ("12345", "HOSPITAL-B"),
        ]

    run_with_index(tmp_path, body)


def test_a_study_sent_again_under_a_corrected_patient_moves_and_prunes(tmp_path):
    wrong = make_record(1, patient_id="WRONG")
    corrected = make_record(2, patient_id="RIGHT")
    # A new study of the WRONG patient in the same batch must not be hurt by the pruning.
    other = make_record(1, study="2", patient_id="OTHER")

    async def body(db):
        await record_instances(db, [wrong], DuplicatePolicy.REJECT)
        await record_instances(db, [corrected, other], DuplicatePolicy.REJECT)
        assert sorted(await rows(db, "SELECT patient_id FROM patient")) == [("OTHER",), ("RIGHT",)]
        assert {(await get_instance(db, r.sop_instance_uid)).patient_id for r in (wrong, corrected)} == {"RIGHT"}

    run_with_index(tmp_path, body)


def test_a_move_and_a_new_child_of_the_old_parent_in_one_batch(tmp_path):
    first = make_record(1, patient_id="A")
    moved = make_record(2, patient_id="B")  # same study, now patient B: A is left with no study
    new_for_a = make_record(1, study="2", patient_id="A")

    async def body(db):
        await record_instances(db, [first], DuplicatePolicy.REJECT)
        await record_instances(db, [moved, new_for_a], DuplicatePolicy.REJECT)
        assert sorted(await rows(db, "SELECT patient_id FROM patient")) == [("A",), ("B",)]

    run_with_index(tmp_path, body)


def test_the_last_instance_written_sets_the_level_attributes(tmp_path):
    first = make_record(1, StudyDescription="Head")
    second = make_record(2, StudyDescription="Head and neck", PatientName="Doe^Jane")

    async def body(db):
        await record_instances(db, [first], DuplicatePolicy.REJECT)
        await record_instances(db, [second], DuplicatePolicy.REJECT)
        [(description, attributes)] = await rows(db, "SELECT study_description, attributes FROM study")
        assert description == "Head and neck"
        assert json.loads(attributes)["00081030"]["Value"] == ["Head and neck"]
        assert await rows(db, "SELECT patient_name, patient_name_folded FROM patient") == [("Doe^Jane", "doe^jane")]

    run_with_index(tmp_path, body)


@pytest.mark.filterwarnings("ignore::UserWarning:pydicom.*")  # legacy DA/TM forms, on purpose
def test_matching_columns_hold_normalized_values(tmp_path):
    record = make_record(1, StudyDate="2024.01.05", StudyTime="10:15", SeriesNumber="7", PatientBirthDate="19700101")

    async def body(db):
        await record_instances(db, [record], DuplicatePolicy.REJECT)
        assert await rows(db, "SELECT study_date, study_time FROM study") == [("20240105", "101500.000000")]
        assert await rows(db, "SELECT series_number, modality FROM series") == [(7, "CT")]
        assert await rows(db, "SELECT patient_birth_date FROM patient") == [("19700101",)]

    run_with_index(tmp_path, body)


# -- lookups, maintenance ----------------------------------------------------------------------


def test_lookups_by_instance_series_and_study(tmp_path):
    records = [make_record(n, series=s, SeriesNumber=s) for s in ("2", "1") for n in (3, 1, 2)]

    async def body(db):
        await record_instances(db, records, DuplicatePolicy.REJECT)
        assert await get_instance(db, "1.2.3") is None
        one = await get_instance(db, records[0].sop_instance_uid)
        assert one.sop_class_uid == CTImageStorage and one.patient_id == "P1"
        series = await series_instances(db, f"{ROOT}.1.2")
        assert [s.sop_instance_uid.rsplit(".", 1)[1] for s in series] == ["1", "2", "3"]
        study = await study_instances(db, f"{ROOT}.1")
        assert [(s.series_instance_uid[-1], s.sop_instance_uid[-1]) for s in study] == [
            ("1", "1"), ("1", "2"), ("1", "3"), ("2", "1"), ("2", "2"), ("2", "3")
        ]

    run_with_index(tmp_path, body)


def test_deletions_return_paths_and_prune_empty_parents(tmp_path):
    records = [
        make_record(1, series="1"),
        make_record(2, series="1"),
        make_record(1, series="2"),
        make_record(1, study="2", patient_id="P2"),
        make_record(1, study="3", patient_id="P3"),
    ]

    async def body(db):
        await record_instances(db, records, DuplicatePolicy.REJECT)
        assert await delete_instances(db, [records[0].sop_instance_uid]) == [records[0].file_path]
        assert (await index_counts(db)).series == 4
        assert await delete_instances(db, [records[1].sop_instance_uid]) == [records[1].file_path]
        assert (await index_counts(db)).series == 3  # series 1 emptied and pruned
        assert await delete_series(db, f"{ROOT}.1.2") == [records[2].file_path]
        counts = await index_counts(db)
        assert (counts.patients, counts.studies, counts.series) == (2, 2, 2)  # study 1 and P1 pruned
        assert await delete_study(db, f"{ROOT}.2") == [records[3].file_path]
        assert await delete_patient(db, "P3") == [records[4].file_path]
        assert await index_counts(db) == IndexCounts(patients=0, studies=0, series=0, instances=0, total_bytes=0)
        assert await delete_study(db, f"{ROOT}.404") == []

    run_with_index(tmp_path, body)


def test_touch_and_relocate(tmp_path):
    records = [make_record(1), make_record(2)]

    async def body(db):
        await record_instances(db, records, DuplicatePolicy.REJECT, now=10.0)
        assert await touch_instances(db, [records[0].sop_instance_uid, "9.9"], now=50.0) == 1
        assert (await get_instance(db, records[0].sop_instance_uid)).last_accessed == 50.0
        assert (await get_instance(db, records[1].sop_instance_uid)).last_accessed == 10.0
        assert await set_location(db, records[1].sop_instance_uid, tier="s3", file_path="s3://bucket/key")
        moved = await get_instance(db, records[1].sop_instance_uid)
        assert (moved.tier, moved.file_path) == ("s3", "s3://bucket/key")
        assert not await set_location(db, "9.9", tier="s3", file_path="x")

    run_with_index(tmp_path, body)


def test_replacing_brings_a_migrated_instance_back_to_local(tmp_path):
    record = make_record(1)

    async def body(db):
        await record_instances(db, [record], DuplicatePolicy.REPLACE)
        await set_location(db, record.sop_instance_uid, tier="azure", file_path="az://c/x")
        await record_instances(db, [record], DuplicatePolicy.REPLACE)
        assert (await get_instance(db, record.sop_instance_uid)).tier == "local"

    run_with_index(tmp_path, body)


def test_instances_of_other_sop_classes_share_the_hierarchy(tmp_path):
    records = [make_record(1), make_record(2, sop_class=MRImageStorage, Modality="MR")]

    async def body(db):
        await record_instances(db, records, DuplicatePolicy.REJECT)
        assert sorted(await rows(db, "SELECT sop_class_uid FROM instance")) == [(CTImageStorage,), (MRImageStorage,)]

    run_with_index(tmp_path, body)
