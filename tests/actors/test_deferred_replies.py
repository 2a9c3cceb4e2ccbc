"""Replies an actor takes over with ctx.defer_reply(): answered later, then forgotten.

An actor that answers asks from a background task (the index answering C-FIND pages and
stores) must not keep what it answered: once the asker has its answer, nothing of it
stays alive in the runtime. Pending ones still fail when the actor ends.
"""

import gc
import weakref

import pytest
import trio

from triopacs.actors import ActorCrashed, ActorSpec, ActorStopped, ActorSystem, Restart, message, open_supervisor
from triopacs.actors.runtime.actor import Actor


@message("deferred-test.ask")
class AskLater:
    pass


@message("deferred-test.answer-all")
class AnswerAll:
    pass


@message("deferred-test.ask-and-answer-now")
class AskAndAnswerNow:
    pass


@message("deferred-test.crash")
class CrashNow:
    pass


@message("deferred-test.stop")
class StopNow:
    pass


@message("deferred-test.answer")
class Answer:
    payload: bytes


class Postponer(Actor):
    """Defers every AskLater; AnswerAll answers those waiting from a background task."""

    accepts = (AskLater, AnswerAll, AskAndAnswerNow, CrashNow, StopNow)

    def __init__(self) -> None:
        self.waiting = []

    async def handle(self, message):
        match message:
            case AskLater():
                self.waiting.append(self.ctx.defer_reply())
            case AnswerAll():
                waiting, self.waiting = self.waiting, []
                self.ctx.nursery.start_soon(self._answer, waiting)
            case AskAndAnswerNow():
                self.ctx.defer_reply().send(Answer(payload=b"now"))
                return Answer(payload=b"ignored: the deferred reply was answered")
            case CrashNow():
                raise RuntimeError("crash with asks pending")
            case StopNow():
                self.ctx.stop()

    async def _answer(self, replies) -> None:
        for reply in replies:
            reply.send(Answer(payload=bytes(1000)))


async def ask_all_later(ref, count: int) -> list[weakref.ref]:
    """Send `count` asks the actor defers, have them answered, keep weak refs to the answers."""
    answers = []
    async with trio.open_nursery() as nursery:

        async def ask() -> None:
            answers.append(weakref.ref(await ref.ask(AskLater())))

        for _ in range(count):
            nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        await ref.send(AnswerAll())
    return answers


async def test_answered_deferred_replies_are_not_kept():
    async with open_supervisor(ActorSystem(), "/t") as root:
        ref = await root.start(ActorSpec(name="p", actor=Postponer))
        answers = await ask_all_later(ref, 20)
        assert len(answers) == 20
        gc.collect()
        assert [answer for answer in answers if answer() is not None] == []


async def test_a_deferred_reply_answered_inside_handle_is_answered_once():
    async with open_supervisor(ActorSystem(), "/t") as root:
        ref = await root.start(ActorSpec(name="p", actor=Postponer))
        assert (await ref.ask(AskAndAnswerNow())).payload == b"now"
        answers = await ask_all_later(ref, 3)  # the actor is still serving
        assert len(answers) == 3


@pytest.mark.parametrize("ending", ["crash", "stop"])
async def test_pending_deferred_replies_fail_when_the_actor_ends(ending):
    outcomes = []
    async with open_supervisor(ActorSystem(), "/t") as root:
        ref = await root.start(ActorSpec(name="p", actor=Postponer, restart=Restart.NEVER))
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                try:
                    await ref.ask(AskLater())
                except (ActorCrashed, ActorStopped) as error:
                    outcomes.append(type(error))

            for _ in range(3):
                nursery.start_soon(ask)
            await trio.testing.wait_all_tasks_blocked()
            if ending == "crash":
                with pytest.raises(ActorCrashed):
                    await ref.ask(CrashNow())
            else:
                await ref.send(StopNow())
    expected = ActorCrashed if ending == "crash" else ActorStopped
    assert outcomes == [expected] * 3
