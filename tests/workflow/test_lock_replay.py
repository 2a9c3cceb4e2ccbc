"""Record a lock manager session as a trace and replay it with triopacs.actors.replay.

Tokens are random in production. For a trace to be replayable the lock manager is built
with `token_seed` (and `clock_start`): both are constructor arguments, so the trace
records them and the replay rebuilds an identical manager handing out identical tokens
and timestamps. Replies are then compared exactly - tokens included - rather than
modulo tokens, so a replay also notices a change in which request got which lock.
The recording runs on the mock clock, as replays do, so timestamps match to the bit.
"""

import io

import pytest
import trio

from triopacs.actors import ActorSpec, ActorSystem, JsonLinesSink, ReplayError, TraceRecorder, open_supervisor, replay
from triopacs.actors.runtime.trace import read_trace
from triopacs.workflow import (
    AlreadyLocked,
    ForceUnlock,
    GetAllLocks,
    GetLockStats,
    IsLocked,
    Lock,
    LockExpired,
    LockManagerConfig,
    LockTimeout,
    LockType,
    RefreshLock,
    StudyLockManager,
    TryLock,
    Unlock,
    UnlockHolder,
)

from .lock_actors import START

PATH = "/node/services/locks"
CONFIG = LockManagerConfig(acquire_wait_timeout=4.0, default_timeout=0.0, max_shared_locks=2, cleanup_interval=30.0)


async def record_session() -> list[str]:
    buffer = io.StringIO()
    system = ActorSystem(recorder=TraceRecorder(JsonLinesSink(buffer)))
    system.recorder.begin()
    async with open_supervisor(system, "/node/services") as root:
        args = {"config": CONFIG, "token_seed": 42, "clock_start": START}
        locks = await root.start(ActorSpec(name="locks", actor=StudyLockManager, args=args))
        reader = await locks.ask(Lock(study_uid="1.1", type=LockType.SHARED, holder="viewer"))
        await locks.ask(Lock(study_uid="1.1", type=LockType.SHARED, holder="viewer2"))
        async with trio.open_nursery() as nursery:
            # A writer waits for the readers; a migration arrives later and goes first.
            nursery.start_soon(locks.ask, Lock(study_uid="1.1", holder="editor", wait=20))
            await trio.sleep(1)
            nursery.start_soon(locks.ask, Lock(study_uid="1.1", type=LockType.MIGRATION, holder="hsm", wait=20, timeout=3))
            await trio.sleep(1)
            with pytest.raises(AlreadyLocked):
                await locks.ask(TryLock(study_uid="1.1", type=LockType.SHARED))
            await locks.ask(Unlock(token_id=reader.token_id))
            await locks.ask(UnlockHolder(study_uid="1.1", holder="viewer2"))
            await trio.sleep(10)  # the migration lock expires at 5 s, then the editor gets it
        with pytest.raises(LockTimeout):
            await locks.ask(Lock(study_uid="1.1", holder="late"))
        expiring = await locks.ask(Lock(study_uid="2.2", timeout=5))
        await trio.sleep(2)
        await locks.ask(RefreshLock(token_id=expiring.token_id, extension=1))
        await trio.sleep(2)
        with pytest.raises(LockExpired):
            await locks.ask(Unlock(token_id=expiring.token_id))
        await locks.ask(IsLocked(study_uid="1.1"))
        await locks.ask(GetAllLocks())
        await locks.ask(ForceUnlock(study_uid="1.1", reason="end of test"))
        await locks.ask(GetLockStats())
        await trio.sleep(40)  # a periodic sweep
    return buffer.getvalue().splitlines()


async def test_a_recorded_session_replays_identically(autojump_clock):
    lines = await record_session()
    records = list(read_trace(lines))
    assert [r["args"] for r in records if r["kind"] == "actor"][0]["token_seed"] == 42
    replies = [r for r in records if r["kind"] == "reply"]
    assert any(r.get("type") == "locks.token" and r["payload"]["type"] == "migration" for r in replies)
    result = await replay(lines, actors=[PATH])  # not replayed by default: see StudyLockManager
    assert result.ok, result.report()
    assert result.actors == (PATH,)
    assert result.compared == len(replies) >= 15


async def test_a_default_replay_plays_the_lock_manager_from_the_recording(autojump_clock):
    lines = await record_session()
    with pytest.raises(ReplayError, match="nothing to replay"):
        await replay(lines)


async def test_a_changed_configuration_shows_in_the_replay(autojump_clock):
    lines = await record_session()

    def one_reader_at_a_time():
        config = LockManagerConfig(acquire_wait_timeout=4.0, max_shared_locks=1, cleanup_interval=30.0)
        return StudyLockManager(config=config, token_seed=42, clock_start=START)

    result = await replay(lines, actors=[PATH], factories={PATH: one_reader_at_a_time})
    assert not result.ok
    assert [m.stream for m in result.mismatches] == ["reply /node/services/locks -> None"]
    assert "LockTimeout" in result.report()  # viewer2 now waits for viewer and times out


async def test_tokens_are_compared_exactly(autojump_clock):
    lines = await record_session()

    def other_tokens():
        return StudyLockManager(config=CONFIG, token_seed=43, clock_start=START)

    result = await replay(lines, actors=[PATH], factories={PATH: other_tokens})
    assert not result.ok
