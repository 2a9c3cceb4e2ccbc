import pytest
import trio
import trio.testing

from triopacs.actors import (
    ActorCrashed,
    ActorFailed,
    ActorRestarted,
    ActorSpec,
    ActorStopped,
    ActorSystem,
    Escalation,
    Restart,
    RestartPolicy,
    Strategy,
    SupervisorEscalated,
    SupervisorSpec,
    open_supervisor,
)

from .toy import Add, Counter, Fail, FailsToStart, GetTotal, StopNow, Total


async def crash(ref) -> None:
    with pytest.raises(ActorCrashed):
        await ref.ask(Fail())


async def next_event(subscription, kind, **fields):
    """Wait for the next event of `kind` whose fields match."""
    async for event in subscription:
        if isinstance(event, kind) and all(getattr(event, k) == v for k, v in fields.items()):
            return event


async def test_one_for_one_restarts_only_the_failed_child(autojump_clock):
    system = ActorSystem()
    async with open_supervisor(system, "/n") as root:
        a = await root.start(ActorSpec(name="a", actor=Counter))
        b = await root.start(ActorSpec(name="b", actor=Counter))
        await a.send(Add(amount=5))
        await b.send(Add(amount=7))
        await crash(a)
        # a came back with fresh state through the same ref; b never noticed.
        assert await a.ask(GetTotal()) == Total(value=0)
        assert await b.ask(GetTotal()) == Total(value=7)
        assert a.statistics().restarts == 1
        assert b.statistics().restarts == 0


async def test_one_for_all_restarts_every_sibling(autojump_clock):
    system = ActorSystem()
    policy = RestartPolicy(strategy=Strategy.ONE_FOR_ALL)
    with system.bus.subscribe(ActorRestarted) as restarts:
        async with open_supervisor(system, "/n", policy) as root:
            a = await root.start(ActorSpec(name="a", actor=Counter))
            b = await root.start(ActorSpec(name="b", actor=Counter))
            await b.send(Add(amount=7))
            await crash(a)
            await next_event(restarts, ActorRestarted, path="/n/b")
            assert await b.ask(GetTotal()) == Total(value=0)
            assert (a.statistics().restarts, b.statistics().restarts) == (1, 1)


async def test_intensity_exceeded_escalates_to_the_parent(autojump_clock):
    system = ActorSystem()
    inner = SupervisorSpec(
        name="inner",
        policy=RestartPolicy(max_restarts=2, within=10.0),
        children=[ActorSpec(name="worker", actor=Counter)],
    )
    with system.bus.subscribe(SupervisorEscalated, ActorRestarted) as events, system.bus.subscribe(
        ActorRestarted
    ) as restarts:
        async with open_supervisor(system, "/n", RestartPolicy(max_restarts=5)) as root:
            await root.start(inner)
            worker = system.lookup("/n/inner/worker")
            await worker.send(Add(amount=3))
            for _ in range(3):  # two restarts allowed; the third failure is one too many
                await crash(worker)
            await next_event(restarts, ActorRestarted, path="/n/inner")
            # The parent restarted the whole subtree; the old ref reaches the new worker.
            assert await worker.ask(GetTotal()) == Total(value=0)
            assert root.children["inner"].restarts == 1
        seen = []
        while True:
            try:
                seen.append(events.receive_nowait())
            except trio.WouldBlock:
                break
    escalations = [e for e in seen if isinstance(e, SupervisorEscalated)]
    assert [(e.path, e.child) for e in escalations] == [("/n/inner", "/n/inner/worker")]
    assert any(isinstance(e, ActorRestarted) and e.path == "/n/inner" for e in seen)


async def test_root_escalation_is_raised_from_the_block(autojump_clock):
    system = ActorSystem()
    with pytest.raises(Escalation) as info:
        async with open_supervisor(system, "/n", RestartPolicy(max_restarts=1)) as root:
            a = await root.start(ActorSpec(name="a", actor=Counter))
            await crash(a)
            await crash(a)
            await trio.sleep_forever()
    assert info.value.child == "/n/a"
    assert isinstance(info.value.cause, RuntimeError)


async def test_restarts_outside_the_window_do_not_accumulate(autojump_clock):
    system = ActorSystem()
    async with open_supervisor(system, "/n", RestartPolicy(max_restarts=2, within=5.0)) as root:
        a = await root.start(ActorSpec(name="a", actor=Counter))
        for _ in range(6):
            await crash(a)
            await trio.sleep(6.0)  # virtual time: each failure is alone in its window
        assert a.statistics().restarts == 6


async def test_backoff_doubles_up_to_the_cap(autojump_clock):
    system = ActorSystem()
    policy = RestartPolicy(max_restarts=10, within=100.0, backoff_initial=1.0, backoff_max=4.0)
    delays = []
    with system.bus.subscribe(ActorRestarted) as events:
        async with open_supervisor(system, "/n", policy) as root:
            a = await root.start(ActorSpec(name="a", actor=Counter))
            for _ in range(5):
                before = trio.current_time()
                await crash(a)
                await a.ask(GetTotal())  # answered only once the restart happened
                delays.append(trio.current_time() - before)
            recorded = [events.receive_nowait().delay for _ in range(5)]
    assert recorded == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert delays == recorded


async def test_clean_exit_and_cancellation_are_not_failures(autojump_clock):
    system = ActorSystem()
    with system.bus.subscribe(ActorFailed) as failures:
        async with open_supervisor(system, "/n") as root:
            a = await root.start(ActorSpec(name="a", actor=Counter))
            await root.start(ActorSpec(name="b", actor=Counter))
            await a.send(StopNow())
            await trio.testing.wait_all_tasks_blocked()
            assert "a" not in root.children
            with pytest.raises(ActorStopped):
                await a.send(Add())
        # leaving the block cancelled b
        with pytest.raises(trio.WouldBlock):
            failures.receive_nowait()


async def test_temporary_child_is_not_restarted(autojump_clock):
    system = ActorSystem()
    async with open_supervisor(system, "/n") as root:
        a = await root.start(ActorSpec(name="a", actor=Counter, restart=Restart.NEVER))
        await crash(a)
        await trio.testing.wait_all_tasks_blocked()
        assert "a" not in root.children
        with pytest.raises(ActorStopped):
            await a.ask(GetTotal())


async def test_start_failure_reaches_the_starter_and_leaves_nothing(autojump_clock):
    system = ActorSystem()
    async with open_supervisor(system, "/n") as root:
        with pytest.raises(OSError, match="database"):
            await root.start(ActorSpec(name="db", actor=FailsToStart))
        assert system.paths() == []
        # the name is free again
        await root.start(ActorSpec(name="db", actor=Counter))


async def test_crash_is_logged_with_path_and_traceback(autojump_clock, capsys):
    system = ActorSystem()
    with system.bus.subscribe(ActorFailed) as failures:
        async with open_supervisor(system, "/n") as root:
            a = await root.start(ActorSpec(name="a", actor=Counter))
            await crash(a)
            event = await next_event(failures, ActorFailed)
    assert event.path == "/n/a"
    assert "RuntimeError: boom" in event.traceback and "handle" in event.traceback
    err = capsys.readouterr()
    assert "/n/a" in err.out + err.err
