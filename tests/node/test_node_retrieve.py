"""DCMTK movescu / getscu -> node: C-MOVE to a storescp and to the caller, C-GET, an
unknown destination, and C-CANCEL of a move under way."""

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import trio
import trio.testing
from dicom_samples import SeriesSpec, new_uid, write_series
from peers import echoscu, free_port, getscu, parse_retrieve_output, storescp
from peers.dcmtk import dcmtk_program, run_dcmtk

from triopacs import connect
from triopacs.actors.node.association import AssociationDescription, DescribeAssociation
from triopacs.client.contexts import storage_contexts_for
from triopacs.client.link import DimseLink, LinkClosed, MessageReceived
from triopacs.protocol.association import Acceptor
from triopacs.protocol.commands import CStoreRQ, CStoreRSP
from triopacs.protocol.events import AssociationRequested, ReleaseRequested
from triopacs.protocol.negotiation import AcceptorPolicy, SupportedContext, negotiate

from .nodes import AE_TITLE, LOOPBACK, dataset_bytes, peer, remote, running_node, stored_files

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


@pytest.fixture
def study(tmp_path):
    """One study: a CT series of 3 and an MR series of 2 (small on purpose)."""
    uid = new_uid()
    ct = write_series(tmp_path / "source", SeriesSpec(count=3, modality="CT", study_instance_uid=uid))
    mr = write_series(tmp_path / "source", SeriesSpec(count=2, modality="MR", study_instance_uid=uid, series_number=2))
    return [ct, mr]


async def load(node, series_list) -> dict[str, bytes]:
    """Store the series with the triopacs client; the node's stored dataset bytes by SOP UID."""
    files = [path for series in series_list for path in series.paths]
    async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(files)) as association:
        assert all([(await association.store(path)).ok for path in files])
    return {path.stem: dataset_bytes(path)[1] for path in stored_files(node)}


@dataclass
class MoveOutcome:
    output: str
    status: int | None  # of the final C-MOVE-RSP
    counts: dict[str, int | None]  # Remaining/Completed/Failed/Warning of the final response
    pending: int  # Pending responses seen


_FIELD = re.compile(r"^D: (Remaining|Completed|Failed|Warning) Suboperations\s*: (\S+)")
_STATUS = re.compile(r"^D: DIMSE Status\s*: 0x([0-9a-fA-F]{4})")


def parse_final_move_response(output: str) -> MoveOutcome:
    """movescu -d dumps every response's command set; keep the final one's status and counts."""
    status, counts, final = None, {}, False
    for line in output.splitlines():
        if line.startswith("I: Received Final Move Response"):
            final = True
        elif final and (field := _FIELD.match(line)):
            counts[field[1]] = None if field[2] == "none" else int(field[2])
        elif final and (found := _STATUS.match(line)):
            status = int(found[1], 16)
            break
    return MoveOutcome(output, status, counts, len(re.findall(r"^I: Received Move Response \d+", output, re.M)))


def movescu_args(node, study_uid: str, destination: str, *extra: str) -> list[str]:
    return ["-d", "-S", "-aet", "MOVESCU", "-aec", AE_TITLE, "-aem", destination, *extra,
            "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
            LOOPBACK, str(node.address.port)]


async def run_movescu(node, study_uid: str, destination: str, *extra: str, cwd: Path) -> MoveOutcome:
    # cwd: movescu 3.6.7 with +B writes into the working directory whatever -od says.
    result = await run_dcmtk("movescu", *movescu_args(node, study_uid, destination, *extra), timeout=60, cwd=cwd)
    return parse_final_move_response(result.output)


async def test_movescu_to_a_registered_storescp(tmp_path, study):
    async with storescp(extra_args=["+B"], parent_dir=tmp_path) as destination:
        async with running_node(tmp_path, remote=[remote(destination.ae_title, destination.port)]) as node:
            kept = await load(node, study)
            outcome = await run_movescu(node, study[0].study_instance_uid, destination.ae_title, cwd=tmp_path)
        arrived = {_sop_uid(path): dataset_bytes(path)[1] for path in destination.stored_files()}
    assert outcome.status == 0x0000, outcome.output
    assert outcome.counts == {"Remaining": None, "Completed": 5, "Failed": 0, "Warning": 0}
    assert outcome.pending == 5  # one Pending per sub-operation
    assert arrived == kept  # the same five datasets, byte for byte


async def test_movescu_to_itself_on_its_own_port(tmp_path, study):
    # movescu +P listens for the sub-operations itself; the node knows MOVESCU at that port.
    port = free_port()
    received = tmp_path / "received"
    received.mkdir()
    async with running_node(tmp_path, remote=[remote("MOVESCU", port)]) as node:
        kept = await load(node, study)
        outcome = await run_movescu(node, study[1].study_instance_uid, "MOVESCU", "+P", str(port), "-od", str(received), cwd=tmp_path)
    assert outcome.status == 0x0000, outcome.output
    assert outcome.counts["Completed"] == 5 and outcome.counts["Failed"] == 0
    # movescu re-encodes what it receives (+B is broken there): compare the datasets.
    arrived = {str(ds.SOPInstanceUID): ds for ds in map(pydicom.dcmread, received.iterdir())}
    sent = {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(p) for series in study for p in series.paths)}
    assert len(kept) == 5 and sorted(arrived) == sorted(sent)
    assert all(arrived[uid] == sent[uid] for uid in sent)


async def test_getscu_into_a_folder(tmp_path, study):
    into = tmp_path / "got"
    into.mkdir()
    ct = study[0]
    async with running_node(tmp_path) as node:
        kept = await load(node, study)
        tool = await run_dcmtk(
            "getscu", "-v", "-S", "+B", "-aet", "GETSCU", "-aec", AE_TITLE, "-od", str(into),
            "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={ct.study_instance_uid}",
            "-k", f"SeriesInstanceUID={ct.series_instance_uid}", LOOPBACK, str(node.address.port), timeout=60, cwd=tmp_path,
        )
    result = parse_retrieve_output(tool, into).check()
    assert result.sub_operations == {"Remaining": 0, "Completed": 3, "Failed": 0, "Warning": 0}
    arrived = {_sop_uid(path): dataset_bytes(path)[1] for path in result.received_files()}
    assert arrived == {uid: kept[uid] for uid in ct.sop_instance_uids}  # the CT series only


async def test_getscu_wrapper_study_level(tmp_path, study):
    # The plain tests/peers wrapper (no bit preserving): counts and files, not bytes.
    async with running_node(tmp_path) as node:
        await load(node, study)
        result = await getscu(peer(node), {"StudyInstanceUID": study[0].study_instance_uid}, received_dir=tmp_path / "got")
    result.check()
    assert result.sub_operations["Completed"] == 5 and len(result.received_files()) == 5


async def test_movescu_to_an_unknown_ae_answers_a801(tmp_path, study):
    async with running_node(tmp_path) as node:
        await load(node, study)
        outcome = await run_movescu(node, study[0].study_instance_uid, "NOBODY", cwd=tmp_path)
        (await echoscu(peer(node))).check()  # and it keeps serving
    assert outcome.status == 0xA801, outcome.output
    assert "no remote AE titled 'NOBODY' is configured" in outcome.output
    assert outcome.pending == 0


async def test_movescu_to_a_destination_that_is_down_fails_every_sub_operation(tmp_path, study):
    # Known to the node, but nothing listens there: every sub-operation fails (A702).
    async with running_node(tmp_path, remote=[remote("DOWN", free_port())]) as node:
        await load(node, study)
        outcome = await run_movescu(node, study[0].study_instance_uid, "DOWN", cwd=tmp_path)
        (await echoscu(peer(node))).check()
    assert outcome.status == 0xA702, outcome.output
    assert outcome.counts == {"Remaining": None, "Completed": 0, "Failed": 5, "Warning": 0}
    assert "FailedSOPInstanceUIDList" in outcome.output


# ---------------------------------------------------------------- C-CANCEL of a C-MOVE


class GatedStoreSCP:
    """A storage SCP on loopback (triopacs' own DimseLink as acceptor) that holds its
    answer to the second C-STORE until `gate` is set. It paces a C-MOVE from the test,
    so a C-CANCEL is known to be at the node before the move could have finished."""

    ae_title = "GATED"

    def __init__(self) -> None:
        self.gate = trio.Event()
        self.first_store = trio.Event()
        self.stored: list[str] = []

    async def serve(self, listener: trio.SocketListener) -> None:
        policy = AcceptorPolicy(
            ae_titles=frozenset({self.ae_title}),
            contexts=tuple(SupportedContext(abstract_syntax=uid) for uid in ("1.2.840.10008.5.1.4.1.1.2", MR_STORAGE)),
        )
        stream = await listener.accept()
        link = DimseLink(stream, Acceptor())
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run)
            while True:
                try:
                    event = await link.next()
                except LinkClosed:
                    return
                match event:
                    case AssociationRequested(request=request):
                        await link.accept(negotiate(request, policy).response)
                    case MessageReceived(context_id=context_id, message=CStoreRQ() as rq):
                        if self.stored:
                            await self.gate.wait()
                        else:
                            self.first_store.set()
                        self.stored.append(rq.affected_sop_instance_uid)
                        await link.send(
                            CStoreRSP(message_id_being_responded_to=rq.message_id, status=0,
                                      affected_sop_class_uid=rq.affected_sop_class_uid,
                                      affected_sop_instance_uid=rq.affected_sop_instance_uid),
                            context_id,
                        )
                    case ReleaseRequested():
                        await link.respond_release()


async def bytes_received_from(node, calling_ae: str) -> int:
    for name, child in list(node.associations.children.items()):
        if name == "listener":
            continue
        description: AssociationDescription = await node.ref(f"/node/associations/{name}").ask(DescribeAssociation())
        if description.calling_ae_title == calling_ae:
            return description.bytes_received
    raise LookupError(calling_ae)


async def test_movescu_cancel_stops_the_move_with_fe00_and_the_node_goes_on(tmp_path):
    series = write_series(tmp_path / "source", SeriesSpec(count=6, modality="MR"))
    gated = GatedStoreSCP()
    listeners = await trio.open_tcp_listeners(0, host=LOOPBACK)
    port = listeners[0].socket.getsockname()[1]
    async with running_node(tmp_path, remote=[remote(gated.ae_title, port)]) as node, trio.open_nursery() as nursery:
        await load(node, [series])
        nursery.start_soon(gated.serve, listeners[0])
        argv = [dcmtk_program("movescu"), *movescu_args(node, series.study_instance_uid, gated.ae_title, "--cancel", "1")]
        movescu = await trio.lowlevel.open_process(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, "TCP_NODELAY": "1"}, cwd=tmp_path,
        )
        chunks: list[bytes] = []
        try:
            with trio.fail_after(60):
                nursery.start_soon(_collect, movescu.stdout, chunks)
                # Sub-operation 1 is at the destination: movescu has sent all it will send
                # but the C-CANCEL, which it sends once the Pending response for it comes.
                await gated.first_store.wait()
                before = await bytes_received_from(node, "MOVESCU")
                while await bytes_received_from(node, "MOVESCU") == before:
                    await trio.sleep(0.005)  # the C-CANCEL is on its way (bounded by fail_after)
                await trio.testing.wait_all_tasks_blocked()  # the node has read and handled it
                gated.gate.set()
                await movescu.wait()
        finally:
            movescu.kill()  # a no-op once it has exited
            await movescu.wait()
        outcome = parse_final_move_response(b"".join(chunks).decode(errors="replace"))
        (await echoscu(peer(node))).check()
        nursery.cancel_scope.cancel()
    assert "Sending Cancel Request" in outcome.output
    assert outcome.status == 0xFE00, outcome.output
    # Sub-operation 2 was already under way and finishes; the other four never start.
    assert len(gated.stored) == 2
    assert outcome.counts == {"Remaining": 4, "Completed": 2, "Failed": 0, "Warning": 0}


async def _collect(stream, chunks: list[bytes]) -> None:
    async for chunk in stream:
        chunks.append(chunk)


def _sop_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
