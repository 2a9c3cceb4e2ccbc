"""`study_lock`: hold a study lock for the duration of an `async with` block.

    async with study_lock(locks, study_uid, LockType.EXCLUSIVE, reason="delete") as token:
        ...  # the study is ours here

The lock is released when the block ends, however it ends: normally, by an exception,
or by cancellation (the release is shielded). If the block is cancelled while still
waiting for the lock, the request is withdrawn - or the lock released if it was granted
in that very moment - so nothing stays locked behind a caller that left.

If the body finished normally but the lock expired (or the lock manager restarted)
while it ran, leaving the block raises LockExpired / InvalidToken: the work was done
without the protection it asked for, and the caller should know. When the body itself
raised, its exception wins. A caller that has no use for that news (a store that has
already decided its answer) passes ``confirm_release=False``: the release is then sent
without waiting for the manager, and a problem with it is only logged by the manager.
"""

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ...actors import ActorRef, ActorStopped, AskTimeout, MailboxOverrun
from .messages import AbandonLockRequest, Lock, TryLock, Unlock
from .types import LockError, LockToken, LockType

RELEASE_GRACE = 10.0  # seconds a release may take when the caller is being cancelled


@asynccontextmanager
async def study_lock(
    locks: ActorRef,
    study_uid: str,
    type: LockType = LockType.EXCLUSIVE,
    *,
    reason: str = "",
    holder: str = "",
    timeout: float | None = None,
    wait: float | None = None,
    try_only: bool = False,
    confirm_release: bool = True,
) -> AsyncIterator[LockToken]:
    """Lock `study_uid` through the lock manager `locks` for the block.

    `timeout` is the lock's lifetime, `wait` how long to wait for it (defaults: the
    manager's default_timeout and acquire_wait_timeout); `try_only` never waits.
    """
    request_id = secrets.token_hex(12)
    request: Lock | TryLock
    if try_only:
        request = TryLock(study_uid=study_uid, type=type, reason=reason, holder=holder, timeout=timeout, request_id=request_id)
    else:
        request = Lock(study_uid=study_uid, type=type, reason=reason, holder=holder, timeout=timeout, wait=wait, request_id=request_id)
    try:
        # The manager bounds the wait; our own ask timeout only guards against a wedged one.
        ask_timeout = None if wait is None else wait + 30.0
        token = await locks.ask(request, timeout=ask_timeout)
    except (trio.Cancelled, AskTimeout):
        await _withdraw(locks, request_id)
        raise
    body_failed = False
    try:
        yield token
    except BaseException:
        body_failed = True
        raise
    finally:
        if confirm_release:
            await _release(locks, token, quiet=body_failed)
        else:
            await _send_release(locks, token)


async def _withdraw(locks: ActorRef, request_id: str) -> None:
    with trio.move_on_after(RELEASE_GRACE, shield=True):
        try:
            await locks.ask(AbandonLockRequest(request_id=request_id), timeout=None)
        except ActorStopped:
            pass  # a stopped manager holds nothing any more


async def _send_release(locks: ActorRef, token: LockToken) -> None:
    release = Unlock(token_id=token.token_id)
    try:
        try:
            locks.send_nowait(release)  # the usual case: room in the mailbox, no task switch
        except MailboxOverrun:
            with trio.move_on_after(RELEASE_GRACE, shield=True):
                await locks.send(release)
    except ActorStopped:
        pass  # a stopped manager holds nothing any more


async def _release(locks: ActorRef, token: LockToken, *, quiet: bool) -> None:
    with trio.move_on_after(RELEASE_GRACE, shield=True):
        try:
            await locks.ask(Unlock(token_id=token.token_id), timeout=None)
        except ActorStopped:
            pass
        except LockError:
            if not quiet:
                raise
