"""Actors and fixtures for the lock manager tests: a lock holder that can crash or quit."""

import datetime as dt
from contextlib import asynccontextmanager

from triopacs.actors import Actor, ActorSpec, ActorSystem, RestartPolicy, message, open_supervisor
from triopacs.workflow import Lock, LockManagerConfig, LockType, StudyLockManager

START = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.timezone.utc)
LOCKS = "/t/locks"


@message("test-workflow.grab")
class Grab:
    study_uid: str
    type: LockType = LockType.EXCLUSIVE
    link: bool = True


@message("test-workflow.crash")
class Crash:
    pass


@message("test-workflow.quit")
class Quit:
    pass


class LockHolder(Actor):
    """Takes locks on request and keeps their tokens in its state, as a real user would."""

    accepts = (Grab, Crash, Quit)

    def __init__(self, locks: str = LOCKS) -> None:
        self.locks = locks
        self.tokens: list = []

    async def handle(self, message):
        match message:
            case Grab(study_uid=study_uid, type=kind, link=link):
                token = await self.ctx.lookup(self.locks).ask(Lock(study_uid=study_uid, type=kind, reason="holder test", link=link))
                self.tokens.append(token)
                return token
            case Crash():
                raise RuntimeError("holder crashed on purpose")
            case Quit():
                self.ctx.stop()


@asynccontextmanager
async def lock_node(system: ActorSystem | None = None, **config):
    """A supervisor /t running a lock manager at /t/locks; yields (root, ref, manager)."""
    system = system if system is not None else ActorSystem()
    made: list[StudyLockManager] = []

    def build() -> StudyLockManager:
        made.append(StudyLockManager(config=LockManagerConfig(**config), token_seed=1, clock_start=START))
        return made[-1]

    policy = RestartPolicy(max_restarts=10, within=60.0)
    async with open_supervisor(system, "/t", policy) as root:
        ref = await root.start(ActorSpec(name="locks", actor=build))
        yield root, ref, made[-1]
