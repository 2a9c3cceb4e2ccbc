"""The lock manager's messages: requests, replies and events (tags `locks.*`).

Requests mirror the seed's study_lock_manager methods (DES-WKF-005, 6.1.4); each answers
with a reply message or raises a LockError subclass carrying the seed's error code.
"""

import attrs

from ...actors import message
from .types import LockInfo, LockManagerConfig, LockType, ReleaseCause

def _seconds(_: object, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not value >= 0:
        raise ValueError(f"{attribute.name} must be a number of seconds >= 0, got {value!r}")


def _study(_: object, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty study instance UID")


# -- acquiring -------------------------------------------------------------------------------


@message("locks.lock")
class Lock:
    """Acquire a lock, waiting up to `wait` seconds (default: acquire_wait_timeout) for
    conflicting locks to go, in arrival order (queued migration requests first).

    `timeout` is the lock's lifetime (None: default_timeout; 0: never expires). `holder`
    defaults to the asking actor's path. When asked from inside an actor and `link` is
    true, the lock is released if that actor stops, crashes or restarts. `request_id`
    lets the asker withdraw the request if it gives up (AbandonLockRequest). Answers
    LockToken; LockTimeout (-103) if the wait ran out.
    """

    study_uid: str = attrs.field(validator=_study)
    type: LockType = LockType.EXCLUSIVE
    reason: str = ""
    holder: str = ""
    timeout: float | None = attrs.field(default=None, validator=_seconds)
    wait: float | None = attrs.field(default=None, validator=_seconds)
    link: bool = True
    request_id: str = ""


@message("locks.try-lock")
class TryLock:
    """Acquire a lock only if that is possible right now: AlreadyLocked (-100) or
    MaxSharedExceeded (-107) otherwise. It never jumps the queue of waiting requests."""

    study_uid: str = attrs.field(validator=_study)
    type: LockType = LockType.EXCLUSIVE
    reason: str = ""
    holder: str = ""
    timeout: float | None = attrs.field(default=None, validator=_seconds)
    link: bool = True
    request_id: str = ""


@message("locks.abandon")
class AbandonLockRequest:
    """The asker of the Lock with this `request_id` gave up: drop it from the queue, or
    release the lock if it was granted meanwhile. Answers Released."""

    request_id: str


@message("locks.refresh")
class RefreshLock:
    """Push the expiry `extension` seconds from now (None: the lock's own lifetime, or
    default_timeout). Answers the updated LockToken; LockExpired (-104) if too late."""

    token_id: str
    extension: float | None = attrs.field(default=None, validator=_seconds)


@message("locks.upgrade")
class UpgradeLock:
    """Turn a shared lock into an exclusive or migration one, if its holder is the only
    holder of the study; never waits. UpgradeFailed (-108) when others hold the study,
    InvalidLockType (-106) when the lock is not shared or `to` is SHARED."""

    token_id: str
    to: LockType = LockType.EXCLUSIVE


# -- releasing -------------------------------------------------------------------------------


@message("locks.unlock")
class Unlock:
    """Release the lock with this token: InvalidToken (-102) if unknown, LockExpired (-104)
    if it expired before. Other holders of a shared study keep theirs."""

    token_id: str


@message("locks.unlock-holder")
class UnlockHolder:
    """Release every lock `holder` has on `study_uid`: LockNotFound (-101) if none."""

    study_uid: str
    holder: str


@message("locks.force-unlock")
class ForceUnlock:
    """Release every lock on the study, whoever holds it (audited). PermissionDenied
    (-105) unless allow_force_unlock; LockNotFound (-101) if the study is not locked."""

    study_uid: str
    reason: str = ""


@message("locks.unlock-all-by-holder")
class UnlockAllByHolder:
    holder: str


@message("locks.released")
class Released:
    """How many locks an unlock released."""

    count: int


# -- status and queries ----------------------------------------------------------------------


@message("locks.is-locked")
class IsLocked:
    """Is the study locked (by a lock of `type`, if given)? Expired locks do not count."""

    study_uid: str
    type: LockType | None = None


@message("locks.status")
class LockStatus:
    locked: bool


@message("locks.get-info")
class GetLockInfo:
    """The study's lock (its oldest holder, with shared_count holders in all)."""

    study_uid: str


@message("locks.get-info-by-token")
class GetLockInfoByToken:
    token_id: str


@message("locks.info-reply")
class LockInfoReply:
    info: LockInfo | None


@message("locks.validate")
class ValidateToken:
    token_id: str


@message("locks.token-valid")
class TokenValid:
    valid: bool


@message("locks.get-all")
class GetAllLocks:
    pass


@message("locks.get-by-holder")
class GetLocksByHolder:
    holder: str


@message("locks.get-by-type")
class GetLocksByType:
    type: LockType


@message("locks.get-expired")
class GetExpiredLocks:
    """Locks past their expiry that the periodic cleanup has not swept yet."""


@message("locks.infos")
class LockInfos:
    locks: tuple[LockInfo, ...]


# -- maintenance -----------------------------------------------------------------------------


@message("locks.cleanup")
class CleanupExpiredLocks:
    """Sweep expired locks now; answers Released."""


@message("locks.get-stats")
class GetLockStats:
    pass


@message("locks.reset-stats")
class ResetLockStats:
    pass


@message("locks.get-config")
class GetLockConfig:
    pass


@message("locks.set-config")
class SetLockConfig:
    config: LockManagerConfig


# -- events on the node's bus ----------------------------------------------------------------


@message("locks.acquired")
class LockAcquired:
    info: LockInfo


@message("locks.released-event")
class LockReleased:
    info: LockInfo
    cause: ReleaseCause
    reason: str = ""


@message("locks.contended")
class LockContended:
    """A request found its study locked: it waits (`waits`), or is refused at once."""

    study_uid: str
    type: LockType
    holder: str
    held: tuple[LockType, ...]
    waits: bool


@message("locks.expired")
class LockExpiredEvent:
    info: LockInfo


@message("locks.force-unlocked")
class LockForceUnlocked:
    """Audit record of a force_unlock: who asked, why, what it released."""

    study_uid: str
    reason: str
    requested_by: str | None
    released: tuple[LockInfo, ...]
