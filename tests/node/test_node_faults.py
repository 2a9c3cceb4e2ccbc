"""Faults and limits: peers that break off, break the protocol or send what must not be
kept, many peers at once, too many peers, and duplicates. After each the node must keep
serving: other associations complete, a fresh echo succeeds, nothing is left behind.

Misbehaving peers are driven at the PDU level with triopacs' own DimseLink and
MessageFragmenter (as tests/actors/test_link.py does), over real loopback TCP.
"""

import hashlib
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pydicom
import pytest
import trio
from dicom_samples import SeriesSpec, new_uid, write_series
from peers import echoscu, storescp
from pydicom.filebase import DicomBytesIO

from triopacs import connect
from triopacs.client.connection import AssociationRejected
from triopacs.client.contexts import storage_contexts_for, verification_contexts
from triopacs.actors.runtime.events import ActorExited, ActorFailed
from triopacs.client.link import DimseLink
from triopacs.protocol.association import Requestor
from triopacs.protocol.commands import CEchoRQ, CEchoRSP, CFindRQ, CFindRSP, CGetRQ, CMoveRQ, CMoveRSP, CStoreRQ, CStoreRSP
from triopacs.protocol.events import Aborted, AssociationAccepted, ConnectionClosed
from triopacs.protocol.fragments import MessageFragmenter
from triopacs.protocol.negotiation import ProposedContext, build_request
from triopacs.protocol.pdu import PresentationDataValue

from .nodes import AE_TITLE, LOOPBACK, counts, index_rows, leftovers, peer, remote, running_node, stored_files

VERIFICATION = "1.2.840.10008.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
SPILL_AT = 4 * 1024 * 1024  # actors/node/services/storage.py: an unparsed dataset past this goes to incoming/


# ---------------------------------------------------------------- helpers


@asynccontextmanager
async def raw_association(node, calling_ae: str = "FAULTY", *, also: tuple[str, ...] = ()) -> AsyncIterator[DimseLink]:
    """An established association driven by hand: echo, CT and MR storage (MR in both
    roles, for C-GET) and the SOP classes in `also`, explicit VR little endian only, so
    the test knows how datasets are encoded."""
    stream = await trio.open_tcp_stream(LOOPBACK, node.address.port)
    link = DimseLink(stream, Requestor())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run)
        contexts = [ProposedContext(abstract_syntax=uid, transfer_syntaxes=(EXPLICIT_LE,)) for uid in (VERIFICATION, CT, *also)]
        contexts.append(ProposedContext(abstract_syntax=MR, transfer_syntaxes=(EXPLICIT_LE,), scp_role=True))
        await link.request(build_request(calling_ae_title=calling_ae, called_ae_title=AE_TITLE, contexts=contexts))
        assert isinstance(await link.next(), AssociationAccepted)
        yield link
        nursery.cancel_scope.cancel()


def context_id(link: DimseLink, sop_class: str) -> int:
    return link.association.negotiated.find(sop_class).context_id


def encode(ds: pydicom.Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    pydicom.filewriter.write_dataset(fp, ds)
    return fp.getvalue()


def ct_dataset(*, pixels: int = 64, **overrides) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = new_uid()
    ds.StudyInstanceUID = new_uid()
    ds.SeriesInstanceUID = new_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "FAULT", "FAULT^PEER", "CT"
    ds.Columns = min(pixels // 2, 1024)
    ds.Rows, ds.BitsAllocated = pixels // 2 // ds.Columns, 16
    ds.PixelData = bytes(pixels)
    for keyword, value in overrides.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


async def send_part(link: DimseLink, fragmenter: MessageFragmenter, data: bytes) -> None:
    """Hand fragments of a message's dataset to the wire, without finishing it."""
    for pdu in fragmenter.add_data(data):
        link.association.send_data(pdu.pdvs)
        await link.flush()


async def echo_on(link: DimseLink, message_id: int = 99) -> int:
    await link.send(CEchoRQ(message_id=message_id, affected_sop_class_uid=VERIFICATION), context_id(link, VERIFICATION))
    reply = await link.next()
    assert isinstance(reply.message, CEchoRSP)
    return reply.message.status


async def store_on(link: DimseLink, request: CStoreRQ, dataset: bytes) -> CStoreRSP:
    await link.send(request, context_id(link, request.affected_sop_class_uid), dataset)
    reply = await link.next()
    assert isinstance(reply.message, CStoreRSP), reply
    return reply.message


async def wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    """Wait for a condition on the file system, which sends no events (bounded)."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.002)


async def association_exits(subscription, count: int = 1) -> None:
    """Wait for the next `count` association actors to end, and check each ended cleanly:
    a peer's misbehaviour must end its association, never crash the actor serving it."""
    ended = []
    with trio.fail_after(30):
        async for event in subscription:
            if event.path.startswith("/node/associations/a"):
                ended.append(event)
                if len(ended) == count:
                    break
    crashed = [event for event in ended if isinstance(event, ActorFailed)]
    assert not crashed, "association actor crashed:\n" + "\n".join(event.traceback for event in crashed)


@pytest.fixture
def series(tmp_path):
    return write_series(tmp_path / "gen", SeriesSpec(count=3, modality="MR"))


def ok_statuses(results) -> list[int]:
    return [result.status for result in results]


# ---------------------------------------------------------------- peers that break off


async def _abort(link: DimseLink) -> None:
    await link.abort()


async def _vanish(link: DimseLink) -> None:
    await link.stream.aclose()


async def _vanish_mid_pdu(link: DimseLink) -> None:
    # Queue one more PDU of the dataset but put only half of its bytes on the wire.
    link.association.send_data((PresentationDataValue(context_id=3, is_command=False, is_last=False, data=bytes(4096)),))
    pdu = link.association.data_to_send()
    await link.stream.send_all(pdu[: len(pdu) // 2])
    await link.stream.aclose()


@pytest.mark.parametrize("end", [_abort, _vanish, _vanish_mid_pdu], ids=["A-ABORT", "socket closed", "closed mid-PDU"])
async def test_a_peer_breaking_off_mid_dataset_leaves_nothing_and_others_go_on(tmp_path, series, end):
    async with running_node(tmp_path) as node:
        with node.subscribe(ActorExited, ActorFailed) as exits:
            contexts = [*verification_contexts(), *storage_contexts_for(series.paths)]
            # A well-behaved peer with an association open across the fault.
            async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=contexts) as other:
                assert (await other.store(series.paths[0])).ok
                doomed = ct_dataset(pixels=10 * 1024 * 1024)
                async with raw_association(node) as link:
                    request = CStoreRQ(message_id=1, affected_sop_class_uid=CT, affected_sop_instance_uid=doomed.SOPInstanceUID)
                    fragmenter = MessageFragmenter(request, context_id=context_id(link, CT), max_pdu_length=link.association.peer_max_pdu_length)
                    # 6 of its 10 MB: by then the node writes it to a temp file (beside its
                    # destination once the header is parsed, else under incoming/).
                    data = encode(doomed)
                    await send_part(link, fragmenter, data[: SPILL_AT + 2 * 1024 * 1024])
                    await wait_for(lambda: leftovers(node), "a temp file for the dataset")
                    await end(link)
                    await association_exits(exits)
                assert leftovers(node) == []
                assert index_rows(node, "SELECT 1 FROM instance WHERE sop_instance_uid = ?", doomed.SOPInstanceUID) == []
                # the other association carries on after the fault
                assert ok_statuses([await other.store(path) for path in series.paths[1:]]) == [0, 0]
            (await echoscu(peer(node))).check()
            totals = await counts(node)
            files = stored_files(node)
    assert totals.instances == 3 and sorted(p.stem for p in files) == sorted(series.sop_instance_uids)


@pytest.mark.parametrize("followed", [False, True], ids=["alone", "followed by a data PDU in the same read"])
async def test_a_malformed_command_set_aborts_that_association_only(tmp_path, series, followed):
    async with running_node(tmp_path) as node:
        contexts = [*verification_contexts(), *storage_contexts_for(series.paths)]
        with node.subscribe(ActorExited, ActorFailed) as exits:
            async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=contexts) as other:
                async with raw_association(node) as link:
                    assert await echo_on(link) == 0
                    # A command PDV whose group 0000 element claims a length it does not have.
                    link.association.send_data(
                        (PresentationDataValue(context_id=context_id(link, CT), is_command=True, is_last=True,
                                               data=b"\x00\x00\x00\x00\x04\x00\x00\x00garbage!"),)
                    )
                    if followed:  # as a peer sending a C-STORE does: its dataset right behind
                        link.association.send_data(
                            (PresentationDataValue(context_id=context_id(link, CT), is_command=False, is_last=True, data=encode(ct_dataset())),)
                        )
                    await link.flush()  # one write: the node reads both PDUs at once
                    with trio.fail_after(10):
                        event = await link.next()
                    assert isinstance(event, Aborted) and event.by_peer
                    assert isinstance(await link.next(), ConnectionClosed)
                    await association_exits(exits)
                assert ok_statuses([await other.store(path) for path in series.paths]) == [0, 0, 0]
                await other.echo()
        (await echoscu(peer(node))).check()
        assert (await counts(node)).instances == 3


STUDY_FIND, STUDY_MOVE, STUDY_GET = (f"1.2.840.10008.5.1.4.1.2.2.{n}" for n in (1, 2, 3))


@pytest.mark.parametrize("operation", ["C-FIND", "C-MOVE", "C-GET"])
async def test_a_peer_vanishing_during_a_query_or_retrieve(tmp_path, operation):
    # Eight 1 MB matches: the node is still answering (or sending sub-operations) when
    # the requestor closes its socket after the first response.
    study, series = new_uid(), new_uid()
    datasets = [ct_dataset(StudyInstanceUID=study, SeriesInstanceUID=series, SOPClassUID=MR) for _ in range(8)]
    for ds in datasets:
        ds.TextValue = "x" * (1 << 20)
    identifier = pydicom.Dataset()
    identifier.QueryRetrieveLevel, identifier.StudyInstanceUID = "STUDY", study
    if operation == "C-FIND":
        identifier.QueryRetrieveLevel, identifier.SeriesInstanceUID = "IMAGE", series
        identifier.SOPInstanceUID, identifier.TextValue = "", ""
    async with storescp(parent_dir=tmp_path) as destination:
        async with running_node(tmp_path, remote=[remote(destination.ae_title, destination.port)]) as node:
            async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for(datasets[:1])) as loader:
                assert ok_statuses([await loader.store(ds) for ds in datasets]) == [0] * 8
            with node.subscribe(ActorExited, ActorFailed) as exits:
                async with raw_association(node, also=(STUDY_FIND, STUDY_MOVE, STUDY_GET)) as link:
                    if operation == "C-FIND":
                        request = CFindRQ(message_id=1, affected_sop_class_uid=STUDY_FIND)
                    elif operation == "C-MOVE":
                        request = CMoveRQ(message_id=1, affected_sop_class_uid=STUDY_MOVE, move_destination=destination.ae_title)
                    else:
                        request = CGetRQ(message_id=1, affected_sop_class_uid=STUDY_GET)
                    await link.send(request, context_id(link, request.affected_sop_class_uid), encode(identifier))
                    with trio.fail_after(30):
                        first = await link.next()  # a Pending response, or C-GET's first C-STORE
                    assert isinstance(first.message, (CFindRSP, CMoveRSP, CStoreRQ)), first
                    await link.stream.aclose()
                    await association_exits(exits)
            (await echoscu(peer(node))).check()
            assert (await counts(node)).instances == 8 and leftovers(node) == []


# ---------------------------------------------------------------- many peers, too many peers


async def test_fifty_concurrent_storing_associations(tmp_path):
    peers = 50
    generated = [write_series(tmp_path / "gen", SeriesSpec(count=3, modality="MR", patient_id=f"P{n:02d}")) for n in range(peers)]
    contexts = storage_contexts_for(generated[0].paths[:1])
    everyone_connected = trio.Event()
    connected = 0

    async def store(series) -> None:
        nonlocal connected
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=contexts) as association:
            connected += 1
            if connected == peers:
                everyone_connected.set()
            await everyone_connected.wait()  # all 50 associations are open at once
            for path in series.paths:
                assert (await association.store(path)).ok

    async with running_node(tmp_path) as node:
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for series in generated:
                    nursery.start_soon(store, series)
        totals = await counts(node)
        files = stored_files(node)
        rows = index_rows(node, "SELECT sop_instance_uid, file_path, file_size FROM instance")
        assert leftovers(node) == []
    expected = {uid for series in generated for uid in series.sop_instance_uids}
    assert (totals.patients, totals.studies, totals.series, totals.instances) == (50, 50, 50, 150)
    assert {p.stem for p in files} == expected == {uid for uid, _, _ in rows}
    for uid, relative, size in rows:
        assert (node.config.data_dir / relative).stat().st_size == size


async def test_association_limit_rejects_transient_local_limit_exceeded(tmp_path):
    async with running_node(tmp_path, max_associations=2) as node:
        with node.subscribe(ActorExited, ActorFailed) as exits:
            client = lambda: connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=verification_contexts())  # noqa: E731
            async with client() as first, client() as second:
                with pytest.raises(AssociationRejected) as rejected:
                    async with client():
                        pass
                # DCMTK sees the same answer
                echo = await echoscu(peer(node))
                await first.echo()
                await second.echo()
            # PS3.8 Table 9-21: result 2 rejected-transient, source 3 service-provider
            # (presentation), reason 2 local-limit-exceeded.
            assert (rejected.value.result, rejected.value.source, rejected.value.reason) == (2, 3, 2)
            assert echo.returncode != 0, echo.output
            assert "Result: Rejected Transient, Source: Service Provider (Presentation Related)" in echo.output
            assert "Reason: Local Limit Exceeded" in echo.output
            # Four associations ended (two rejected, two released): the limit frees up.
            await association_exits(exits, 4)
        async with client() as third:
            await third.echo()


# ---------------------------------------------------------------- duplicates


@pytest.mark.parametrize(
    ("policy", "status", "kept"),
    [("reject", 0x0111, "original"), ("ignore", 0x0000, "original"), ("replace", 0x0000, "new")],
)
async def test_duplicate_sop_instance(tmp_path, series, policy, status, kept):
    original = series.paths[0]
    changed = pydicom.dcmread(original)
    changed.ImageComments = "sent again, changed"
    uid = str(changed.SOPInstanceUID)
    async with running_node(tmp_path, duplicates=policy) as node:
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=storage_contexts_for([original])) as association:
            first = await association.store(original)
            second = await association.store(changed)
        rows = index_rows(node, "SELECT file_path, sha256 FROM instance WHERE sop_instance_uid = ?", uid)
        files = stored_files(node)
        assert leftovers(node) == []
    assert first.status == 0
    assert second.status == status
    if status:
        assert second.error_comment  # the peer is told why
    assert len(rows) == 1 and len(files) == 1
    stored = pydicom.dcmread(files[0])
    assert ("ImageComments" in stored) is (kept == "new")
    if kept == "original":
        assert pydicom.dcmread(original) == stored

    assert rows[0][1] == hashlib.sha256(files[0].read_bytes()).hexdigest()


# ---------------------------------------------------------------- datasets the node must not keep


def _bad_command_uid():
    ds = ct_dataset()
    ds.SOPInstanceUID = "1.2.3..4"  # two dots: digits and dots only, but not a UID
    return CStoreRQ(message_id=1, affected_sop_class_uid=CT, affected_sop_instance_uid="1.2.3..4"), encode(ds)


def _no_study_uid():
    ds = ct_dataset(StudyInstanceUID=None)
    return CStoreRQ(message_id=1, affected_sop_class_uid=CT, affected_sop_instance_uid=ds.SOPInstanceUID), encode(ds)


def _other_sop_class():
    ds = ct_dataset(SOPClassUID=MR)  # an MR dataset announced as CT
    return CStoreRQ(message_id=1, affected_sop_class_uid=CT, affected_sop_instance_uid=ds.SOPInstanceUID), encode(ds)


def _garbage():
    return CStoreRQ(message_id=1, affected_sop_class_uid=CT, affected_sop_instance_uid=new_uid()), b"\xde\xad\xbe\xef" * 64


def _traversing_study_uid():
    ds = ct_dataset(StudyInstanceUID="../../etc")
    return CStoreRQ(message_id=1, affected_sop_class_uid=CT, affected_sop_instance_uid=ds.SOPInstanceUID), encode(ds)


def _traversing_series_uid():
    ds = ct_dataset(SeriesInstanceUID="../../../../tmp/triopacs-escaped-series")
    return CStoreRQ(message_id=1, affected_sop_class_uid=CT, affected_sop_instance_uid=ds.SOPInstanceUID), encode(ds)


def _store(ds: pydicom.Dataset, data: bytes | None = None):
    request = CStoreRQ(message_id=1, affected_sop_class_uid=CT, affected_sop_instance_uid=ds.SOPInstanceUID)
    return request, encode(ds) if data is None else data


PIXELS = 64 * 1024


def _cut_inside_the_pixel_data():
    ds = ct_dataset(pixels=PIXELS)
    return _store(ds, encode(ds)[:-1000])


def _cut_inside_an_element_header():
    ds = ct_dataset(pixels=PIXELS)
    return _store(ds, encode(ds)[: -PIXELS - 6])  # half of Pixel Data's 12-byte header


def _length_past_the_end():
    ds = ct_dataset(pixels=PIXELS)
    data = bytearray(encode(ds))
    data[-PIXELS - 4 : -PIXELS] = struct.pack("<L", 0xFFFFFFF0)  # Pixel Data claims ~4 GiB
    return _store(ds, bytes(data))


def _several_study_uids():
    ds = ct_dataset()
    ds.StudyInstanceUID = ["1.2", "..", "..", "x"]  # 1.2\..\..\x
    return _store(ds)


def _two_valid_series_uids():
    ds = ct_dataset()
    ds.SeriesInstanceUID = [new_uid(), new_uid()]
    return _store(ds)


def _control_character_in_uid(character: str):
    def make():
        ds = ct_dataset()
        ds.StudyInstanceUID = f"1.2{character}3"
        return _store(ds)

    return make


def _nested(depth: int):
    """Sequences `depth` deep, as undefined-length sequences and items (written by hand:
    pydicom itself cannot write 100,000 levels)."""

    def make():
        ds = ct_dataset()
        data = encode(ds)
        opening = struct.pack("<HH2s2xL", 0x0008, 0x1115, b"SQ", 0xFFFFFFFF) + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
        closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
        pixel_data = data.index(struct.pack("<HH", 0x7FE0, 0x0010))
        return _store(ds, data[:pixel_data] + opening * depth + closing * depth + data[pixel_data:])

    return make


# name: (the request and dataset, the status they must get)
BAD = {
    "invalid SOP Instance UID in the command": (_bad_command_uid, 0x0117),  # PS3.7 C.5.11 Invalid SOP Instance
    "no StudyInstanceUID": (_no_study_uid, 0xA900),
    "SOP class differs from the command's": (_other_sop_class, 0xA900),
    "garbage bytes": (_garbage, 0xC000),
    "Study UID ../../etc": (_traversing_study_uid, 0xA900),
    "Series UID ../../../../tmp/triopacs-escaped-series": (_traversing_series_uid, 0xA900),
    "cut inside the pixel data": (_cut_inside_the_pixel_data, 0xC000),
    "cut inside an element header": (_cut_inside_an_element_header, 0xC000),
    "last element claims 0xFFFFFFF0 bytes": (_length_past_the_end, 0xC000),
    "Study UID 1.2\\..\\..\\x": (_several_study_uids, 0xA900),
    "two valid Series UIDs": (_two_valid_series_uids, 0xA900),
    "NUL in a UID": (_control_character_in_uid("\x00"), 0xA900),
    "ESC in a UID": (_control_character_in_uid("\x1b"), 0xA900),
    "newline in a UID": (_control_character_in_uid("\n"), 0xA900),
    "sequences 65 deep": (_nested(65), 0xC000),
    "sequences 10,000 deep": (_nested(10_000), 0xC000),
    "sequences 100,000 deep": (_nested(100_000), 0xC000),
}


def files_outside_the_node(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file() and "node" not in path.relative_to(root).parts}


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # pydicom, about our bad UIDs
@pytest.mark.parametrize("make, status", list(BAD.values()), ids=list(BAD))
async def test_a_dataset_the_node_must_not_keep_gets_a_failure_and_leaves_nothing(tmp_path, make, status):
    request, dataset = make()
    before = files_outside_the_node(tmp_path)
    async with running_node(tmp_path) as node:
        async with raw_association(node) as link:
            response = await store_on(link, request, dataset)
            assert await echo_on(link) == 0  # the association itself is fine
        totals = await counts(node)
        assert leftovers(node) == [] and stored_files(node) == []
        assert list((node.config.data_dir / "files").iterdir()) == []
    assert response.status == status, (hex(response.status), response.error_comment)
    assert response.error_comment and response.error_comment.isprintable(), "a failure must say why, printably"
    assert response.affected_sop_instance_uid == request.affected_sop_instance_uid
    assert totals.instances == totals.patients == 0
    assert files_outside_the_node(tmp_path) == before
    assert not (tmp_path / "etc").exists() and not Path("/tmp/triopacs-escaped-series").exists()


def with_raw_instance_uid(request: CStoreRQ, raw: bytes) -> bytes:
    """The request's command set with any bytes as its Affected SOP Instance UID (our own
    CStoreRQ refuses bad ones), the group length fixed up."""
    elements = {}
    data = request.encode()
    position = 12  # past the group length element
    while position < len(data):
        group, element, length = struct.unpack_from("<HHL", data, position)
        elements[(group, element)] = data[position + 8 : position + 8 + length]
        position += 8 + length
    elements[(0x0000, 0x1000)] = raw + b"\x00" * (len(raw) % 2)
    body = b"".join(struct.pack("<HHL", *tag, len(value)) + value for tag, value in sorted(elements.items()))
    return struct.pack("<HHLL", 0, 0, 4, len(body)) + body


@pytest.mark.parametrize(
    "raw",
    [b"../../etc/", b"1.2.3.abc", b"1.2/3.4", b"1." + b"2" * 198, b"1.2\x003", b"1.2\x1b3", b"1.2\n3"],
    ids=["traversal", "letters", "slash", "200 characters", "NUL", "ESC", "newline"],
)
async def test_a_bad_uid_in_the_command_gets_a_status_never_a_path_or_an_abort(tmp_path, raw):
    ds = ct_dataset()
    ds.SOPInstanceUID = "1.2.3.4.56"
    command = with_raw_instance_uid(CStoreRQ(message_id=1, affected_sop_class_uid=CT, affected_sop_instance_uid="1.2.3.4.56"), raw)
    async with running_node(tmp_path) as node:
        async with raw_association(node) as link:
            cid = context_id(link, CT)
            link.association.send_data((PresentationDataValue(context_id=cid, is_command=True, is_last=True, data=command),))
            link.association.send_data((PresentationDataValue(context_id=cid, is_command=False, is_last=True, data=encode(ds)),))
            await link.flush()
            with trio.fail_after(10):
                reply = await link.next()
            assert isinstance(reply.message, CStoreRSP), reply
            assert reply.message.status == 0x0117  # PS3.7 C.5.11 Invalid SOP Instance
            assert reply.message.error_comment.startswith("Affected SOP Instance UID is not a valid UID")
            assert reply.message.error_comment.isprintable()
            assert await echo_on(link) == 0  # the association goes on
        assert leftovers(node) == [] and stored_files(node) == []
        assert (await counts(node)).instances == 0
    assert not (tmp_path / "etc").exists()
