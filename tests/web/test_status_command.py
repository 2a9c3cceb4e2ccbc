"""`triopacs status` against a running node, and against nothing."""

from __future__ import annotations

import json

import trio
from cli_process import run_cli

from node.nodes import running_node
from web.client import base_url


async def test_status_prints_each_component_of_a_healthy_node(tmp_path):
    async with running_node(tmp_path) as node:
        shown = await run_cli(["status", "--url", base_url(node)])
        raw = await run_cli(["status", "--url", base_url(node), "--json"])
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.decode().splitlines()
    assert lines[0] == f"ok (ready) at {base_url(node)}"
    assert {line.split()[0] for line in lines[1:]} == {"index", "listener", "locks", "scheduler", "tier:local"}
    assert raw.returncode == 0 and json.loads(raw.stdout)["status"] == "ok"


async def test_status_of_no_node_fails(tmp_path):
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # a port nobody listens on
    result = await run_cli(["status", "--url", f"http://127.0.0.1:{port}"])
    assert result.returncode == 1
    assert "no node answers" in result.stdout.decode()


async def test_status_reads_the_address_from_the_configuration(tmp_path):
    async with running_node(tmp_path) as node:
        config = tmp_path / "node.toml"
        config.write_text(f'[http]\nbind = "{node.http.host}"\nport = {node.http.port}\n')
        result = await run_cli(["status", "--config", str(config)])
    assert result.returncode == 0 and result.stdout.decode().startswith("ok (ready)")
