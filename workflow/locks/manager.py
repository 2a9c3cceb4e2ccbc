"""The study lock manager actor (seed DES-WKF-005).

It owns a LockTable (lock_table.py: the rules) and gives it what only an actor has:
- time: one timer task wakes the table exactly when a wait runs out or an expiry frees
  a study someone waits for, and a sweep every `cleanup_interval` removes expired locks
  nobody contends for;
- waiting without blocking: a request that must wait gets a deferred reply
  (`ctx.defer_reply()`), answered when the lock is granted or the wait runs out, while
  the mailbox keeps being served;
- holders' lifetimes: a lock asked for from inside an actor is linked to that actor
  (`ctx.sender`). The manager follows the runtime events on the bus and releases the
  locks of an actor that exits, fails or starts a new incarnation. Events still queued
  in its subscription are applied before every message it handles; publishing is
  synchronous, so a message a new incarnation sends is always handled after the event
  that ended the old one. A periodic check of linked holders' paths covers actors that
  vanished without an event (cancelled with their subtree) and events lost to a full
  subscription.

Timer, sweep and lifecycle tasks change the table directly: table operations never
await, so they cannot interleave with a message being handled.
"""

import datetime as dt
import math
import random
import secrets
from contextlib import ExitStack

import trio

from ...actors import Actor, ActorExited, ActorFailed, ActorRestarted, ActorStarted, ActorStopped
from ...actors.runtime.mailbox import Reply
from ..clock import WallClock
from .messages import (
    AbandonLockRequest,
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
    LockInfoReply,
    LockInfos,
    LockStatus,
    RefreshLock,
    Released,
    ResetLockStats,
    SetLockConfig,
    TokenValid,
    TryLock,
    Unlock,
    UnlockAllByHolder,
    UnlockHolder,
    UpgradeLock,
    ValidateToken,
)
from .table import Effect, Granted, LockTable, Now, Publish, Refused, Request
from .types import InvalidLockConfig, LockManagerConfig

LIFECYCLE_EVENTS = (ActorExited, ActorFailed, ActorRestarted, ActorStarted)


class StudyLockManager(Actor):
    # Its answers carry random tokens and wall-clock times: a node's trace replays it only
    # when it was built with token_seed and clock_start and recorded on a mock clock, so a
    # default replay plays it from the recording; name it (--actor) to re-run it.
    replayable = False
    resources = {}  # the lock table lives in memory
    accepts = (
        Lock,
        TryLock,
        AbandonLockRequest,
        RefreshLock,
        UpgradeLock,
        Unlock,
        UnlockHolder,
        ForceUnlock,
        UnlockAllByHolder,
        IsLocked,
        GetLockInfo,
        GetLockInfoByToken,
        ValidateToken,
        GetAllLocks,
        GetLocksByHolder,
        GetLocksByType,
        GetExpiredLocks,
        CleanupExpiredLocks,
        GetLockStats,
        ResetLockStats,
        GetLockConfig,
        SetLockConfig,
    )

    def __init__(
        self,
        config: LockManagerConfig = LockManagerConfig(),
        token_seed: int | None = None,
        clock_start: dt.datetime | None = None,
    ) -> None:
        """`token_seed` and `clock_start` make tokens and times reproducible, for tests
        and trace replays only: a seeded token can be guessed."""
        self.config = config
        self.token_seed = token_seed
        self.clock_start = clock_start

    async def on_start(self) -> None:
        problem = self.config.problems()
        if problem is not None:
            raise ValueError(f"lock manager configuration: {problem}")
        self._clock = WallClock(self.clock_start)
        self._clock.now()  # anchor the clock at the start of this incarnation
        self.table = LockTable(self.config, self._token_source())
        self._rearm = trio.Event()
        self._armed_for = math.inf  # the deadline the timer sleeps until
        self._exit_stack = ExitStack()
        self._lifecycle = self._exit_stack.enter_context(self.ctx.system.bus.subscribe(*LIFECYCLE_EVENTS, capacity=4096))
        self._dropped_seen = 0
        self.ctx.nursery.start_soon(self._timer)
        self.ctx.nursery.start_soon(self._follow_lifecycle)
        self.ctx.nursery.start_soon(self._sweep_periodically)

    async def on_stop(self) -> None:
        self._exit_stack.close()

    def _token_source(self):
        if self.token_seed is None:
            return lambda: secrets.token_urlsafe(24)
        # Another incarnation must not hand out the tokens of the previous one again.
        rng = random.Random(f"{self.token_seed}/{self.ctx.ref.statistics().restarts}")
        return lambda: f"{rng.getrandbits(128):032x}"

    def _now(self) -> Now:
        return Now(mono=trio.current_time(), wall=self._clock.now())

    # -- messages ----------------------------------------------------------------------------

    async def handle(self, message):
        self._drain_lifecycle()
        effects: list[Effect] = []
        try:
            return self._handle(message, self._now(), effects)
        finally:
            self._apply(effects)
            self._rearm_if_sooner()

    def _handle(self, message, now: Now, effects: list[Effect]):
        table = self.table
        match message:
            case Lock(wait=wait):
                wait = self.config.acquire_wait_timeout if wait is None else wait
                return table.request(self._request(message), now, wait, self._defer, effects)
            case TryLock():
                return table.request(self._request(message), now, 0.0, self._defer, effects)
            case AbandonLockRequest(request_id=request_id):
                return Released(count=table.abandon(request_id, now, effects))
            case RefreshLock(token_id=token_id, extension=extension):
                return table.refresh(token_id, extension, now, effects)
            case UpgradeLock(token_id=token_id, to=to):
                return table.upgrade(token_id, to, now, effects)
            case Unlock(token_id=token_id):
                table.release_token(token_id, now, effects)
                return Released(count=1)
            case UnlockHolder(study_uid=study_uid, holder=holder):
                return Released(count=table.release_holder(study_uid, holder, now, effects))
            case ForceUnlock(study_uid=study_uid, reason=reason):
                released = table.force_release(study_uid, reason, self.ctx.sender, now, effects)
                self.ctx.log.warning(
                    "study lock forced open",
                    study_uid=study_uid,
                    reason=reason,
                    requested_by=self.ctx.sender,
                    released=[(info.holder, info.type.value) for info in released],
                )
                return Released(count=len(released))
            case UnlockAllByHolder(holder=holder):
                return Released(count=table.release_all_by_holder(holder, now, effects))
            case IsLocked(study_uid=study_uid, type=kind):
                return LockStatus(locked=table.is_locked(study_uid, kind, now))
            case GetLockInfo(study_uid=study_uid):
                return LockInfoReply(info=table.study_info(study_uid, now))
            case GetLockInfoByToken(token_id=token_id):
                return LockInfoReply(info=table.token_info(token_id, now))
            case ValidateToken(token_id=token_id):
                info = table.token_info(token_id, now)
                return TokenValid(valid=info is not None and not info.expired)
            case GetAllLocks():
                return LockInfos(locks=table.infos(now))
            case GetLocksByHolder(holder=holder):
                return LockInfos(locks=table.infos(now, lambda h: h.request.holder == holder))
            case GetLocksByType(type=kind):
                return LockInfos(locks=table.infos(now, lambda h: h.request.type is kind))
            case GetExpiredLocks():
                return LockInfos(locks=table.infos(now, lambda h: h.expired(now)))
            case CleanupExpiredLocks():
                return Released(count=table.sweep(now, effects))
            case GetLockStats():
                return table.stats()
            case ResetLockStats():
                table.reset_stats()
            case GetLockConfig():
                return self.config
            case SetLockConfig(config=config):
                problem = config.problems()
                if problem is not None:
                    raise InvalidLockConfig(problem)
                self.config = table.config = config

    def _request(self, message: Lock | TryLock) -> Request:
        sender = self.ctx.sender
        lifetime = self.config.default_timeout if message.timeout is None else message.timeout
        return Request(
            study_uid=message.study_uid,
            type=message.type,
            reason=message.reason,
            holder=message.holder or sender or "",
            owner=sender if message.link else None,
            lifetime=lifetime or None,
            request_id=message.request_id,
        )

    def _defer(self) -> Reply | None:
        try:
            return self.ctx.defer_reply()
        except RuntimeError:  # sent, not asked: nobody to answer once it is granted
            return None

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Granted(ticket=Reply() as reply, token=token) if not reply.done:
                    reply.send(token)
                case Refused(ticket=Reply() as reply, error=error) if not reply.done:
                    reply.fail(error)
                case Publish(event=event):
                    self.ctx.publish(event)

    # -- time --------------------------------------------------------------------------------

    def _rearm_if_sooner(self) -> None:
        # Only an earlier deadline needs the timer now; waking it after every message
        # would cost each lock and unlock a task switch for nothing. A later one is
        # picked up when the timer next wakes.
        if self.table.next_deadline() < self._armed_for:
            self._rearm.set()

    async def _timer(self) -> None:
        while True:
            self._armed_for = self.table.next_deadline()
            with trio.move_on_at(self._armed_for) as scope:
                await self._rearm.wait()
            if scope.cancelled_caught:
                effects: list[Effect] = []
                now = self._now()
                self.table.tick(now, effects)
                self._apply(effects)
                if self.table.next_deadline() <= now.mono:
                    # tick() consumes every due deadline; if one survives, the table is
                    # inconsistent - say so and back off rather than spin on it
                    self.ctx.log.error("lock timer: a deadline is still due after tick", deadline=self.table.next_deadline())
                    await trio.sleep(1.0)
            else:
                self._rearm = trio.Event()

    async def _sweep_periodically(self) -> None:
        while True:
            await trio.sleep(self.config.cleanup_interval)
            effects: list[Effect] = []
            if self.config.auto_cleanup:
                self.table.sweep(self._now(), effects)
            self._check_owners(effects)
            self._apply(effects)
            self._rearm_if_sooner()

    # -- holders' lifetimes ------------------------------------------------------------------

    async def _follow_lifecycle(self) -> None:
        while True:
            event = await self._lifecycle.receive()
            self._on_lifecycle(event)  # the oldest event, before anything queued after it
            self._drain_lifecycle()

    def _drain_lifecycle(self) -> None:
        while True:
            try:
                event = self._lifecycle.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            self._on_lifecycle(event)
        if self._lifecycle.dropped != self._dropped_seen:
            self._dropped_seen = self._lifecycle.dropped
            self.ctx.log.warning("lifecycle events were lost; checking lock holders", dropped=self._dropped_seen)
            effects: list[Effect] = []
            self._check_owners(effects)
            self._apply(effects)

    def _on_lifecycle(self, event: object) -> None:
        path = getattr(event, "path", None)
        if path is None or path == self.ctx.path:
            return
        effects: list[Effect] = []
        released = self.table.owner_gone(path, self._now(), effects)
        if released:
            self.ctx.log.info("released the locks of a holder that is gone", holder=path, because=type(event).__name__, count=released)
        self._apply(effects)
        self._rearm_if_sooner()

    def _check_owners(self, effects: list[Effect]) -> None:
        for owner in sorted(self.table.owners()):
            try:
                self.ctx.system.lookup(owner)
            except ActorStopped:
                self.table.owner_gone(owner, self._now(), effects)
