"""A hostile or broken peer against `triopacs serve` as a real process: what it sends
must never kill, freeze or bloat the node (docs/limits.md). The node is watched from
outside: its memory through /proc, whether it still answers, what it logged.

Each test is bounded in count and time; each failed before the defence it checks.
"""

import socket
import struct

import pydicom
import pydicom.data
import pytest
import trio
from pydicom.dataset import Dataset

from triopacs import connect
from triopacs.client.errors import OperationFailed
from triopacs.client.contexts import query_retrieve_contexts, storage_contexts_for, verification_contexts
from triopacs.protocol.commands import CStoreRQ
from triopacs.protocol.negotiation import ProposedContext, build_request

from .served import served_node

LOOPBACK = "127.0.0.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
VERIFICATION = "1.2.840.10008.1.1"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
MIB = 1024 * 1024


async def store(node, ds: Dataset) -> None:
    async with connect(node.host, node.port, called_ae_title=node.ae_title, contexts=storage_contexts_for([ds])) as association:
        await association.store(ds)


def ct_sample() -> Dataset:
    return pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))


async def echo(node, *, timeout: float = 20) -> None:
    with trio.fail_after(timeout):
        async with connect(node.host, node.port, called_ae_title=node.ae_title, contexts=verification_contexts()) as association:
            await association.echo()


# ---------------------------------------------------------------- connections reset at once


def connect_and_reset(port: int) -> None:
    """Connect, then close with RST (SO_LINGER 0) before the node can look at the socket."""
    with socket.create_connection((LOOPBACK, port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_connections_reset_right_after_connect_leave_the_node_serving(tmp_path):
    """Hundreds of connect-and-RST from four threads: the node neither exits nor restarts
    its listener (which would abort every association), and goes on serving."""
    async with served_node(tmp_path) as node:
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(trio.to_thread.run_sync, lambda: [connect_and_reset(node.port) for _ in range(150)])
        await echo(node)
        assert node.alive()
        log = node.log_text()
        assert "actor failed" not in log and "Traceback" not in log, log[-3000:]
        assert "already has a child" not in log


# ---------------------------------------------------------------- a pathological wild card


async def test_a_backtracking_wild_card_neither_freezes_the_node_nor_takes_long(tmp_path):
    """`*A*A...*B` against a value of 64 A's, on a key matched in Python (no index
    column): a backtracking matcher takes seconds per `*A` more (the node froze for
    minutes); the answer must come back, and meanwhile other peers are served."""
    ds = ct_sample()
    ds.ImageComments = "A" * 64
    async with served_node(tmp_path) as node:
        await store(node, ds)
        query = Dataset()
        query.StudyInstanceUID = ds.StudyInstanceUID
        query.SeriesInstanceUID = ds.SeriesInstanceUID
        query.SOPInstanceUID = ""
        results = {}

        async def find(pattern: str) -> None:
            query.ImageComments = pattern
            async with connect(node.host, node.port, called_ae_title=node.ae_title, contexts=query_retrieve_contexts("study")) as association:
                results[pattern] = [m.SOPInstanceUID async for m in association.find(query, level="IMAGE")]

        hostile = "*A" * 24 + "*B"
        with trio.fail_after(60):  # a hang guard: the backtracking matcher never ends
            async with trio.open_nursery() as nursery:
                nursery.start_soon(find, hostile)
                for _ in range(5):
                    await echo(node)
        await find("*A*A*A")
        assert results == {hostile: [], "*A*A*A": [ds.SOPInstanceUID]}


async def test_a_wild_card_too_long_for_the_index_is_refused_with_a900(tmp_path):
    query = Dataset()
    query.StudyDescription = "*" + "X" * 60_000
    query.StudyInstanceUID = ""
    async with served_node(tmp_path) as node:
        await store(node, ct_sample())  # SQLite evaluates the pattern only against a row
        async with connect(node.host, node.port, called_ae_title=node.ae_title, contexts=query_retrieve_contexts("study")) as association:
            with pytest.raises(OperationFailed) as refused:
                [m async for m in association.find(query, level="STUDY")]
            assert refused.value.status == 0xA900
            assert refused.value.error_comment == "a wild card value is too long for the index to match"
            query.StudyDescription = "*"
            assert len([m async for m in association.find(query, level="STUDY")]) == 1  # the association goes on
        assert "wild card value is too long" in node.log_text()


# ---------------------------------------------------------------- absurd fragmentation


def pdata(pdvs: list[tuple[int, int, bytes]]) -> bytes:
    """A P-DATA-TF of (context id, control header, data) PDVs."""
    body = b"".join(struct.pack(">LBB", len(data) + 2, cid, control) + data for cid, control, data in pdvs)
    return struct.pack(">BxL", 0x04, len(body)) + body


async def raw_associate(node) -> tuple[trio.SocketStream, int]:
    """An association over a bare socket: echo and CT storage, explicit VR LE. Returns the
    stream (the A-ASSOCIATE-AC read and dropped) and the CT context id."""
    request = build_request(
        calling_ae_title="HOSTILE",
        called_ae_title=node.ae_title,
        contexts=[ProposedContext(abstract_syntax=uid, transfer_syntaxes=(EXPLICIT_LE,)) for uid in (VERIFICATION, CT)],
    )
    stream = await trio.open_tcp_stream(node.host, node.port)
    await stream.send_all(request.encode())
    header = await stream.receive_some(6)
    assert header[:1] == b"\x02", header  # A-ASSOCIATE-AC
    length = struct.unpack(">L", header[2:6])[0]
    while length:
        length -= len(await stream.receive_some(length))
    return stream, request.presentation_contexts[1].context_id


async def flood_until_refused(stream: trio.SocketStream, pdu: bytes, limit: int) -> tuple[int, bytes]:
    """Send `pdu` again and again until the node refuses (abort or close) or `limit`
    bytes went out. Returns the bytes sent and the first bytes the node answered."""
    sent = 0
    answer = b""
    async with trio.open_nursery() as nursery:

        async def read_answer() -> None:
            nonlocal answer
            try:
                answer = await stream.receive_some(64)
            except trio.BrokenResourceError:
                pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(read_answer)
        try:
            while sent < limit:
                await stream.send_all(pdu)
                sent += len(pdu)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        with trio.move_on_after(10):
            await trio.sleep_forever()  # the reader cancels us on the node's answer
        nursery.cancel_scope.cancel()
    return sent, answer


@pytest.mark.parametrize("kind", ["empty dataset PDVs", "2-byte dataset PDVs", "empty command PDVs"])
async def test_a_flood_of_tiny_fragments_is_aborted_with_memory_flat(tmp_path, kind):
    """A C-STORE whose message never ends, in PDUs packed with tiny PDVs: each PDV costs
    the node an object (the node grew ~33x the bytes sent, past 2 GiB). Refused after a
    few dozen small fragments; RSS stays flat."""
    async with served_node(tmp_path) as node:
        await echo(node)
        before = node.rss()
        stream, cid = await raw_associate(node)
        command = CStoreRQ(message_id=1, affected_sop_class_uid=CT, affected_sop_instance_uid="1.2.3.4").encode()
        if kind == "empty command PDVs":
            pdu = pdata([(cid, 0x01, b"")] * 10_000)
        else:
            await stream.send_all(pdata([(cid, 0x03, command)]))
            pdu = pdata([(cid, 0x00, b"" if kind.startswith("empty") else b"\x00\x00")] * 10_000)
        sent, answer = await flood_until_refused(stream, pdu, 64 * MIB)
        grown = node.rss() - before
        assert answer[:1] == b"\x07", answer  # A-ABORT
        assert grown < 16 * MIB, f"RSS grew {grown / MIB:.1f} MiB after {sent / MIB:.1f} MiB sent"
        await echo(node)
