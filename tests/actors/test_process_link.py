"""ProcessLink over a real Unix socketpair: asks answered in any order, errors that come
back as their own type (or a stand-in of the same kind), events, and a link that breaks
or is fed garbage failing the asks waiting on it instead of hanging them."""

import socket
import struct

import pytest
import trio

from triopacs.actors.node.tiers import TierFailure
from triopacs.actors.runtime.errors import ActorCrashed, MailboxOverrun, ReplyError
from triopacs.actors.runtime.process_link import LinkBroken, ProcessLink, RemoteRef


def socket_streams():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return (trio.SocketStream(trio.socket.from_stdlib_socket(a)), trio.SocketStream(trio.socket.from_stdlib_socket(b)))


class Echo:
    def __init__(self):
        self.told, self.events = [], []
        self.release = trio.Event()

    async def ask(self, to, message, sender):
        match message:
            case "slow":
                await self.release.wait()
                return "slow done"
            case "refuse":
                raise TierFailure("no such object", missing=True)
            case "crash":
                raise ActorCrashed(to, ValueError("boom"))
        return (to, message, sender)

    async def tell(self, to, message, sender):
        self.told.append((to, message))

    async def event(self, event):
        self.events.append(event)


async def test_asks_tells_and_events_cross_and_a_slow_answer_holds_up_nothing():
    here, there = socket_streams()
    near, far = ProcessLink(here, "near"), ProcessLink(there, "far")
    echo = Echo()
    async with trio.open_nursery() as nursery:
        await nursery.start(near.serve, Echo())
        await nursery.start(far.serve, echo)
        slow = []

        async def ask_slow():
            slow.append(await near.ask("/x", "slow"))

        nursery.start_soon(ask_slow)
        assert await RemoteRef("/node/services/index", near).ask({"n": 1}) == ("/node/services/index", {"n": 1}, None)
        assert slow == []  # still waiting, and it did not hold up the ask behind it
        echo.release.set()
        near.tell_nowait("/a", "told")
        near.event_nowait("an event")
        await near.ask("/sync", "after")  # frames arrive in order: what came before is handled
        assert echo.told == [("/a", "told")] and echo.events == ["an event"]
        with pytest.raises(TierFailure) as refused:
            await near.ask("/t", "refuse")
        assert refused.value.missing  # its own type, its own attributes
        with pytest.raises(ActorCrashed, match="boom") as crashed:
            await near.ask("/t", "crash")  # rebuilt without its constructor, whose signature differs
        assert isinstance(crashed.value.cause, ValueError)
        nursery.cancel_scope.cancel()
    assert slow == ["slow done"]


async def test_a_closed_link_fails_the_waiting_asks():
    here, there = socket_streams()
    near = ProcessLink(here, "near")
    async with trio.open_nursery() as nursery:
        await nursery.start(near.serve, Echo())
        failures = []

        async def ask():
            try:
                await near.ask("/x", "never answered")
            except LinkBroken as error:
                failures.append(error)

        nursery.start_soon(ask)
        await there.receive_some(65536)  # the ask went out; the other side goes away
        await there.aclose()
    assert len(failures) == 1
    with pytest.raises(LinkBroken):
        await near.ask("/x", "after")


@pytest.mark.parametrize("garbage", [struct.pack("!I", 2**31) + b"x", struct.pack("!I", 5) + b"\x80\x05garb"], ids=["oversized", "not a pickle"])
async def test_garbage_breaks_the_link_instead_of_being_taken(garbage):
    here, there = socket_streams()
    near = ProcessLink(here, "near")
    await there.send_all(garbage)
    with pytest.raises(BaseException) as broken:
        await near.serve(Echo())
    error = broken.value
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    assert isinstance(error, LinkBroken), repr(broken.value)
    assert near.broken is not None


async def test_a_link_too_far_behind_refuses_a_tell_nowait():
    here, _ = socket_streams()
    near = ProcessLink(here, "near", capacity=2)  # nothing writes: no serve() running
    near.tell_nowait("/a", 1)
    near.tell_nowait("/a", 2)
    with pytest.raises(MailboxOverrun):
        near.tell_nowait("/a", 3)
    assert not near.event_nowait("dropped, not raised")
    assert issubclass(TierFailure, ReplyError)
