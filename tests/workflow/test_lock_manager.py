"""The lock manager actor under MockClock: waiting, timeouts, expiry and refresh, cleanup,
events, holder lifetimes, the client helper, queries and statistics."""

import datetime as dt

import pytest
import trio
import trio.testing

from triopacs.actors import ActorExited, ActorSpec, ActorStopped, ActorSystem, Restart
from triopacs.workflow import (
    AlreadyLocked,
    CleanupExpiredLocks,
    ForceUnlock,
    GetAllLocks,
    GetExpiredLocks,
    GetLockConfig,
    GetLockInfo,
    GetLockInfoByToken,
    GetLocksByHolder,
    GetLocksByType,
    GetLockStats,
    IsLocked,
    Lock,
    LockAcquired,
    LockExpired,
    LockExpiredEvent,
    LockForceUnlocked,
    LockManagerConfig,
    LockReleased,
    LockTimeout,
    LockType,
    PermissionDenied,
    RefreshLock,
    ReleaseCause,
    ResetLockStats,
    SetLockConfig,
    TryLock,
    Unlock,
    UnlockAllByHolder,
    UnlockHolder,
    UpgradeLock,
    ValidateToken,
    study_lock,
)

from .lock_actors import START, Crash, Grab, LockHolder, Quit, lock_node

E, S, M = LockType.EXCLUSIVE, LockType.SHARED, LockType.MIGRATION
STUDY = "1.2.840.113619.2.1"


NEVER = 30 * 86400.0  # virtual seconds: with autojump, a wait that can never end fails here


async def next_event(subscription, kind=object, **fields):
    """The next event of `kind` with these fields; fails (rather than hangs) if none comes."""
    with trio.fail_after(NEVER):
        async for event in subscription:
            if isinstance(event, kind) and all(getattr(event, k) == v for k, v in fields.items()):
                return event


async def test_lock_waits_until_the_holder_releases(autojump_clock):
    async with lock_node() as (_, locks, _):
        first = await locks.ask(Lock(study_uid=STUDY, holder="a"))
        got = []

        async def second():
            got.append((await locks.ask(Lock(study_uid=STUDY, holder="b", wait=60)), trio.current_time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(second)
            await trio.sleep(7)
            # The mailbox is not blocked by the waiting request.
            assert (await locks.ask(GetLockStats())).waiting_requests == 1
            await locks.ask(Unlock(token_id=first.token_id))
        token, when = got[0]
        assert when == 7 and token.study_uid == STUDY
        assert token.acquired_at == START + dt.timedelta(seconds=7)


async def test_lock_gives_up_after_acquire_wait_timeout(autojump_clock):
    async with lock_node(acquire_wait_timeout=5.0) as (_, locks, _):
        await locks.ask(Lock(study_uid=STUDY))
        with pytest.raises(LockTimeout) as error:
            await locks.ask(Lock(study_uid=STUDY))
        assert trio.current_time() == 5.0 and error.value.code == -103
        with pytest.raises(LockTimeout):
            await locks.ask(Lock(study_uid=STUDY, wait=2.5))
        assert trio.current_time() == 7.5
        stats = await locks.ask(GetLockStats())
        assert stats.timeout_count == 2 and stats.contention_count == 2


async def test_try_lock_never_waits(autojump_clock):
    async with lock_node() as (_, locks, _):
        await locks.ask(TryLock(study_uid=STUDY, type=S))
        with pytest.raises(AlreadyLocked) as error:
            await locks.ask(TryLock(study_uid=STUDY, type=E))
        assert error.value.code == -100 and trio.current_time() == 0


async def test_expiry_hands_the_study_to_a_waiter_at_the_expiry_moment(autojump_clock):
    system = ActorSystem()
    with system.bus.subscribe(LockExpiredEvent) as expired:
        async with lock_node(system) as (_, locks, _):
            short = await locks.ask(Lock(study_uid=STUDY, timeout=10))
            assert short.expires_at == START + dt.timedelta(seconds=10)
            second = await locks.ask(Lock(study_uid=STUDY, wait=60))
            assert trio.current_time() == 10 and second.acquired_at == short.expires_at
            event = await next_event(expired)
            assert event.info.token_id == short.token_id
            with pytest.raises(LockExpired) as error:
                await locks.ask(Unlock(token_id=short.token_id))
            assert error.value.code == -104
            assert not (await locks.ask(ValidateToken(token_id=short.token_id))).valid
            assert (await locks.ask(ValidateToken(token_id=second.token_id))).valid


async def test_refresh_pushes_the_expiry_back(autojump_clock):
    async with lock_node() as (_, locks, _):
        token = await locks.ask(Lock(study_uid=STUDY, timeout=10))
        await trio.sleep(8)
        refreshed = await locks.ask(RefreshLock(token_id=token.token_id))
        assert refreshed.expires_at == START + dt.timedelta(seconds=18)
        await locks.ask(Lock(study_uid=STUDY, wait=60))
        assert trio.current_time() == 18
        with pytest.raises(LockExpired):
            await locks.ask(RefreshLock(token_id=token.token_id, extension=100))


async def test_default_timeout_applies_and_zero_means_never(autojump_clock):
    async with lock_node(default_timeout=30.0) as (_, locks, _):
        default = await locks.ask(Lock(study_uid="1.1"))
        forever = await locks.ask(Lock(study_uid="1.2", timeout=0))
        assert default.expires_at == START + dt.timedelta(seconds=30)
        assert forever.expires_at is None and forever.remaining_time(START) is None
        assert default.remaining_time(START + dt.timedelta(seconds=20)) == 10


async def test_expired_locks_are_swept_every_cleanup_interval(autojump_clock):
    system = ActorSystem()
    with system.bus.subscribe(LockExpiredEvent) as expired:
        async with lock_node(system, cleanup_interval=60.0) as (_, locks, _):
            token = await locks.ask(Lock(study_uid=STUDY, timeout=5))
            await trio.sleep(6)
            assert not (await locks.ask(IsLocked(study_uid=STUDY))).locked
            listed = (await locks.ask(GetExpiredLocks())).locks
            assert [info.token_id for info in listed] == [token.token_id] and listed[0].expired
            event = await next_event(expired)  # nobody asked for the study: the sweep at 60 s
            assert trio.current_time() == 60 and event.info.token_id == token.token_id
            assert (await locks.ask(GetAllLocks())).locks == ()


async def test_cleanup_on_request_and_off_switch(autojump_clock):
    async with lock_node(auto_cleanup=False, cleanup_interval=10.0) as (_, locks, _):
        await locks.ask(Lock(study_uid=STUDY, timeout=5))
        await trio.sleep(100)
        assert len((await locks.ask(GetExpiredLocks())).locks) == 1
        assert (await locks.ask(CleanupExpiredLocks())).count == 1
        assert (await locks.ask(GetLockStats())).expired_count == 1


async def test_acquired_released_and_forced_events_and_audit(autojump_clock):
    system = ActorSystem()
    with system.bus.subscribe(LockAcquired, LockReleased, LockForceUnlocked) as events:
        async with lock_node(system) as (_, locks, _):
            token = await locks.ask(Lock(study_uid=STUDY, holder="alice", reason="edit"))
            acquired = await next_event(events)
            assert isinstance(acquired, LockAcquired) and acquired.info.holder == "alice" and acquired.info.reason == "edit"
            await trio.sleep(3)
            await locks.ask(Unlock(token_id=token.token_id))
            released = await next_event(events)
            assert released.cause is ReleaseCause.UNLOCKED and released.info.held_for == 3
            await locks.ask(Lock(study_uid=STUDY, holder="bob"))
            await next_event(events)
            assert (await locks.ask(ForceUnlock(study_uid=STUDY, reason="stuck import"))).count == 1
            forced = await next_event(events)
            assert forced.cause is ReleaseCause.FORCED and forced.reason == "stuck import"
            audit = await next_event(events)
            assert isinstance(audit, LockForceUnlocked)
            assert audit.reason == "stuck import" and [i.holder for i in audit.released] == ["bob"]
            await locks.ask(SetLockConfig(config=LockManagerConfig(allow_force_unlock=False)))
            await locks.ask(Lock(study_uid=STUDY))
            with pytest.raises(PermissionDenied):
                await locks.ask(ForceUnlock(study_uid=STUDY))
            assert (await locks.ask(GetLockConfig())).allow_force_unlock is False


async def test_a_crashed_holder_loses_its_locks(autojump_clock):
    system = ActorSystem()
    with system.bus.subscribe(LockReleased) as released:
        async with lock_node(system) as (root, locks, manager):
            holder = await root.start(ActorSpec(name="holder", actor=LockHolder))
            token = await holder.ask(Grab(study_uid=STUDY))
            info = (await locks.ask(GetLockInfoByToken(token_id=token.token_id))).info
            assert info.owner == "/t/holder" and info.holder == "/t/holder"
            async with trio.open_nursery() as nursery:
                waited = []

                async def waiter():
                    await locks.ask(Lock(study_uid=STUDY, wait=600))
                    waited.append(trio.current_time())

                nursery.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(ActorStopped):
                    await holder.ask(Crash())
                event = await next_event(released, LockReleased, cause=ReleaseCause.HOLDER_GONE)
                assert event.info.token_id == token.token_id
            assert waited and waited[0] < 1  # freed by the crash, not by a timeout
            # The restarted holder starts clean and can lock again; that lock is kept.
            again = await holder.ask(Grab(study_uid="2.2"))
            await trio.sleep(1)
            assert (await locks.ask(ValidateToken(token_id=again.token_id))).valid
            manager.table.check_invariants()


async def test_a_holder_that_stops_loses_its_locks(autojump_clock):
    system = ActorSystem()
    with system.bus.subscribe(ActorExited, LockReleased) as events:
        async with lock_node(system) as (root, locks, _):
            holder = await root.start(ActorSpec(name="holder", actor=LockHolder, restart=Restart.NEVER))
            kept = await holder.ask(Grab(study_uid="3.3", link=False))
            await holder.ask(Grab(study_uid=STUDY))
            await holder.send(Quit())
            await next_event(events, LockReleased, cause=ReleaseCause.HOLDER_GONE)
            assert not (await locks.ask(IsLocked(study_uid=STUDY))).locked
            # A lock taken with link=False outlives its taker.
            assert (await locks.ask(ValidateToken(token_id=kept.token_id))).valid


async def test_study_lock_releases_on_exit_error_and_cancellation(autojump_clock):
    async with lock_node() as (_, locks, _):
        async with study_lock(locks, STUDY, S, holder="reader") as token:
            assert (await locks.ask(IsLocked(study_uid=STUDY, type=S))).locked
            assert token.type is S
        assert not (await locks.ask(IsLocked(study_uid=STUDY))).locked

        with pytest.raises(ZeroDivisionError):
            async with study_lock(locks, STUDY):
                1 / 0
        assert not (await locks.ask(IsLocked(study_uid=STUDY))).locked

        with trio.move_on_after(5):
            async with study_lock(locks, STUDY):
                await trio.sleep_forever()
        assert not (await locks.ask(IsLocked(study_uid=STUDY))).locked


async def test_study_lock_unconfirmed_release_still_frees_the_study(autojump_clock):
    async with lock_node() as (_, locks, _):
        async with study_lock(locks, STUDY, S, confirm_release=False):
            pass
        # The Unlock was sent, not asked: the next request queues behind it and finds the
        # study free at once.
        token = await locks.ask(Lock(study_uid=STUDY, type=E, wait=0))
        assert token.type is E and trio.current_time() == 0
        # A release the manager refuses (the lock expired meanwhile) is not the caller's
        # problem here: leaving the block raises nothing.
        async with study_lock(locks, "1.2.3", S, timeout=5, confirm_release=False):
            await trio.sleep(10)
        assert not (await locks.ask(IsLocked(study_uid="1.2.3"))).locked


async def test_study_lock_cancelled_while_waiting_leaves_nothing_behind(autojump_clock):
    async with lock_node() as (_, locks, manager):
        blocker = await locks.ask(Lock(study_uid=STUDY))
        with trio.move_on_after(2) as scope:
            async with study_lock(locks, STUDY, wait=60):
                pytest.fail("must not get the lock")
        assert scope.cancelled_caught
        stats = await locks.ask(GetLockStats())
        assert stats.waiting_requests == 0
        await locks.ask(Unlock(token_id=blocker.token_id))
        assert (await locks.ask(GetAllLocks())).locks == ()
        manager.table.check_invariants()


async def test_study_lock_reports_a_lock_that_expired_while_held(autojump_clock):
    async with lock_node() as (_, locks, _):
        with pytest.raises(LockExpired):
            async with study_lock(locks, STUDY, timeout=5):
                await trio.sleep(10)
        await locks.ask(Lock(study_uid=STUDY))
        with pytest.raises(AlreadyLocked):  # try_only fails at once when the study is taken
            async with study_lock(locks, STUDY, try_only=True):
                pass
        assert trio.current_time() == 10


async def test_queries_and_statistics(autojump_clock):
    async with lock_node(max_shared_locks=5) as (_, locks, _):
        readers = [await locks.ask(Lock(study_uid=STUDY, type=S, holder=f"viewer{i}")) for i in range(3)]
        await locks.ask(Lock(study_uid="9.9", type=M, holder="hsm"))
        await trio.sleep(2)
        info = (await locks.ask(GetLockInfo(study_uid=STUDY))).info
        assert info.holder == "viewer0" and info.shared_count == 3 and info.duration() == 2
        assert (await locks.ask(GetLockInfo(study_uid="nope"))).info is None
        assert (await locks.ask(IsLocked(study_uid=STUDY, type=S))).locked
        assert not (await locks.ask(IsLocked(study_uid=STUDY, type=E))).locked
        assert [i.holder for i in (await locks.ask(GetLocksByType(type=M))).locks] == ["hsm"]
        assert [i.study_uid for i in (await locks.ask(GetLocksByHolder(holder="viewer1"))).locks] == [STUDY]
        assert len((await locks.ask(GetAllLocks())).locks) == 4
        stats = await locks.ask(GetLockStats())
        assert (stats.active_locks, stats.shared_locks, stats.migration_locks, stats.exclusive_locks) == (4, 3, 1, 0)
        assert (await locks.ask(UnlockHolder(study_uid=STUDY, holder="viewer2"))).count == 1
        assert (await locks.ask(UnlockAllByHolder(holder="viewer0"))).count == 1
        with pytest.raises(AlreadyLocked):
            await locks.ask(TryLock(study_uid="9.9", type=S))
        upgraded = await locks.ask(UpgradeLock(token_id=readers[1].token_id))
        assert upgraded.type is E
        await locks.ask(ResetLockStats())
        stats = await locks.ask(GetLockStats())
        assert stats.total_acquisitions == 0 and stats.active_locks == 2
