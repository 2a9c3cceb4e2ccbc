"""The lock table: who holds which study, who waits for it, and what each change causes.

Pure and synchronous (sans-IO): the lock manager actor feeds it requests with the current
time and turns what it returns - grants and refusals for waiting requests, bus events -
into replies and publications. Nothing here awaits, so a change is never interleaved
with another.

Queueing rules:
- Each study has a FIFO of waiting requests. A new request is granted at once only if
  nobody waits before it and it is compatible with the holders; otherwise it queues.
  That is what keeps a stream of shared requests from starving an exclusive one: once
  the exclusive request waits, later shared requests queue behind it.
- Migration requests queue ahead of every exclusive and shared request (after earlier
  migration requests).
- Whenever holders go (release, expiry, holder gone) the queue is served from its head
  for as long as the head is compatible - several shared requests in a row are granted
  together - and stops at the first that is not.
"""

import datetime as dt
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator

import attrs

from ...actors import ActorStopped
from .messages import LockAcquired, LockContended, LockExpiredEvent, LockForceUnlocked, LockReleased
from .types import (
    AlreadyLocked,
    InvalidLockType,
    InvalidToken,
    LockExpired,
    LockInfo,
    LockManagerConfig,
    LockManagerStats,
    LockNotFound,
    LockTimeout,
    LockToken,
    LockType,
    MaxSharedExceeded,
    PermissionDenied,
    ReleaseCause,
    UpgradeFailed,
    compatible,
)

REMEMBERED_EXPIRED_TOKENS = 4096  # to answer "expired" (-104) rather than "unknown" (-102)


@attrs.frozen
class Now:
    mono: float  # trio clock: deadlines and durations
    wall: dt.datetime  # what we tell people


@attrs.frozen(kw_only=True)
class Request:
    study_uid: str
    type: LockType
    reason: str
    holder: str
    owner: str | None  # actor path the lock's lifetime is linked to
    lifetime: float | None  # seconds; None = never expires
    request_id: str


@attrs.define(kw_only=True)
class Holding:
    token_id: str
    request: Request
    acquired: Now
    expires_mono: float | None
    expires_at: dt.datetime | None

    def expired(self, now: Now) -> bool:
        return self.expires_mono is not None and now.mono >= self.expires_mono

    def token(self) -> LockToken:
        r = self.request
        return LockToken(token_id=self.token_id, study_uid=r.study_uid, type=r.type, acquired_at=self.acquired.wall, expires_at=self.expires_at)


@attrs.define(eq=False, kw_only=True)
class Waiter:
    request: Request
    deadline: float
    ticket: object  # opaque to the table: the actor's pending reply


@attrs.define
class StudyLocks:
    holdings: dict[str, Holding] = attrs.field(factory=dict)
    waiters: list[Waiter] = attrs.field(factory=list)

    def queue_position(self, kind: LockType) -> int:
        """Where a new request of `kind` would queue (0 = head)."""
        if kind is LockType.MIGRATION:
            return sum(1 for w in self.waiters if w.request.type is LockType.MIGRATION)
        return len(self.waiters)


# Effects the actor carries out, in order.
@attrs.frozen
class Granted:
    ticket: object
    token: LockToken


@attrs.frozen
class Refused:
    ticket: object
    error: BaseException


@attrs.frozen
class Publish:
    event: object


Effect = Granted | Refused | Publish


class LockTable:
    def __init__(self, config: LockManagerConfig, new_token: Callable[[], str]) -> None:
        self.config = config
        self._new_token = new_token
        self._studies: dict[str, StudyLocks] = {}
        self._tokens: dict[str, str] = {}  # token -> study
        self._requests: dict[str, str | Waiter] = {}  # request id -> token or waiter
        self._expired_tokens: OrderedDict[str, None] = OrderedDict()
        self._stats = _Counters()

    # -- acquiring ---------------------------------------------------------------------------

    def request(
        self, request: Request, now: Now, wait: float, ticket: Callable[[], object], effects: list[Effect]
    ) -> LockToken | None:
        """Grant `request` now (its token), queue it for `wait` seconds (None), or raise.

        `ticket()` is called only when the request queues: it stands for the asker in the
        Granted / Refused effect that ends the wait."""
        study = self._studies.setdefault(request.study_uid, StudyLocks())
        self._expire(request.study_uid, study, now, effects)
        self._pump(request.study_uid, study, now, effects)  # expiry may have freed earlier waiters
        held = [h.request.type for h in study.holdings.values()]
        at_head = study.queue_position(request.type) == 0
        if at_head and compatible(request.type, held, self.config.max_shared_locks):
            return self._grant(request, now, effects).token()
        self._stats.contention += 1
        effects.append(Publish(LockContended(
            study_uid=request.study_uid, type=request.type, holder=request.holder, held=tuple(held), waits=wait > 0,
        )))
        if wait <= 0:
            self._drop_if_idle(request.study_uid)
            if at_head and request.type is LockType.SHARED and all(k is LockType.SHARED for k in held):
                raise MaxSharedExceeded(f"study {request.study_uid} already has {len(held)} shared holders (the maximum)")
            raise AlreadyLocked(f"study {request.study_uid} is locked ({_describe(held, study.waiters)})")
        waiter = Waiter(request=request, deadline=now.mono + wait, ticket=ticket())
        study.waiters.insert(study.queue_position(request.type), waiter)
        if request.request_id:
            self._requests[request.request_id] = waiter
        return None

    def _grant(self, request: Request, now: Now, effects: list[Effect]) -> Holding:
        token_id = self._new_token()
        lifetime = request.lifetime
        holding = Holding(
            token_id=token_id,
            request=request,
            acquired=now,
            expires_mono=now.mono + lifetime if lifetime else None,
            expires_at=now.wall + dt.timedelta(seconds=lifetime) if lifetime else None,
        )
        study = self._studies.setdefault(request.study_uid, StudyLocks())
        study.holdings[token_id] = holding
        self._tokens[token_id] = request.study_uid
        if request.request_id:
            self._requests[request.request_id] = token_id
        self._stats.acquisitions += 1
        effects.append(Publish(LockAcquired(info=self._info(holding, study, now))))
        return holding

    def _pump(self, study_uid: str, study: StudyLocks, now: Now, effects: list[Effect]) -> None:
        """Grant waiting requests from the head of the queue while they are compatible."""
        while study.waiters:
            head = study.waiters[0]
            held = [h.request.type for h in study.holdings.values()]
            if not compatible(head.request.type, held, self.config.max_shared_locks):
                return
            study.waiters.pop(0)
            holding = self._grant(head.request, now, effects)
            effects.append(Granted(head.ticket, holding.token()))

    # -- releasing ---------------------------------------------------------------------------

    def release_token(self, token_id: str, now: Now, effects: list[Effect], cause: ReleaseCause = ReleaseCause.UNLOCKED) -> None:
        study_uid = self._tokens.get(token_id)
        if study_uid is None:
            if token_id in self._expired_tokens:
                raise LockExpired(f"lock {_short(token_id)} expired before it was released")
            raise InvalidToken(f"no lock has token {_short(token_id)}")
        study = self._studies[study_uid]
        holding = study.holdings[token_id]
        if holding.expired(now):
            self._expire(study_uid, study, now, effects)
            self._pump(study_uid, study, now, effects)
            self._drop_if_idle(study_uid)
            raise LockExpired(f"lock {_short(token_id)} on study {study_uid} expired before it was released")
        self._release([holding], now, effects, cause)

    def release_holder(self, study_uid: str, holder: str, now: Now, effects: list[Effect]) -> int:
        study = self._live(study_uid, now, effects)
        mine = [h for h in study.holdings.values() if h.request.holder == holder] if study else []
        if not mine:
            raise LockNotFound(f"{holder!r} holds no lock on study {study_uid}")
        self._release(mine, now, effects, ReleaseCause.UNLOCKED)
        return len(mine)

    def force_release(self, study_uid: str, reason: str, by: str | None, now: Now, effects: list[Effect]) -> list[LockInfo]:
        if not self.config.allow_force_unlock:
            raise PermissionDenied("force unlock is not allowed by the configuration (allow_force_unlock)")
        study = self._live(study_uid, now, effects)
        if not study or not study.holdings:
            raise LockNotFound(f"study {study_uid} is not locked")
        holdings = list(study.holdings.values())
        infos = [self._info(h, study, now) for h in holdings]
        self._stats.forced += 1
        self._release(holdings, now, effects, ReleaseCause.FORCED, reason)
        effects.append(Publish(LockForceUnlocked(study_uid=study_uid, reason=reason, requested_by=by, released=tuple(infos))))
        return infos

    def release_all_by_holder(self, holder: str, now: Now, effects: list[Effect]) -> int:
        mine = [h for h in self._holdings() if h.request.holder == holder]
        self._release(mine, now, effects, ReleaseCause.UNLOCKED)
        return len(mine)

    def owner_gone(self, owner: str, now: Now, effects: list[Effect]) -> int:
        """The actor at `owner` stopped, crashed or restarted: its locks and requests go."""
        for study_uid, study in list(self._studies.items()):
            for waiter in [w for w in study.waiters if w.request.owner == owner]:
                self._remove_waiter(study, waiter)
                effects.append(Refused(waiter.ticket, ActorStopped(owner, "stopped while waiting for a lock")))
            self._pump(study_uid, study, now, effects)
            self._drop_if_idle(study_uid)
        mine = [h for h in self._holdings() if h.request.owner == owner]
        self._release(mine, now, effects, ReleaseCause.HOLDER_GONE)
        return len(mine)

    def owners(self) -> set[str]:
        return {h.request.owner for h in self._holdings() if h.request.owner is not None}

    def abandon(self, request_id: str, now: Now, effects: list[Effect]) -> int:
        entry = self._requests.pop(request_id, None)
        if isinstance(entry, Waiter):
            study = self._studies.get(entry.request.study_uid)
            if study is not None and entry in study.waiters:
                self._remove_waiter(study, entry)
                effects.append(Refused(entry.ticket, LockTimeout(f"lock request {request_id} was withdrawn")))
                self._pump(entry.request.study_uid, study, now, effects)
                self._drop_if_idle(entry.request.study_uid)
            return 0
        if isinstance(entry, str) and entry in self._tokens:
            holding = self._studies[self._tokens[entry]].holdings[entry]
            self._release([holding], now, effects, ReleaseCause.ABANDONED)
            return 1
        return 0

    def _release(self, holdings: list[Holding], now: Now, effects: list[Effect], cause: ReleaseCause, reason: str = "") -> None:
        touched: dict[str, StudyLocks] = {}
        for holding in holdings:
            study_uid = holding.request.study_uid
            study = self._studies[study_uid]
            info = self._info(holding, study, now)
            self._forget(holding, study)
            self._stats.ended(now.mono - holding.acquired.mono)
            self._stats.releases += 1
            effects.append(Publish(LockReleased(info=info, cause=cause, reason=reason)))
            touched[study_uid] = study
        for study_uid, study in touched.items():
            self._pump(study_uid, study, now, effects)
            self._drop_if_idle(study_uid)

    def _forget(self, holding: Holding, study: StudyLocks) -> None:
        del study.holdings[holding.token_id]
        del self._tokens[holding.token_id]
        if holding.request.request_id:
            self._requests.pop(holding.request.request_id, None)

    def _remove_waiter(self, study: StudyLocks, waiter: Waiter) -> None:
        study.waiters.remove(waiter)
        if waiter.request.request_id:
            self._requests.pop(waiter.request.request_id, None)

    # -- time --------------------------------------------------------------------------------

    def _expire(self, study_uid: str, study: StudyLocks, now: Now, effects: list[Effect]) -> int:
        expired = [h for h in study.holdings.values() if h.expired(now)]
        for holding in expired:
            info = self._info(holding, study, now)
            self._forget(holding, study)
            self._expired_tokens[holding.token_id] = None
            while len(self._expired_tokens) > REMEMBERED_EXPIRED_TOKENS:
                self._expired_tokens.popitem(last=False)
            self._stats.ended(now.mono - holding.acquired.mono)
            self._stats.expired += 1
            effects.append(Publish(LockExpiredEvent(info=info)))
        return len(expired)

    def tick(self, now: Now, effects: list[Effect]) -> None:
        """Time passed: refuse requests whose wait is over, serve queues freed by expiry."""
        for study_uid, study in list(self._studies.items()):
            if not study.waiters:
                continue
            # Serve what expiry freed first: a request whose wait ends at that very moment
            # gets the lock rather than a timeout.
            self._expire(study_uid, study, now, effects)
            self._pump(study_uid, study, now, effects)
            for waiter in [w for w in study.waiters if w.deadline <= now.mono]:
                self._remove_waiter(study, waiter)
                self._stats.timeouts += 1
                kind = waiter.request.type.value
                effects.append(Refused(waiter.ticket, LockTimeout(f"timed out waiting to lock study {study_uid} ({kind})")))
            self._pump(study_uid, study, now, effects)  # a timed-out head may have blocked others
            self._drop_if_idle(study_uid)

    def sweep(self, now: Now, effects: list[Effect]) -> int:
        """Remove every expired lock (the seed's cleanup_expired_locks)."""
        count = 0
        for study_uid, study in list(self._studies.items()):
            count += self._expire(study_uid, study, now, effects)
            self._pump(study_uid, study, now, effects)
            self._drop_if_idle(study_uid)
        return count

    def next_deadline(self) -> float:
        """When `tick` has something to do: a wait running out, or an expiry someone waits on."""
        deadline = math.inf
        for study in self._studies.values():
            if study.waiters:
                deadline = min(deadline, min(w.deadline for w in study.waiters))
                for holding in study.holdings.values():
                    if holding.expires_mono is not None:
                        deadline = min(deadline, holding.expires_mono)
        return deadline

    # -- refresh and upgrade -----------------------------------------------------------------

    def _holding(self, token_id: str, now: Now, effects: list[Effect]) -> Holding:
        study_uid = self._tokens.get(token_id)
        if study_uid is not None:
            study = self._studies[study_uid]
            self._expire(study_uid, study, now, effects)
            if token_id in study.holdings:
                return study.holdings[token_id]
            self._pump(study_uid, study, now, effects)
            self._drop_if_idle(study_uid)
        if token_id in self._expired_tokens:
            raise LockExpired(f"lock {_short(token_id)} has expired")
        raise InvalidToken(f"no lock has token {_short(token_id)}")

    def refresh(self, token_id: str, extension: float | None, now: Now, effects: list[Effect]) -> LockToken:
        holding = self._holding(token_id, now, effects)
        lifetime = extension if extension is not None else (holding.request.lifetime or self.config.default_timeout)
        if lifetime and lifetime > 0:
            holding.expires_mono = now.mono + lifetime
            holding.expires_at = now.wall + dt.timedelta(seconds=lifetime)
        else:
            holding.expires_mono = holding.expires_at = None
        return holding.token()

    def upgrade(self, token_id: str, to: LockType, now: Now, effects: list[Effect]) -> LockToken:
        holding = self._holding(token_id, now, effects)
        if holding.request.type is not LockType.SHARED or to is LockType.SHARED:
            raise InvalidLockType(f"only a shared lock can be upgraded, to exclusive or migration (not {holding.request.type.value} to {to.value})")
        study = self._studies[holding.request.study_uid]
        if len(study.holdings) > 1:
            raise UpgradeFailed(f"study {holding.request.study_uid} has {len(study.holdings) - 1} other holder(s)")
        holding.request = attrs.evolve(holding.request, type=to)
        return holding.token()

    # -- queries -----------------------------------------------------------------------------

    def _holdings(self) -> Iterator[Holding]:
        for study in list(self._studies.values()):
            yield from list(study.holdings.values())

    def _live(self, study_uid: str, now: Now, effects: list[Effect]) -> StudyLocks | None:
        study = self._studies.get(study_uid)
        if study is not None:
            self._expire(study_uid, study, now, effects)
            self._pump(study_uid, study, now, effects)
            self._drop_if_idle(study_uid)
        return self._studies.get(study_uid)

    def _info(self, holding: Holding, study: StudyLocks, now: Now) -> LockInfo:
        r = holding.request
        return LockInfo(
            study_uid=r.study_uid,
            type=r.type,
            reason=r.reason,
            holder=r.holder,
            token_id=holding.token_id,
            acquired_at=holding.acquired.wall,
            expires_at=holding.expires_at,
            shared_count=len(study.holdings),
            held_for=round(now.mono - holding.acquired.mono, 6),
            expired=holding.expired(now),
            owner=r.owner,
        )

    def infos(self, now: Now, keep: Callable[[Holding], bool] = lambda h: True) -> tuple[LockInfo, ...]:
        return tuple(
            self._info(h, self._studies[h.request.study_uid], now) for h in self._holdings() if keep(h)
        )

    def is_locked(self, study_uid: str, kind: LockType | None, now: Now) -> bool:
        study = self._studies.get(study_uid)
        if study is None:
            return False
        return any(not h.expired(now) and (kind is None or h.request.type is kind) for h in study.holdings.values())

    def study_info(self, study_uid: str, now: Now) -> LockInfo | None:
        study = self._studies.get(study_uid)
        live = [h for h in study.holdings.values() if not h.expired(now)] if study else []
        return self._info(live[0], study, now) if live else None  # type: ignore[arg-type]

    def token_info(self, token_id: str, now: Now) -> LockInfo | None:
        study_uid = self._tokens.get(token_id)
        if study_uid is None:
            return None
        study = self._studies[study_uid]
        return self._info(study.holdings[token_id], study, now)

    def stats(self) -> LockManagerStats:
        holdings = list(self._holdings())
        by_type = {kind: sum(1 for h in holdings if h.request.type is kind) for kind in LockType}
        s = self._stats
        return LockManagerStats(
            active_locks=len(holdings),
            exclusive_locks=by_type[LockType.EXCLUSIVE],
            shared_locks=by_type[LockType.SHARED],
            migration_locks=by_type[LockType.MIGRATION],
            total_acquisitions=s.acquisitions,
            total_releases=s.releases,
            timeout_count=s.timeouts,
            force_unlock_count=s.forced,
            avg_lock_duration=round(s.duration_total / s.ended_count, 6) if s.ended_count else 0.0,
            max_lock_duration=round(s.duration_max, 6),
            contention_count=s.contention,
            expired_count=s.expired,
            waiting_requests=sum(len(study.waiters) for study in self._studies.values()),
        )

    def reset_stats(self) -> None:
        self._stats = _Counters()

    # -- bookkeeping -------------------------------------------------------------------------

    def _drop_if_idle(self, study_uid: str) -> None:
        study = self._studies.get(study_uid)
        if study is not None and not study.holdings and not study.waiters:
            del self._studies[study_uid]

    def check_invariants(self) -> None:
        """Raise AssertionError if the table is inconsistent (for tests)."""
        limit = self.config.max_shared_locks
        for study_uid, study in self._studies.items():
            kinds = [h.request.type for h in study.holdings.values()]
            assert study.holdings or study.waiters, f"{study_uid}: empty entry kept"
            if any(k is not LockType.SHARED for k in kinds):
                assert len(kinds) == 1, f"{study_uid}: exclusive lock with other holders {kinds}"
            assert len(kinds) <= limit, f"{study_uid}: {len(kinds)} shared holders > {limit}"
            if study.waiters:
                head = study.waiters[0].request.type
                assert not compatible(head, kinds, limit), f"{study_uid}: grantable request left waiting"
            migrations = [w.request.type is LockType.MIGRATION for w in study.waiters]
            assert migrations == sorted(migrations, reverse=True), f"{study_uid}: migration queued behind others"
            for token_id in study.holdings:
                assert self._tokens[token_id] == study_uid


@attrs.define
class _Counters:
    acquisitions: int = 0
    releases: int = 0
    timeouts: int = 0
    forced: int = 0
    contention: int = 0
    expired: int = 0
    ended_count: int = 0
    duration_total: float = 0.0
    duration_max: float = 0.0

    def ended(self, duration: float) -> None:
        self.ended_count += 1
        self.duration_total += duration
        self.duration_max = max(self.duration_max, duration)


def _short(token_id: str) -> str:
    return token_id[:8] + "..." if len(token_id) > 12 else token_id


def _describe(held: list[LockType], waiters: list[Waiter]) -> str:
    kinds = ", ".join(sorted({k.value for k in held})) or "nothing held"
    return f"{len(held)} holder(s): {kinds}; {len(waiters)} waiting"
