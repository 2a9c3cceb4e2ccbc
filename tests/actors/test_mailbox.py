import pytest
import trio
import trio.testing

from triopacs.actors import (
    ActorCrashed,
    ActorSpec,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    MailboxOverrun,
    UnknownMessage,
    open_supervisor,
)

from .toy import Add, Counter, GetTotal, Overdrawn, Refuse, StopNow, Total, WaitForever


async def test_send_waits_while_the_mailbox_is_full(autojump_clock):
    system = ActorSystem()
    async with open_supervisor(system, "/n") as root:
        busy = await root.start(ActorSpec(name="busy", actor=Counter, capacity=2))
        await busy.send(WaitForever())  # the actor is now stuck on this one
        await trio.testing.wait_all_tasks_blocked()
        await busy.send(Add())
        await busy.send(Add())
        assert busy.statistics().depth == 2
        with trio.move_on_after(60) as waited:
            await busy.send(Add())
        assert waited.cancelled_caught, "a full mailbox must hold the sender back"


async def test_send_nowait_overrun_is_typed(autojump_clock):
    system = ActorSystem()
    async with open_supervisor(system, "/n") as root:
        busy = await root.start(ActorSpec(name="busy", actor=Counter, capacity=1))
        await busy.send(WaitForever())
        await trio.testing.wait_all_tasks_blocked()
        busy.send_nowait(Add())
        with pytest.raises(MailboxOverrun) as info:
            busy.send_nowait(Add())
        assert info.value.capacity == 1 and info.value.path == "/n/busy"


async def test_unknown_message_is_refused_at_the_sender(autojump_clock):
    system = ActorSystem()
    async with open_supervisor(system, "/n") as root:
        counter = await root.start(ActorSpec(name="c", actor=Counter))
        with pytest.raises(UnknownMessage):
            await counter.send(Total(value=1))
        assert counter.statistics().delivered == 0


async def test_ask_answers_and_statistics_count(autojump_clock):
    system = ActorSystem()
    async with open_supervisor(system, "/n") as root:
        counter = await root.start(ActorSpec(name="c", actor=Counter, args={"start": 10}))
        await counter.send(Add(amount=3))
        assert await counter.ask(GetTotal()) == Total(value=13)
        with pytest.raises(Overdrawn):
            await counter.ask(Refuse())
        # a refusal is an answer, not a crash
        assert await counter.ask(GetTotal()) == Total(value=13)
        stats = counter.statistics()
        assert (stats.delivered, stats.failed, stats.restarts, stats.capacity) == (4, 1, 0, 64)


async def test_ask_timeout(autojump_clock):
    system = ActorSystem()
    async with open_supervisor(system, "/n") as root:
        counter = await root.start(ActorSpec(name="c", actor=Counter))
        await counter.send(WaitForever())
        start = trio.current_time()
        with pytest.raises(AskTimeout) as info:
            await counter.ask(GetTotal(), timeout=2.5)
        assert trio.current_time() - start == pytest.approx(2.5)
        assert info.value.timeout == 2.5


async def test_ask_to_a_stopped_actor(autojump_clock):
    system = ActorSystem()
    async with open_supervisor(system, "/n") as root:
        counter = await root.start(ActorSpec(name="c", actor=Counter))
        await counter.send(StopNow())
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(ActorStopped):
            await counter.ask(GetTotal())


async def test_queued_asks_fail_when_the_actor_goes_away(autojump_clock):
    system = ActorSystem()
    outcomes = []

    async def ask_and_note(ref):
        try:
            await ref.ask(GetTotal())
            outcomes.append("answered")
        except ActorStopped as exc:
            outcomes.append(type(exc).__name__)

    async with open_supervisor(system, "/n") as root:
        counter = await root.start(ActorSpec(name="c", actor=Counter))
        await counter.send(StopNow())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_and_note, counter)
    assert outcomes == ["ActorStopped"]


async def test_ask_that_crashes_reports_the_cause(autojump_clock):
    system = ActorSystem()
    async with open_supervisor(system, "/n") as root:
        counter = await root.start(ActorSpec(name="c", actor=Counter))
        from .toy import Fail

        with pytest.raises(ActorCrashed) as info:
            await counter.ask(Fail(reason="disk on fire"))
        assert isinstance(info.value.cause, RuntimeError)
        assert "disk on fire" in str(info.value)
