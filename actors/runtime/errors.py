"""Errors of the actor runtime.

Closed vs broken, as in trio: `ActorStopped` means the actor is gone (shut down, crashed
for good, or its supervisor gave up); `MailboxOverrun` and `AskTimeout` mean it is alive
but could not take or answer the message in time.
"""

from typing import TypeVar


class ActorError(Exception):
    """Base of every runtime error."""


class ReplyError(Exception):
    """Base for expected failures an actor answers an ask with.

    Raise a subclass from `handle()`: the asker gets this very exception and the actor
    keeps running. Any other exception is a crash and goes to the supervisor.
    """


class UnknownMessage(ActorError, TypeError):
    def __init__(self, path: str, message: object) -> None:
        super().__init__(f"{path} does not accept {type(message).__qualname__}")
        self.path = path
        self.message = message


class MailboxOverrun(ActorError):
    def __init__(self, path: str, capacity: int) -> None:
        super().__init__(f"mailbox of {path} is full ({capacity} messages)")
        self.path = path
        self.capacity = capacity


class AskTimeout(ActorError):
    def __init__(self, path: str, message: object, timeout: float) -> None:
        super().__init__(f"{path} did not answer {type(message).__qualname__} within {timeout}s")
        self.path = path
        self.message = message
        self.timeout = timeout


class ActorStopped(ActorError):
    def __init__(self, path: str, reason: str = "stopped") -> None:
        super().__init__(f"{path} {reason}")
        self.path = path


class ActorCrashed(ActorStopped):
    """The actor failed while handling the message; the cause is attached."""

    def __init__(self, path: str, cause: BaseException) -> None:
        super().__init__(path, f"crashed: {type(cause).__name__}: {cause}")
        self.cause = cause


class Escalation(ActorError):
    """A supervisor gave up: a child failed more often than its restart policy allows."""

    def __init__(self, path: str, child: str, cause: BaseException) -> None:
        super().__init__(f"{path} gave up after repeated failures of {child}: {cause!r}")
        self.path = path
        self.child = child
        self.cause = cause


E = TypeVar("E", bound=BaseException)


def first_of(error: BaseException, kind: type[E]) -> E | None:
    """`error` if it is a `kind`, else the first `kind` inside it (Trio wraps what a
    nursery's task raised in exception groups), else None."""
    if isinstance(error, kind):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = first_of(inner, kind)
            if found is not None:
                return found
    return None
