"""The lock table's rules, without actors or time: compatibility, queueing, fairness,
migration priority, shared holders, upgrades. (Waiting under a real clock, expiry and
holder lifetimes are in test_lock_manager.py.)"""

import datetime as dt
import itertools

import pytest

from triopacs.workflow.locks.table import Granted, LockTable, Now, Publish, Refused, Request
from triopacs.workflow.locks.types import (
    LOCK_ERRORS,
    AlreadyLocked,
    InvalidLockType,
    InvalidToken,
    LockExpired,
    LockManagerConfig,
    LockNotFound,
    LockTimeout,
    LockType,
    MaxSharedExceeded,
    PermissionDenied,
    UpgradeFailed,
    compatible,
)

E, S, M = LockType.EXCLUSIVE, LockType.SHARED, LockType.MIGRATION
START = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
STUDY = "1.2.840.1"


def at(t: float) -> Now:
    return Now(mono=t, wall=START + dt.timedelta(seconds=t))


class Table:
    """A LockTable with a pretend clock and named tickets for queued requests."""

    def __init__(self, **config) -> None:
        counter = itertools.count()
        self.table = LockTable(LockManagerConfig(**config), lambda: f"tok{next(counter)}")
        self.t = 0.0
        self.effects: list = []

    def request(self, kind, name="", wait=0.0, study=STUDY, lifetime=None, owner=None, holder=None):
        request = Request(study_uid=study, type=kind, reason="", holder=holder or name, owner=owner, lifetime=lifetime, request_id=f"req-{name}")
        token = self.table.request(request, at(self.t), wait, lambda: name, self.effects)
        self.table.check_invariants()
        return token

    def granted(self) -> list[str]:
        """Names of queued requests granted since the last call."""
        names = [e.ticket for e in self.effects if isinstance(e, Granted)]
        self.effects = [e for e in self.effects if not isinstance(e, Granted)]
        return names

    def refused(self) -> list[tuple[str, type]]:
        out = [(e.ticket, type(e.error)) for e in self.effects if isinstance(e, Refused)]
        self.effects = [e for e in self.effects if not isinstance(e, Refused)]
        return out

    def release(self, token) -> None:
        self.table.release_token(token.token_id, at(self.t), self.effects)
        self.table.check_invariants()

    def tick(self, t: float) -> None:
        self.t = t
        self.table.tick(at(t), self.effects)
        self.table.check_invariants()


HELD = {
    "nothing": [],
    "one shared": [S],
    "shared at the limit": [S, S, S],
    "exclusive": [E],
    "migration": [M],
}
# What may be granted next to what is held (seed 6.1.6), max_shared_locks = 3.
MATRIX = {
    ("nothing", E): True, ("nothing", S): True, ("nothing", M): True,
    ("one shared", E): False, ("one shared", S): True, ("one shared", M): False,
    ("shared at the limit", E): False, ("shared at the limit", S): False, ("shared at the limit", M): False,
    ("exclusive", E): False, ("exclusive", S): False, ("exclusive", M): False,
    ("migration", E): False, ("migration", S): False, ("migration", M): False,
}  # fmt: skip


@pytest.mark.parametrize(("held", "wanted"), sorted(MATRIX, key=str))
def test_compatibility_matrix(held, wanted):
    table = Table(max_shared_locks=3)
    for i, kind in enumerate(HELD[held]):
        assert table.request(kind, f"h{i}") is not None
    expected = MATRIX[(held, wanted)]
    assert compatible(wanted, HELD[held], 3) is expected
    if expected:
        token = table.request(wanted, "new")
        assert token.type is wanted and token.study_uid == STUDY
    else:
        error = MaxSharedExceeded if held == "shared at the limit" and wanted is S else AlreadyLocked
        with pytest.raises(error):
            table.request(wanted, "new")


def test_error_codes_are_the_seeds():
    assert {code: cls.__name__ for code, cls in LOCK_ERRORS.items()} == {
        -100: "AlreadyLocked",
        -101: "LockNotFound",
        -102: "InvalidToken",
        -103: "LockTimeout",
        -104: "LockExpired",
        -105: "PermissionDenied",
        -106: "InvalidLockType",
        -107: "MaxSharedExceeded",
        -108: "UpgradeFailed",
    }


def test_locks_on_different_studies_are_independent():
    table = Table()
    table.request(E, "a", study="1.1")
    table.request(E, "b", study="1.2")
    table.request(M, "c", study="1.3")


def test_a_stream_of_shared_requests_cannot_starve_an_exclusive_one():
    table = Table()
    first = table.request(S, "reader0")
    assert table.request(E, "writer", wait=10) is None  # queued behind reader0
    # Later readers would be compatible with reader0, but they queue behind the writer.
    for i in range(1, 5):
        assert table.request(S, f"reader{i}", wait=10) is None
    with pytest.raises(AlreadyLocked):
        table.request(S, "impatient")  # try_lock does not jump the queue either
    table.release(first)
    assert table.granted() == ["writer"]
    writer = next(h for h in table.table.infos(at(0)) if h.holder == "writer")
    table.table.release_token(writer.token_id, at(0), table.effects)
    # The readers that queued behind the writer go in together.
    assert table.granted() == ["reader1", "reader2", "reader3", "reader4"]
    assert table.table.study_info(STUDY, at(0)).shared_count == 4


def test_queued_migration_requests_go_first():
    table = Table()
    held = table.request(E, "holder")
    table.request(S, "reader", wait=10)
    table.request(E, "writer", wait=10)
    table.request(M, "migration1", wait=10)
    table.request(M, "migration2", wait=10)
    table.release(held)
    assert table.granted() == ["migration1"]
    for name in ("migration2", "reader", "writer"):
        current = table.table.infos(at(0))[0]
        table.table.release_token(current.token_id, at(0), table.effects)
        assert table.granted() == [name]


def test_a_migration_request_does_not_barge_past_a_compatible_holder_set():
    table = Table()
    reader = table.request(S, "reader")
    assert table.request(M, "migration", wait=10) is None  # waits for the reader
    assert table.request(S, "late-reader", wait=10) is None  # queues behind the migration
    table.release(reader)
    assert table.granted() == ["migration"]


def test_releasing_one_shared_holder_by_token_keeps_the_others():
    table = Table()
    tokens = [table.request(S, f"r{i}") for i in range(3)]
    table.request(E, "writer", wait=10)
    for index, token in enumerate(tokens[:-1]):
        table.release(token)
        assert table.table.is_locked(STUDY, S, at(0))
        assert table.table.study_info(STUDY, at(0)).shared_count == 2 - index
        assert table.granted() == []
    with pytest.raises(InvalidToken):
        table.release(tokens[0])  # already released
    table.release(tokens[-1])  # the last holder: the lock is really gone
    assert table.granted() == ["writer"]
    assert table.table.is_locked(STUDY, E, at(0))


def test_shared_requests_beyond_the_limit_wait_for_a_slot():
    table = Table(max_shared_locks=2)
    first = table.request(S, "r1")
    table.request(S, "r2")
    assert table.request(S, "r3", wait=10) is None
    table.release(first)
    assert table.granted() == ["r3"]


def test_waits_time_out_in_order_and_free_those_behind():
    table = Table()
    table.request(S, "reader")
    table.request(E, "writer", wait=5)
    table.request(S, "reader2", wait=20)  # behind the writer, though compatible with the holder
    table.tick(5)
    assert table.refused() == [("writer", LockTimeout)]
    assert table.granted() == ["reader2"]  # the timed-out head no longer blocks it
    assert table.table.stats().timeout_count == 1


def test_expiry_frees_the_study_for_waiters():
    table = Table()
    table.request(E, "short", lifetime=3)
    table.request(E, "next", wait=10)
    assert table.table.next_deadline() == 3  # the expiry, before the wait runs out at 10
    table.tick(3)
    assert table.granted() == ["next"]
    assert any(type(e).__name__ == "Publish" and type(e.event).__name__ == "LockExpiredEvent" for e in table.effects)


def test_unlock_after_expiry_says_expired_not_unknown():
    table = Table()
    token = table.request(E, "a", lifetime=3)
    table.t = 4
    with pytest.raises(LockExpired):
        table.release(token)
    with pytest.raises(LockExpired):  # still remembered as expired once swept
        table.release(token)


def test_unlock_by_holder_force_and_by_holder_everywhere():
    table = Table()
    table.request(S, "a", holder="alice")
    table.request(S, "b", holder="alice")
    table.request(S, "c", holder="bob")
    assert table.table.release_holder(STUDY, "alice", at(0), table.effects) == 2
    with pytest.raises(LockNotFound):
        table.table.release_holder(STUDY, "alice", at(0), table.effects)
    table.request(E, "d", study="9.9", holder="bob")
    assert table.table.release_all_by_holder("bob", at(0), table.effects) == 2
    assert table.table.infos(at(0)) == ()
    table.request(E, "e", holder="carol")
    released = table.table.force_release(STUDY, "stuck", "/admin", at(0), table.effects)
    assert [info.holder for info in released] == ["carol"]
    assert table.table.stats().force_unlock_count == 1
    with pytest.raises(LockNotFound):
        table.table.force_release(STUDY, "again", None, at(0), table.effects)


def test_force_unlock_can_be_forbidden():
    table = Table(allow_force_unlock=False)
    table.request(E, "a")
    with pytest.raises(PermissionDenied) as error:
        table.table.force_release(STUDY, "", None, at(0), table.effects)
    assert error.value.code == -105


def test_upgrade_only_a_sole_shared_holder():
    table = Table()
    a = table.request(S, "a")
    b = table.request(S, "b")
    with pytest.raises(UpgradeFailed):
        table.table.upgrade(a.token_id, E, at(0), table.effects)
    table.release(b)
    with pytest.raises(InvalidLockType):
        table.table.upgrade(a.token_id, S, at(0), table.effects)
    upgraded = table.table.upgrade(a.token_id, E, at(0), table.effects)
    assert upgraded.type is E and upgraded.token_id == a.token_id
    with pytest.raises(AlreadyLocked):
        table.request(S, "c")
    with pytest.raises(InvalidLockType):
        table.table.upgrade(a.token_id, M, at(0), table.effects)  # no longer shared


def test_abandoning_a_request_withdraws_it_or_releases_its_lock():
    table = Table()
    held = table.request(E, "holder")
    table.request(E, "quitter", wait=10)
    assert table.table.abandon("req-quitter", at(0), table.effects) == 0
    assert table.refused() == [("quitter", LockTimeout)]
    table.release(held)
    assert table.granted() == []
    table.request(E, "lucky")
    assert table.table.abandon("req-lucky", at(0), table.effects) == 1
    assert not table.table.is_locked(STUDY, None, at(0))


def test_owner_gone_releases_its_locks_and_requests():
    table = Table()
    table.request(E, "a", owner="/node/x")
    table.request(E, "b", wait=10, owner="/node/x")
    table.request(E, "c", wait=10, owner="/node/y")
    assert table.table.owner_gone("/node/x", at(0), table.effects) == 1
    assert [name for name, _ in table.refused()] == ["b"]
    assert table.granted() == ["c"]


def test_statistics_count_durations_and_contention():
    table = Table()
    a = table.request(E, "a")
    table.request(E, "b", wait=10)
    table.t = 4
    table.release(a)
    b = table.table.infos(at(4))[0]
    table.t = 5
    table.table.release_token(b.token_id, at(5), table.effects)
    stats = table.table.stats()
    assert (stats.total_acquisitions, stats.total_releases, stats.contention_count) == (2, 2, 1)
    assert stats.max_lock_duration == 4.0 and stats.avg_lock_duration == 2.5
    assert stats.active_locks == 0
    published = [type(e.event).__name__ for e in table.effects if isinstance(e, Publish)]
    assert published == ["LockAcquired", "LockContended", "LockReleased", "LockAcquired", "LockReleased"]
