import trio

from triopacs.actors import ActorExited, ActorStarted, EventBus


async def test_slow_subscriber_drops_instead_of_blocking():
    bus = EventBus()
    with bus.subscribe(capacity=3) as slow, bus.subscribe(capacity=100) as fast:
        for i in range(10):
            bus.publish(ActorStarted(path=f"/a{i}", restarts=0))  # never awaits
        assert slow.dropped == 7 and fast.dropped == 0
        got = [slow.receive_nowait().path for _ in range(3)]
        assert got == ["/a0", "/a1", "/a2"]
        assert [fast.receive_nowait().path for _ in range(10)][-1] == "/a9"
    assert bus.published == 10


async def test_subscription_filters_by_type():
    bus = EventBus()
    with bus.subscribe(ActorExited) as exits:
        bus.publish(ActorStarted(path="/x", restarts=0))
        bus.publish(ActorExited(path="/x"))
        assert exits.receive_nowait() == ActorExited(path="/x")
        try:
            exits.receive_nowait()
            raise AssertionError("only exits were asked for")
        except trio.WouldBlock:
            pass


async def test_unsubscribed_queue_receives_nothing_more():
    bus = EventBus()
    with bus.subscribe() as sub:
        pass
    bus.publish(ActorExited(path="/x"))  # must not raise on the closed subscription
    assert sub.dropped == 0
