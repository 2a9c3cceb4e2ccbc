"""An HTTP client for a test's node: httpx, driven from a worker thread so the node
keeps running on the test's Trio loop while the client waits."""

from __future__ import annotations

import httpx
import trio

from triopacs.supervisor import Node


def base_url(node: Node) -> str:
    assert node.http is not None, "the node runs without HTTP"
    return f"http://{node.http.host}:{node.http.port}"


def events_url(node: Node, query: str = "") -> str:
    assert node.events is not None
    return f"ws://{node.events.host}:{node.events.port}/events{query}"


async def request(node: Node, method: str, path: str, **kwargs) -> httpx.Response:
    def send() -> httpx.Response:
        with httpx.Client(base_url=base_url(node), timeout=30.0) as client:
            return client.request(method, path, **kwargs)

    return await trio.to_thread.run_sync(send)


async def get(node: Node, path: str, **kwargs) -> httpx.Response:
    return await request(node, "GET", path, **kwargs)
