"""What the DICOMweb tests share: a node's DICOMweb base URL, a dicomweb-client driven
from a worker thread (the node keeps running on the test's Trio loop meanwhile), and
C-FIND / C-GET through the node's own DIMSE port to compare answers with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trio
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset

from triopacs import connect
from triopacs.client.contexts import default_contexts
from triopacs.supervisor import Node

from node.nodes import LOOPBACK
from web.client import base_url

T = TypeVar("T")


def dicomweb_url(node: Node) -> str:
    return base_url(node) + node.config.dicomweb.prefix


async def with_client(node: Node, work: Callable[[DICOMwebClient], T]) -> T:
    """Run `work(client)` on a worker thread; no retries (a failure shows at once)."""

    def run() -> T:
        client = DICOMwebClient(dicomweb_url(node))
        client._max_attempts = 1  # dicomweb-client retries 5xx with backoff by default
        return work(client)

    return await trio.to_thread.run_sync(run)


async def c_find(node: Node, query: Dataset, level: str) -> list[Dataset]:
    async with connect(LOOPBACK, node.address.port, called_ae_title=node.config.node.ae_title, calling_ae_title="DWTEST",
                       contexts=default_contexts()) as association:
        return [match async for match in association.find(query, level=level)]


async def c_get(node: Node, query: Dataset, level: str, into: Path) -> list[Dataset]:
    into.mkdir(parents=True, exist_ok=True)
    async with connect(LOOPBACK, node.address.port, called_ae_title=node.config.node.ae_title, calling_ae_title="DWTEST",
                       contexts=default_contexts()) as association:
        async for _ in association.get(query, into, level=level):
            pass
    return [dcmread(path) for path in sorted(into.glob("*.dcm"))]


def value(match: dict[str, Any], tag: str) -> Any:
    values = match.get(tag, {}).get("Value") or [None]
    return values[0]


def parts(response) -> list[bytes]:
    """The bodies of a multipart/related answer, parsed here independently of the node's reader."""
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/related"), content_type
    boundary = [p.split("=", 1)[1].strip('"') for p in content_type.split(";") if p.strip().startswith("boundary=")][0]
    body = response.content
    assert body.rstrip(b"\r\n").endswith(f"--{boundary}--".encode())
    pieces = body.split(f"--{boundary}".encode())[1:-1]
    out = []
    for piece in pieces:
        head, _, rest = piece.partition(b"\r\n\r\n")
        assert rest.endswith(b"\r\n")
        out.append(rest[:-2])
    return out
