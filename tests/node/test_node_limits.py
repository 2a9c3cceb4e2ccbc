"""Limits and defences of an embedded node (docs/limits.md): connections that never
associate, the association limit, peers that leave mid-negotiation or cannot take real
PDUs, identifiers nested without end, a full disk."""

import contextlib
import os
import struct
import subprocess
from pathlib import Path

import pydicom
import pydicom.data
import pytest
import structlog
import trio
from pydicom.dataset import Dataset

from triopacs import connect
from triopacs.client.contexts import storage_contexts_for, verification_contexts
from triopacs.client.errors import AssociationRejected
from triopacs.actors.node.listener import CountConnections
from triopacs.protocol.commands import CFindRQ, CFindRSP
from triopacs.protocol.negotiation import ProposedContext, build_request

from .nodes import AE_TITLE, LOOPBACK, running_node
from .test_node_faults import context_id, echo_on, encode, raw_association

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
VERIFICATION = "1.2.840.10008.1.1"


async def echo(node, **options) -> None:
    with trio.fail_after(20):
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=verification_contexts(), **options) as association:
            await association.echo()


async def connection_counts(node):
    return await node.ref("/node/associations/listener").ask(CountConnections())


# ---------------------------------------------------------------- connections before association


async def test_idle_and_trickling_connections_do_not_lock_out_a_real_client(tmp_path):
    """100 connections that send nothing and 100 that send one byte of a request: more
    than the association limit, yet a real client associates at once. The oldest waiting
    connections are closed to make room (32 at most wait per address)."""
    async with running_node(tmp_path) as node:
        streams = []
        for index in range(200):
            stream = await trio.open_tcp_stream(LOOPBACK, node.address.port)
            if index % 2:
                await stream.send_all(b"\x01")  # the first byte of an A-ASSOCIATE-RQ, and no more
            streams.append(stream)
        await echo(node)
        counts = await connection_counts(node)
        assert counts.waiting <= 32 and counts.evicted >= 200 - 32
        # The closed ones were really closed: reading them ends.
        closed = 0
        for stream in streams[:100]:
            with trio.move_on_after(5):
                try:
                    closed += await stream.receive_some(1) == b""
                except trio.BrokenResourceError:
                    closed += 1
        assert closed == 100
        for stream in streams:
            await stream.aclose()


async def test_only_associations_count_against_the_association_limit(tmp_path):
    async with running_node(tmp_path, max_associations=2) as node:
        idle = [await trio.open_tcp_stream(LOOPBACK, node.address.port) for _ in range(10)]
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(2):
                association = await stack.enter_async_context(
                    connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=verification_contexts())
                )
                await association.echo()
            with pytest.raises(AssociationRejected) as rejected:
                await echo(node)
            assert not rejected.value.permanent  # transient: local limit exceeded
            assert (await connection_counts(node)).associations == 2
        await echo(node)  # the two have ended: room again
        for stream in idle:
            await stream.aclose()


# ---------------------------------------------------------------- negotiation


@pytest.mark.parametrize("then", [b"\xff" * 10, b""], ids=["a bad PDU", "a close"])
async def test_a_peer_leaving_during_negotiation_costs_one_log_line(tmp_path, then):
    """The A-ASSOCIATE-RQ and what follows arrive in one read: the node finds the peer
    gone when it answers. That is ordinary - no traceback, no error."""
    request = build_request(
        calling_ae_title="LEAVER",
        called_ae_title=AE_TITLE,
        contexts=[ProposedContext(abstract_syntax=VERIFICATION, transfer_syntaxes=("1.2.840.10008.1.2",))],
    )
    async with running_node(tmp_path) as node:
        with structlog.testing.capture_logs() as logs:
            for _ in range(20):
                stream = await trio.open_tcp_stream(LOOPBACK, node.address.port)
                await stream.send_all(request.encode() + then)
                await stream.aclose()
            await echo(node)
    serious = [entry for entry in logs if entry["log_level"] in ("error", "critical") or entry.get("exc_info")]
    assert serious == []
    assert any(entry["event"] == "the peer left during negotiation" for entry in logs)


@pytest.mark.parametrize("max_pdu_length, accepted", [(1, False), (8, False), (1023, False), (1024, True), (0, True)])
async def test_a_peer_that_takes_only_tiny_pdus_is_rejected(tmp_path, max_pdu_length, accepted):
    async with running_node(tmp_path) as node:
        if accepted:
            await echo(node, max_pdu_length=max_pdu_length)
            return
        with pytest.raises(AssociationRejected) as rejected:
            await echo(node, max_pdu_length=max_pdu_length)
        assert (rejected.value.result, rejected.value.source, rejected.value.reason) == (1, 1, 1)
        await echo(node)


# ---------------------------------------------------------------- identifiers


def nested_identifier(depth: int) -> bytes:
    """A STUDY-level identifier holding sequences `depth` deep (undefined lengths, by
    hand: pydicom's writer recurses and gives up long before 10,000)."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = ""
    opening = struct.pack("<HH2s2xL", 0x0008, 0x1110, b"SQ", 0xFFFFFFFF) + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return encode(identifier) + opening * depth + closing * depth


@pytest.mark.parametrize("depth", [65, 300, 10_000])
async def test_an_identifier_nested_past_the_limit_is_refused_and_the_association_goes_on(tmp_path, depth):
    async with running_node(tmp_path) as node:
        async with raw_association(node, also=(STUDY_ROOT_FIND,)) as link:
            request = CFindRQ(message_id=3, affected_sop_class_uid=STUDY_ROOT_FIND)
            await link.send(request, context_id(link, STUDY_ROOT_FIND), nested_identifier(depth))
            with trio.fail_after(10):
                reply = await link.next()
            assert isinstance(reply.message, CFindRSP)
            assert reply.message.status == 0xA900
            assert "nested deeper than 64" in reply.message.error_comment
            assert await echo_on(link) == 0


# ---------------------------------------------------------------- a full disk


@contextlib.contextmanager
def small_filesystem(path: Path, size: str):
    """A tmpfs of `size` at path (root may mount; the test suite runs as root)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    filler = path / "filler"
    with open(filler, "wb") as file:
        block = bytes(64 * 1024)
        try:
            while True:
                file.write(block)
                file.flush()
        except OSError:
            pass
    with contextlib.suppress(OSError):
        with open(filler, "ab") as file:  # the last few bytes too
            while True:
                file.write(b"\0")
                file.flush()
    assert os.statvfs(path).f_bavail == 0
    return filler


async def test_a_store_on_a_full_disk_is_refused_with_a700_and_the_node_goes_on(tmp_path):
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
    with small_filesystem(tmp_path / "disk", "8m") as disk:
        async with running_node(disk, durability="os") as node:
            await echo(node)
            filler = fill(disk)
            contexts = storage_contexts_for([ds])
            async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=contexts) as association:
                refused = await association.store(ds)
                assert refused.status == 0xA700, refused
                assert "No space left on device" in refused.error_comment
                filler.unlink()
                assert (await association.store(ds)).status == 0  # room again: the same association stores it
