"""An actor's background tasks end before its on_stop runs, however the actor ends.

on_stop releases what the actor holds (the index closes its database connections); a task
in ctx.nursery that still used it would find it pulled from under it.
"""

import pytest
import trio

from triopacs.actors import Actor, ActorCrashed, ActorExited, ActorFailed, ActorSpec, ActorSystem, Restart, open_supervisor

from .toy import Fail, StopNow


class Keeper(Actor):
    """Holds a 'connection' its background task uses until it is cancelled; the task
    takes a moment to wind down, as a real one finishing a write would."""

    accepts = (StopNow, Fail)

    def __init__(self, log: list[str], running: trio.Event) -> None:
        self.log = log
        self.running = running

    async def on_start(self) -> None:
        self.connection_open = True
        self.ctx.nursery.start_soon(self._use_connection)

    async def _use_connection(self) -> None:
        try:
            self.running.set()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(1)  # winding down still needs the connection
            self.log.append(f"task finished, connection open: {self.connection_open}")

    async def handle(self, message):
        match message:
            case StopNow():
                self.ctx.stop()
            case Fail(reason=reason):
                raise RuntimeError(reason)

    async def on_stop(self) -> None:
        self.log.append("on_stop")
        self.connection_open = False


async def stop_cleanly(ref) -> None:
    await ref.send(StopNow())


async def crash(ref) -> None:
    with pytest.raises(ActorCrashed):
        await ref.ask(Fail())


@pytest.mark.parametrize("end", [stop_cleanly, crash, None], ids=["stop", "crash", "shutdown"])
async def test_background_tasks_finish_before_on_stop(end, autojump_clock):
    log: list[str] = []
    running = trio.Event()
    system = ActorSystem()
    with system.bus.subscribe(ActorExited, ActorFailed) as ended:
        async with open_supervisor(system, "/t") as root:
            spec = ActorSpec(name="keeper", actor=Keeper, args={"log": log, "running": running}, restart=Restart.NEVER)
            ref = await root.start(spec)
            await running.wait()
            if end is not None:  # else the supervisor's shutdown ends it
                await end(ref)
                assert (await ended.receive()).path == "/t/keeper"  # published once on_stop is done
    assert log == ["task finished, connection open: True", "on_stop"]
