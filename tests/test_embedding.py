"""A Trio application embeds a node and talks to its actors."""

import pytest
import trio

from triopacs import open_node
from triopacs.actors import ActorStopped
from triopacs.actors.node.ae_registry import ListAEs, LookupAE, RegisterAE, RemoteAE, UnknownAE
from triopacs.config import Config, HttpSettings, NodeSettings


async def test_an_app_opens_a_node_and_asks_an_actor(tmp_path):
    viewer = RemoteAE(ae_title="VIEWER", host="127.0.0.1", port=11113)
    config = Config(http=HttpSettings(port=0, events_port=0), node=NodeSettings(port=0, data_dir=str(tmp_path / "data")), remote=(viewer,))
    async with open_node(config) as node:
        aes = node.ref("aes")
        assert await aes.ask(LookupAE(ae_title="VIEWER")) == viewer
        with pytest.raises(UnknownAE):
            await aes.ask(LookupAE(ae_title="NOBODY"))
        await aes.send(RegisterAE(entry=RemoteAE(ae_title="WS1", host="127.0.0.1", port=4006)))
        known = await aes.ask(ListAEs())
        assert [e.ae_title for e in known.entries] == ["VIEWER", "WS1"]
        assert {s.path for s in node.statistics()} >= {"/node/services/aes"}
    assert (tmp_path / "data").is_dir()
    with pytest.raises(ActorStopped):
        await aes.ask(ListAEs())


async def test_the_app_keeps_running_after_the_node_block(tmp_path):
    config = Config(http=HttpSettings(port=0, events_port=0), node=NodeSettings(port=0, data_dir=str(tmp_path)))
    async with trio.open_nursery() as app:
        done = trio.Event()

        async def other_work():
            await trio.sleep(0)
            done.set()

        app.start_soon(other_work)
        async with open_node(config) as node:
            assert node.services.path == "/node/services"
            assert node.associations.path == "/node/associations"
        await done.wait()


async def test_trace_file_is_written_when_configured(tmp_path):
    from triopacs.config import TraceSettings

    trace = tmp_path / "trace.jsonl"
    config = Config(http=HttpSettings(port=0, events_port=0), node=NodeSettings(port=0, data_dir=str(tmp_path)), trace=TraceSettings(file=str(trace)))
    async with open_node(config) as node:
        await node.ref("aes").ask(ListAEs())
    lines = trace.read_text().splitlines()
    assert '"kind":"trace"' in lines[0]
    assert any('"type":"aes.list"' in line for line in lines)
    assert any('"kind":"reply"' in line and '"type":"aes.known"' in line for line in lines)
