"""Hundreds of tasks locking and unlocking a few studies at random: the invariants hold.

Each worker checks, the moment it is granted a lock, what the other workers currently
hold (a test-side ledger): never an exclusive or migration lock beside anyone else,
never more shared holders than max_shared_locks. Every request must be answered - a
grant, a timeout or a refusal - so no waiter is lost, and at the end nothing is held
and nobody waits.
"""

import random
from collections import Counter, defaultdict

import trio

from triopacs.workflow import AlreadyLocked, GetLockStats, Lock, LockTimeout, LockType, MaxSharedExceeded, TryLock, Unlock, study_lock

from .lock_actors import lock_node

STUDIES = [f"1.2.3.{i}" for i in range(12)]
KINDS = [LockType.SHARED] * 6 + [LockType.EXCLUSIVE] * 3 + [LockType.MIGRATION]
MAX_SHARED = 3
WORKERS = 300
ROUNDS = 4


async def test_hammering_keeps_every_invariant(autojump_clock):
    rng = random.Random(20251123)
    ledger: dict[str, Counter] = defaultdict(Counter)
    outcomes: Counter = Counter()

    def take(study: str, kind: LockType) -> None:
        held = ledger[study]
        if kind is LockType.SHARED:
            assert held[LockType.EXCLUSIVE] == held[LockType.MIGRATION] == 0, f"shared beside {held}"
            assert held[LockType.SHARED] < MAX_SHARED, f"too many shared on {study}"
        else:
            assert sum(held.values()) == 0, f"{kind.value} beside {held}"
        held[kind] += 1

    def give_back(study: str, kind: LockType) -> None:
        ledger[study][kind] -= 1

    async with lock_node(max_shared_locks=MAX_SHARED, acquire_wait_timeout=8.0) as (_, locks, manager):

        async def worker(seed: int) -> None:
            local = random.Random(seed)
            for _ in range(ROUNDS):
                await trio.sleep(local.uniform(0, 3))
                study, kind = local.choice(STUDIES), local.choice(KINDS)
                style = local.random()
                try:
                    if style < 0.15:
                        token = await locks.ask(TryLock(study_uid=study, type=kind))
                    elif style < 0.3:
                        # The helper, sometimes cancelled while waiting or while holding.
                        with trio.move_on_after(local.uniform(0.5, 6)):
                            async with study_lock(locks, study, kind, wait=local.uniform(1, 10)):
                                take(study, kind)
                                try:
                                    await trio.sleep(local.uniform(0, 2))
                                finally:
                                    give_back(study, kind)
                        outcomes["helper"] += 1
                        continue
                    else:
                        token = await locks.ask(Lock(study_uid=study, type=kind, wait=local.uniform(0.5, 12)))
                except (AlreadyLocked, MaxSharedExceeded):
                    outcomes["refused"] += 1
                    continue
                except LockTimeout:
                    outcomes["timed out"] += 1
                    continue
                except BaseException:
                    outcomes["lost"] += 1  # any other end would be a bug
                    raise
                take(study, kind)
                outcomes["granted"] += 1
                await trio.sleep(local.uniform(0, 2))
                give_back(study, kind)
                await locks.ask(Unlock(token_id=token.token_id))

        async def auditor() -> None:
            while True:
                manager.table.check_invariants()
                await trio.sleep(0.25)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(auditor)
            async with trio.open_nursery() as workers:
                for _ in range(WORKERS):
                    workers.start_soon(worker, rng.getrandbits(32))
            nursery.cancel_scope.cancel()

        manager.table.check_invariants()
        stats = await locks.ask(GetLockStats())
        assert stats.active_locks == 0 and stats.waiting_requests == 0
        assert all(sum(held.values()) == 0 for held in ledger.values())
        attempts = WORKERS * ROUNDS
        assert sum(outcomes.values()) == attempts and outcomes["lost"] == 0
        # The run actually contended: plenty of grants, waits that ran out, refusals.
        assert outcomes["granted"] > attempts // 4 and outcomes["timed out"] > 0 and outcomes["refused"] > 0
        assert stats.contention_count > 100
