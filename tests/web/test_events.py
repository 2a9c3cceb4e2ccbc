"""The live event stream, with trio-websocket as the client."""

from __future__ import annotations

import json

import trio
from peers import echoscu
from trio_websocket import ConnectionClosed, open_websocket_url

from triopacs.actors import ActorStarted
from triopacs.web.event_stream import FELL_BEHIND

from node.nodes import peer, running_node
from web.client import events_url, get


async def test_association_events_arrive_filtered_by_type(tmp_path):
    async with running_node(tmp_path) as node:
        query = "?types=activity.association-opened,activity.association-closed"
        async with open_websocket_url(events_url(node, query)) as ws:
            (await echoscu(peer(node), calling_ae="WATCHED")).check()
            with trio.fail_after(10):
                opened = json.loads(await ws.get_message())
                closed = json.loads(await ws.get_message())
    assert opened["type"] == "activity.association-opened"
    assert opened["payload"]["calling_ae_title"] == "WATCHED" and opened["payload"]["contexts"] == ["1.2.840.10008.1.1"]
    assert closed["type"] == "activity.association-closed"
    assert closed["payload"]["association_id"] == opened["payload"]["association_id"]
    assert closed["payload"]["outcome"] == "released" and closed["payload"]["bytes_received"] > 0


async def test_an_area_filter_takes_every_event_of_the_area(tmp_path):
    async with running_node(tmp_path) as node:
        async with open_websocket_url(events_url(node, "?types=runtime")) as ws:
            node.system.bus.publish(ActorStarted(path="/test/x", restarts=0))
            with trio.fail_after(10):
                event = json.loads(await ws.get_message())
    assert event["type"] == "runtime.actor-started" and event["payload"] == {"path": "/test/x", "restarts": 0}


async def test_a_client_that_never_reads_is_closed_and_the_node_keeps_serving(tmp_path):
    async with running_node(tmp_path, event_buffer=16) as node:
        async with open_websocket_url(events_url(node)) as ws:
            # Far more than the socket buffers and the client's 16 queued events hold
            # (about 12 MB): the server must give up on the client, not wait for it.
            for n in range(FLOOD):
                node.system.bus.publish(ActorStarted(path="/test/flood/" + "x" * 200, restarts=n))
                if n % 500 == 0:
                    await trio.sleep(0)
            received = 0
            with trio.fail_after(30):
                try:
                    while True:
                        await ws.get_message()
                        received += 1
                except ConnectionClosed as closed:
                    reason = closed.reason
        assert reason.code == FELL_BEHIND
        assert received < FLOOD
        (await echoscu(peer(node))).check()
        assert (await get(node, "/live")).status_code == 200


FLOOD = 50_000


async def test_a_wrong_path_and_too_many_clients_are_refused(tmp_path):
    from trio_websocket import HandshakeError

    async with running_node(tmp_path, max_event_clients=1) as node:
        url = events_url(node)
        try:
            async with open_websocket_url(url.replace("/events", "/other")):
                raise AssertionError("a wrong path was accepted")
        except HandshakeError as refused:
            assert getattr(refused, "status_code", 404) == 404
        async with open_websocket_url(url):
            try:
                async with open_websocket_url(url):
                    raise AssertionError("one client too many was accepted")
            except HandshakeError as refused:
                assert getattr(refused, "status_code", 503) == 503


async def test_lock_contention_is_streamed(tmp_path):
    from triopacs.workflow import LockType, study_lock
    from triopacs.workflow.locks.messages import TryLock
    from triopacs.workflow.locks.types import AlreadyLocked

    async with running_node(tmp_path) as node:
        async with open_websocket_url(events_url(node, "?types=locks.contended")) as ws:
            async with study_lock(node.locks, "1.2.3", LockType.EXCLUSIVE, holder="first"):
                try:
                    await node.locks.ask(TryLock(study_uid="1.2.3", type=LockType.SHARED, holder="second"))
                    raise AssertionError("the second lock was granted")
                except AlreadyLocked:
                    pass
            with trio.fail_after(10):
                event = json.loads(await ws.get_message())
    assert event["type"] == "locks.contended"
    assert event["payload"] == {"study_uid": "1.2.3", "type": "shared", "holder": "second", "held": ["exclusive"], "waits": False}
