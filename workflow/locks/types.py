"""Study locks: types, tokens, configuration, statistics and errors (seed DES-WKF-005).

Compatibility (seed 6.1.6): a shared lock coexists with other shared locks, up to
`max_shared_locks` holders; an exclusive or a migration lock coexists with nothing.
Migration locks have the highest priority: a queued migration request is granted before
any queued exclusive or shared request (seed 6.1.5).
"""

import datetime as dt
import enum
import math
from collections.abc import Iterable

import attrs

from ...actors import ReplyError, message


class LockType(enum.Enum):
    EXCLUSIVE = "exclusive"  # no other holder at all (modifications, deletions)
    SHARED = "shared"  # other shared holders allowed (reads)
    MIGRATION = "migration"  # like exclusive, and served first (HSM tier moves)


def compatible(wanted: LockType, held: Iterable[LockType], max_shared: int) -> bool:
    """May a `wanted` lock be granted next to the locks `held` on the same study?"""
    held = list(held)
    if not held:
        return True
    if wanted is not LockType.SHARED:
        return False
    return all(kind is LockType.SHARED for kind in held) and len(held) < max_shared


class ReleaseCause(enum.Enum):
    UNLOCKED = "unlocked"  # by token or by study and holder
    FORCED = "forced"  # force_unlock by an administrator
    HOLDER_GONE = "holder-gone"  # the holding actor stopped, crashed or restarted
    ABANDONED = "abandoned"  # the requester gave up (cancelled) right as it was granted


@attrs.frozen(kw_only=True)
class LockManagerConfig:
    """The seed's study_lock_manager_config; durations in seconds."""

    default_timeout: float = 0.0  # lock lifetime when the request names none; 0 = never expires
    acquire_wait_timeout: float = 5.0  # how long `Lock` waits for a conflicting lock to go
    cleanup_interval: float = 60.0  # how often expired locks are swept
    auto_cleanup: bool = True
    max_shared_locks: int = 100  # shared holders of one study at once
    allow_force_unlock: bool = True

    def problems(self) -> str | None:
        """What is wrong with these settings, if anything."""
        for name in ("default_timeout", "acquire_wait_timeout", "cleanup_interval"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                return f"{name} must be a finite number of seconds >= 0, got {value!r}"
        if self.cleanup_interval == 0:
            return "cleanup_interval must be > 0"
        if not isinstance(self.max_shared_locks, int) or self.max_shared_locks < 1:
            return f"max_shared_locks must be a whole number >= 1, got {self.max_shared_locks!r}"
        return None


@message("locks.token")
class LockToken:
    """Proof of holding a lock: present `token_id` to unlock or refresh it."""

    token_id: str
    study_uid: str
    type: LockType
    acquired_at: dt.datetime
    expires_at: dt.datetime | None = None

    def is_expired(self, now: dt.datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def remaining_time(self, now: dt.datetime) -> float | None:
        """Seconds left before expiry (0 when expired); None when it never expires."""
        if self.expires_at is None:
            return None
        return max(0.0, (self.expires_at - now).total_seconds())


@message("locks.info")
class LockInfo:
    """One holder's lock on one study, as seen when it was asked for."""

    study_uid: str
    type: LockType
    reason: str
    holder: str
    token_id: str
    acquired_at: dt.datetime
    expires_at: dt.datetime | None
    shared_count: int  # holders of this study at that moment
    held_for: float  # seconds held so far (the seed's duration())
    expired: bool = False
    owner: str | None = None  # the actor whose lifetime the lock is linked to

    def duration(self) -> float:
        return self.held_for

    def is_expired(self) -> bool:
        return self.expired


@message("locks.stats")
class LockManagerStats:
    """The seed's lock_manager_stats (durations in seconds) plus the waiting queue."""

    active_locks: int = 0
    exclusive_locks: int = 0
    shared_locks: int = 0
    migration_locks: int = 0
    total_acquisitions: int = 0
    total_releases: int = 0
    timeout_count: int = 0
    force_unlock_count: int = 0
    avg_lock_duration: float = 0.0
    max_lock_duration: float = 0.0
    contention_count: int = 0  # requests that found their study locked
    expired_count: int = 0
    waiting_requests: int = 0


class LockError(ReplyError):
    """A lock operation refused; `code` is the seed's lock_error value (-100..-108)."""

    code: int = 0

    def __init__(self, message: str) -> None:
        super().__init__(message)


class AlreadyLocked(LockError):
    code = -100


class LockNotFound(LockError):
    code = -101


class InvalidToken(LockError):
    code = -102


class LockTimeout(LockError):
    code = -103


class LockExpired(LockError):
    code = -104


class PermissionDenied(LockError):
    code = -105


class InvalidLockType(LockError):
    code = -106


class MaxSharedExceeded(LockError):
    code = -107


class UpgradeFailed(LockError):
    code = -108


class InvalidLockConfig(ReplyError):
    """SetLockConfig with settings that make no sense (not a lock operation: no code)."""


LOCK_ERRORS: dict[int, type[LockError]] = {
    cls.code: cls
    for cls in (
        AlreadyLocked,
        LockNotFound,
        InvalidToken,
        LockTimeout,
        LockExpired,
        PermissionDenied,
        InvalidLockType,
        MaxSharedExceeded,
        UpgradeFailed,
    )
}
