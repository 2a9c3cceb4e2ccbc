"""The index's HSM functions on a real SQLite file: candidates by last access, the
journal, the compare-and-set switch of a row to another tier, strays, access times."""

import time
from contextlib import closing

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from triopacs.storage.hsm_db import (
    ABANDONED,
    COPYING,
    SWITCHED,
    Move,
    begin_migration,
    end_migration,
    journal_entries,
    known_keys,
    migration_candidates,
    switch_tier,
    tier_usage,
    touch_instances,
)
from triopacs.storage.attributes import record_from_dataset
from triopacs.storage.index_db import DuplicatePolicy, open_index, record_instances
from triopacs.storage.sql import in_transaction


ROOT = "1.2.826.0.1.3680043.8.498"


def make_record(n, *, size=1000, path, sha="0" * 64):
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, f"{ROOT}.1.1.{n}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{ROOT}.1", f"{ROOT}.1.1"
    ds.PatientID, ds.Modality = "P1", "CT"
    return record_from_dataset(ds, transfer_syntax_uid=ExplicitVRLittleEndian, file_path=path, file_size=size, sha256=sha)


@pytest.fixture
def db(tmp_path):
    with closing(open_index(tmp_path / "index.db")) as connection:
        record_instances(connection, [make_record(n, size=1000 * n, path=f"files/{n}.dcm") for n in (1, 2, 3)], DuplicatePolicy.REPLACE)
        yield connection


def uid(n):
    return f"{ROOT}.1.1.{n}"


def move_of(placement, target="cold", key=None):
    return Move(
        sop_instance_uid=placement.sop_instance_uid, study_instance_uid=placement.study_instance_uid,
        source_tier=placement.tier, source_key=placement.key, target_tier=target,
        target_key=key or f"c/{placement.sop_instance_uid}.dcm", size=placement.size, sha256=placement.sha256,
    )


def test_candidates_are_least_recently_accessed_first_above_min_size(db):
    touch_instances(db, [uid(1)], time.time() + 10)  # accessed last
    found = migration_candidates(db, "local", time.time() + 100, 1500, 10)
    assert {p.sop_instance_uid for p in found} == {uid(2), uid(3)}  # 1 is below min_size
    assert migration_candidates(db, "local", 0.0, 0, 10) == []  # nothing older than the epoch
    assert len(migration_candidates(db, "local", time.time() + 100, 0, 1)) == 1


def test_a_journaled_instance_is_no_candidate_and_the_switch_moves_its_row(db):
    placement = migration_candidates(db, "local", time.time() + 100, 0, 10)[0]
    move = move_of(placement)
    in_transaction(db, begin_migration, [move], time.time())
    assert placement.sop_instance_uid not in {p.sop_instance_uid for p in migration_candidates(db, "local", time.time() + 100, 0, 10)}
    assert [m.state for m in journal_entries(db)] == [COPYING]
    assert known_keys(db, "cold", [move.target_key]) == {move.target_key}  # the journal names it: not a stray
    assert known_keys(db, "cold", [move.target_key], journal=False) == set()
    assert in_transaction(db, switch_tier, [move]) == [move.sop_instance_uid]
    assert [m.state for m in journal_entries(db)] == [SWITCHED]
    assert known_keys(db, "cold", [move.target_key], journal=False) == {move.target_key}
    assert {u.tier: u.instances for u in tier_usage(db)} == {"local": 2, "cold": 1}
    assert end_migration(db, [move.sop_instance_uid]) == 1 and journal_entries(db) == []


def test_an_instance_stored_again_meanwhile_is_not_switched(db):
    placement = migration_candidates(db, "local", time.time() + 100, 0, 10)[0]
    move = move_of(placement)
    in_transaction(db, begin_migration, [move], time.time())
    n = int(placement.sop_instance_uid.rsplit(".", 1)[1])
    record_instances(db, [make_record(n, sha="f" * 64, path=placement.key)], DuplicatePolicy.REPLACE)  # a C-STORE replaced it
    assert in_transaction(db, switch_tier, [move]) == []
    assert [m.state for m in journal_entries(db)] == [ABANDONED]
    assert {u.tier for u in tier_usage(db)} == {"local"}


def test_unknown_keys_are_strays(db):
    assert known_keys(db, "local", ["files/1.dcm", "files/9.dcm"]) == {"files/1.dcm"}
    assert known_keys(db, "cold", ["files/1.dcm"]) == set()
