"""DIMSE messages against real DCMTK processes, over loopback TCP.

Our command sets and fragments must be what DCMTK sends and what it accepts:
- storescu sends to a minimal acceptor that reassembles with MessageAssembler and
  answers with our C-STORE-RSP (storescu must report success);
- our requests go to storescp through MessageFragmenter, its responses come back
  through MessageAssembler, and the file it writes must hold our data set.

Association setup here is hand-made bytes on purpose: these tests pin the DIMSE layer
and must not depend on the association code under test elsewhere.
"""

import io
import os
import shutil
import socket
import struct
import subprocess

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filereader import read_dataset

from triopacs.protocol import commands as c
from triopacs.protocol import fragments as f
from triopacs.protocol.pdu import PresentationDataValue
from triopacs.protocol.status import StatusClass, status_class

pytestmark = pytest.mark.skipif(
    shutil.which("storescu") is None or shutil.which("storescp") is None,
    reason="DCMTK is not installed",
)

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
OUR_MAX_PDU = 4096  # small, so DCMTK's data set arrives in many fragments
ENV = {**os.environ, "TCP_NODELAY": "1"}  # Debian's DCMTK waits on Nagle otherwise
TIMEOUT = 20


def _ct_small() -> tuple[pydicom.Dataset, bytes]:
    """CT_small.dcm's data set and its explicit VR little endian bytes as stored."""
    path = get_testdata_file("CT_small.dcm")
    dataset = pydicom.dcmread(path)
    raw = open(path, "rb").read()
    meta_end = 132 + 12 + struct.unpack_from("<L", raw, 132 + 8)[0]  # preamble, DICM, group 2
    return dataset, raw[meta_end:]


# --- just enough of the upper layer, by hand ---------------------------------------------


def _item(item_type: int, body: bytes) -> bytes:
    return struct.pack(">BxH", item_type, len(body)) + body


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BxL", pdu_type, len(body)) + body


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("peer closed the connection")
        data += chunk
    return bytes(data)


def _read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    pdu_type, length = struct.unpack(">BxL", _recv_exact(sock, 6))
    return pdu_type, _recv_exact(sock, length)


def _items(body: bytes, offset: int):
    while offset < len(body):
        item_type, length = struct.unpack_from(">BxH", body, offset)
        yield item_type, body[offset + 4 : offset + 4 + length]
        offset += 4 + length


def _max_length(associate_body: bytes) -> int:
    for item_type, item in _items(associate_body, 68):
        if item_type == 0x50:
            for sub_type, sub in _items(item, 0):
                if sub_type == 0x51:
                    return struct.unpack(">L", sub)[0]
    return 0


def _pdvs(body: bytes) -> list[PresentationDataValue]:
    view = memoryview(body)
    pdvs = []
    offset = 0
    while offset < len(body):
        length, context_id, header = struct.unpack_from(">LBB", body, offset)
        pdvs.append(
            PresentationDataValue(
                context_id=context_id,
                is_command=bool(header & 1),
                is_last=bool(header & 2),
                data=view[offset + 6 : offset + 4 + length],
            )
        )
        offset += 4 + length
    return pdvs


def _user_information(max_pdu: int) -> bytes:
    return _item(0x50, _item(0x51, struct.pack(">L", max_pdu)) + _item(0x52, b"1.2.826.0.1.3680043.9.1"))


def _associate_ac(request: bytes) -> tuple[bytes, dict[int, str]]:
    """Accept every proposed context, preferring explicit VR little endian."""
    accepted = {}
    items = _item(0x10, APPLICATION_CONTEXT)
    for item_type, item in _items(request, 68):
        if item_type != 0x20:
            continue
        syntaxes = [sub.decode() for sub_type, sub in _items(item, 4) if sub_type == 0x40]
        chosen = EXPLICIT_LE if EXPLICIT_LE in syntaxes else syntaxes[0]
        accepted[item[0]] = chosen
        items += _item(0x21, bytes([item[0], 0, 0, 0]) + _item(0x40, chosen.encode()))
    items += _user_information(OUR_MAX_PDU)
    fixed = struct.pack(">H2x", 1) + request[4:36] + bytes(32)  # echo the AE titles
    return _pdu(0x02, fixed + items), accepted


def _associate_rq(contexts: list[tuple[int, str, str]]) -> bytes:
    items = _item(0x10, APPLICATION_CONTEXT)
    for context_id, abstract, transfer in contexts:
        body = bytes([context_id, 0, 0, 0]) + _item(0x30, abstract.encode()) + _item(0x40, transfer.encode())
        items += _item(0x20, body)
    items += _user_information(OUR_MAX_PDU)
    fixed = struct.pack(">H2x16s16s", 1, b"STORESCP".ljust(16), b"TRIOPACS".ljust(16)) + bytes(32)
    return _pdu(0x01, fixed + items)


def _receive_message(sock: socket.socket, assembler: f.MessageAssembler, max_pdu: int):
    """One whole message: (context id, command, data set bytes or None), checking that
    every PDU keeps to the limit we announced."""
    command = None
    dataset = bytearray()
    while True:
        pdu_type, body = _read_pdu(sock)
        assert pdu_type == 0x04, f"expected P-DATA-TF, got PDU type {pdu_type}"
        assert len(body) <= max_pdu
        for pdv in _pdvs(body):
            event = assembler.feed(pdv)
            if isinstance(event, f.CommandReceived):
                command = event.message
                if not command.has_dataset:
                    return event.context_id, command, None
            elif event is not None:
                dataset += event.data
                if event.is_last:
                    return event.context_id, command, bytes(dataset)


def _send_message(sock, message, dataset_chunks, *, context_id: int, max_pdu: int) -> None:
    for pdu in f.fragment_message(message, dataset_chunks, context_id=context_id, max_pdu_length=max_pdu):
        sock.sendall(pdu.encode())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the tests -------------------------------------------------------------------------


def test_storescu_sends_to_us_and_accepts_our_response():
    original, _ = _ct_small()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(TIMEOUT)
        port = server.getsockname()[1]
        storescu = subprocess.Popen(
            ["storescu", "-v", "-aec", "TRIOPACS", "127.0.0.1", str(port), get_testdata_file("CT_small.dcm")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=ENV,
        )
        try:
            connection, _ = server.accept()
            with connection:
                connection.settimeout(TIMEOUT)
                pdu_type, request = _read_pdu(connection)
                assert pdu_type == 0x01
                their_max_pdu = _max_length(request)
                accept, contexts = _associate_ac(request)
                connection.sendall(accept)

                assembler = f.MessageAssembler()
                context_id, command, dataset = _receive_message(connection, assembler, OUR_MAX_PDU)
                assert isinstance(command, c.CStoreRQ)
                assert command.affected_sop_class_uid == CT_IMAGE_STORAGE
                assert command.affected_sop_instance_uid == original.SOPInstanceUID
                assert contexts[context_id] == EXPLICIT_LE
                received = read_dataset(io.BytesIO(dataset), is_implicit_VR=False, is_little_endian=True)
                del original[0xFFFCFFFC]  # storescu drops the file's trailing padding
                assert received == original

                response = c.CStoreRSP(
                    message_id_being_responded_to=command.message_id,
                    status=0x0000,
                    affected_sop_class_uid=command.affected_sop_class_uid,
                    affected_sop_instance_uid=command.affected_sop_instance_uid,
                )
                _send_message(connection, response, None, context_id=context_id, max_pdu=their_max_pdu)

                pdu_type, _ = _read_pdu(connection)
                assert pdu_type == 0x05  # A-RELEASE-RQ
                connection.sendall(_pdu(0x06, bytes(4)))  # A-RELEASE-RP
            output, _ = storescu.communicate(timeout=TIMEOUT)
        finally:
            if storescu.poll() is None:
                storescu.kill()
                storescu.wait()
    assert storescu.returncode == 0, output.decode(errors="replace")
    assert b"Received Store Response (Success)" in output, output.decode(errors="replace")


def _wait_until_listening(process: subprocess.Popen, port: int) -> None:
    """storescp says nothing when it is ready: probe the port, waiting on the process
    between tries so that an early exit is seen at once."""
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except ConnectionRefusedError:
            try:
                process.wait(timeout=0.025)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"storescp exited: {process.stdout.read().decode(errors='replace')}")
    pytest.fail("storescp did not start listening")


@pytest.fixture
def storescp(tmp_path):
    port = _free_port()
    process = subprocess.Popen(
        ["storescp", "-aet", "STORESCP", "-od", str(tmp_path), "+B", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=ENV,
    )
    try:
        _wait_until_listening(process, port)
        yield port, tmp_path
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)


@pytest.mark.parametrize("chunk_size", [1 << 20, 4097, 1000])
def test_storescp_takes_our_echo_and_store(storescp, chunk_size):
    port, output_dir = storescp
    original, stored_bytes = _ct_small()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(_associate_rq([(1, VERIFICATION, IMPLICIT_LE), (3, CT_IMAGE_STORAGE, EXPLICIT_LE)]))
        pdu_type, accept = _read_pdu(sock)
        assert pdu_type == 0x02
        their_max_pdu = _max_length(accept)
        results = {item[0]: item[2] for item_type, item in _items(accept, 68) if item_type == 0x21}
        assert results == {1: 0, 3: 0}
        assembler = f.MessageAssembler()

        echo = c.CEchoRQ(message_id=1, affected_sop_class_uid=VERIFICATION)
        _send_message(sock, echo, None, context_id=1, max_pdu=their_max_pdu)
        _, response, _ = _receive_message(sock, assembler, OUR_MAX_PDU)
        assert isinstance(response, c.CEchoRSP) and response.status == 0
        assert response.message_id_being_responded_to == 1

        store = c.CStoreRQ(
            message_id=2,
            affected_sop_class_uid=CT_IMAGE_STORAGE,
            affected_sop_instance_uid=original.SOPInstanceUID,
        )
        chunks = [stored_bytes[i : i + chunk_size] for i in range(0, len(stored_bytes), chunk_size)]
        _send_message(sock, store, chunks, context_id=3, max_pdu=their_max_pdu)
        _, response, _ = _receive_message(sock, assembler, OUR_MAX_PDU)
        assert isinstance(response, c.CStoreRSP)
        assert status_class(response.status) is StatusClass.SUCCESS, response
        assert response.affected_sop_instance_uid == original.SOPInstanceUID

        sock.sendall(_pdu(0x05, bytes(4)))  # A-RELEASE-RQ
        assert _read_pdu(sock)[0] == 0x06

    (written,) = output_dir.iterdir()
    received = pydicom.dcmread(written)
    assert received.SOPInstanceUID == original.SOPInstanceUID
    assert read_dataset(io.BytesIO(stored_bytes), is_implicit_VR=False, is_little_endian=True) == received
    assert received.PixelData == original.PixelData
