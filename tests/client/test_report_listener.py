"""The storage commitment report listener (client/report_listener.py) is a listener on
the network like the node's: garbage, truncated PDUs, a wrong called AE title, a
connection that says nothing, and requests it does not serve each cost only their own
connection, and it goes on answering."""

import socket
import struct

import trio
from peers.raw_echo import RELEASE_RQ, _read_pdu, associate_rq, echo_once

from triopacs.actors.runtime.threads import run_sync_in_thread
from triopacs.client.report_listener import ReportListener, listen_for_reports

AE = "MODALITY"


def raw(port: int, payload: bytes, *, then_read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while then_read and (chunk := sock.recv(65536)):
            chunks.append(chunk)
        return b"".join(chunks)


def n_delete_rq() -> bytes:
    """An N-DELETE-RQ (no dataset) on the Verification context: not what the listener serves."""
    def element(group, number, value):
        return struct.pack("<HHI", group, number, len(value)) + value
    body = (element(0, 0x0003, b"1.2.840.10008.1.1\0") + element(0, 0x0100, struct.pack("<H", 0x0150))
            + element(0, 0x0110, struct.pack("<H", 5)) + element(0, 0x0800, struct.pack("<H", 0x0101))
            + element(0, 0x1001, b"1.2.3.4\0"))
    command = element(0, 0, struct.pack("<I", len(body))) + body
    return struct.pack(">BBI", 4, 0, len(command) + 6) + struct.pack(">IBB", len(command) + 2, 1, 3) + command


def first_answer(port: int, payload: bytes) -> int:
    """The type of the first PDU the listener answers with."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        return _read_pdu(sock)[0]


def unrecognized_request_status(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(associate_rq(AE, "SCP"))
        assert _read_pdu(sock)[0] == 0x02  # A-ASSOCIATE-AC
        sock.sendall(n_delete_rq())
        kind, payload = _read_pdu(sock)
        assert kind == 0x04
        status_at = payload.index(struct.pack("<HHI", 0, 0x0900, 2))
        sock.sendall(RELEASE_RQ)
        _read_pdu(sock)
        return struct.unpack_from("<H", payload, status_at + 8)[0]


async def test_hostile_connections_cost_only_themselves(autojump_clock):
    # The blocking clients run on threads counted by the runtime, so virtual time stands
    # still while they talk: the listener's ARTIM cannot fire in the middle.
    async with listen_for_reports(ae_title=AE) as listener:
        port = listener.port
        silent = await trio.open_tcp_stream("127.0.0.1", port)  # says nothing at all
        answers = {}
        for name, payload in {
            "garbage": b"\x17\x03\x03\x00\x10 not DICOM at all",
            "truncated A-ASSOCIATE-RQ": associate_rq(AE, "SCP")[:40],
            "length past the data": b"\x01\x00\xff\xff\xff\xf0" + b"\0" * 10,
        }.items():
            answers[name] = await run_sync_in_thread(raw, port, payload)
        wrong_ae = await run_sync_in_thread(first_answer, port, associate_rq("SOMEONE", "SCP"))
        status = await run_sync_in_thread(unrecognized_request_status, port)
        await run_sync_in_thread(echo_once, port, AE)  # still serving
        await silent.aclose()
    for name, answer in answers.items():
        assert answer == b"" or answer[0] == 0x07, (name, answer[:16])  # closed, or A-ABORT
    assert wrong_ae == 0x03  # A-ASSOCIATE-RJ: called AE title not recognized
    assert status == 0x0211  # unrecognized operation


async def test_a_silent_connection_is_closed_when_artim_runs_out(autojump_clock):
    listener = ReportListener(AE, artim_timeout=30.0)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, listener.serve, 0)
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(31):  # virtual seconds
            assert await stream.receive_some(100) == b""  # the listener hung up
        nursery.cancel_scope.cancel()
