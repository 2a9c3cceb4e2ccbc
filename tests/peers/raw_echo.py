"""A minimal blocking DICOM client: associate, C-ECHO, release, over a raw socket.

Used to measure association latency without process start-up (an `echoscu` run is
dominated by exec and dictionary loading) and without a DICOM library's own overhead.
It proposes only Verification with implicit VR little endian, the one thing every SCP
must accept. Independent of triopacs' own protocol code on purpose.
"""

from __future__ import annotations

import socket
import struct
import time

VERIFICATION = b"1.2.840.10008.1.1"
IMPLICIT_VR_LITTLE_ENDIAN = b"1.2.840.10008.1.2"
APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
# Implementation class UID of this little client (under 2.25, made up for it).
IMPLEMENTATION_CLASS_UID = b"2.25.330115167052208823962536458305716094245"


class EchoFailed(RuntimeError):
    pass


def _even(uid: bytes) -> bytes:
    return uid + b"\0" if len(uid) % 2 else uid


def _item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def _pdu(pdu_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBI", pdu_type, 0, len(payload)) + payload


def _ae(title: str) -> bytes:
    return title.encode("ascii").ljust(16)[:16]


def associate_rq(called_ae: str, calling_ae: str, max_pdu: int = 16384) -> bytes:
    presentation_context = _item(
        0x20,
        struct.pack(">BBBB", 1, 0, 0, 0)
        + _item(0x30, VERIFICATION)
        + _item(0x40, IMPLICIT_VR_LITTLE_ENDIAN),
    )
    user_information = _item(
        0x50, _item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, IMPLEMENTATION_CLASS_UID)
    )
    header = struct.pack(">HH", 1, 0) + _ae(called_ae) + _ae(calling_ae) + bytes(32)
    return _pdu(0x01, header + _item(0x10, APPLICATION_CONTEXT) + presentation_context + user_information)


def _element(group: int, element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", group, element, len(value)) + value


def c_echo_rq(message_id: int = 1) -> bytes:
    """P-DATA-TF carrying a C-ECHO-RQ command set (implicit VR LE), context 1."""
    body = (
        _element(0x0000, 0x0002, _even(VERIFICATION))
        + _element(0x0000, 0x0100, struct.pack("<H", 0x0030))
        + _element(0x0000, 0x0110, struct.pack("<H", message_id))
        + _element(0x0000, 0x0800, struct.pack("<H", 0x0101))
    )
    command = _element(0x0000, 0x0000, struct.pack("<I", len(body))) + body
    pdv = struct.pack(">IBB", len(command) + 2, 1, 0x03) + command  # command, last fragment
    return _pdu(0x04, pdv)


RELEASE_RQ = _pdu(0x05, bytes(4))


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    chunks, remaining = [], count
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise EchoFailed("peer closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    pdu_type, _, length = struct.unpack(">BBI", _read_exactly(sock, 6))
    return pdu_type, _read_exactly(sock, length)


def _echo_status(p_data: bytes) -> int:
    # One PDV holding the whole C-ECHO-RSP command: walk its implicit VR elements.
    commands = p_data[6:]
    position = 0
    while position + 8 <= len(commands):
        group, element, length = struct.unpack_from("<HHI", commands, position)
        if (group, element) == (0x0000, 0x0900):
            return struct.unpack_from("<H", commands, position + 8)[0]
        position += 8 + length
    raise EchoFailed("C-ECHO-RSP without a status")


def echo_once(port: int, called_ae: str, calling_ae: str = "RAWECHO", host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Associate, C-ECHO, release; raises EchoFailed unless every step succeeded."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(associate_rq(called_ae, calling_ae))
        pdu_type, payload = _read_pdu(sock)
        if pdu_type != 0x02:
            raise EchoFailed(f"association not accepted (PDU type {pdu_type:#04x}, {payload[:4].hex()})")
        sock.sendall(c_echo_rq())
        pdu_type, payload = _read_pdu(sock)
        if pdu_type != 0x04:
            raise EchoFailed(f"expected P-DATA-TF, got PDU type {pdu_type:#04x}")
        if (status := _echo_status(payload)) != 0:
            raise EchoFailed(f"C-ECHO status {status:#06x}")
        sock.sendall(RELEASE_RQ)
        pdu_type, _ = _read_pdu(sock)
        if pdu_type != 0x06:
            raise EchoFailed(f"expected A-RELEASE-RP, got PDU type {pdu_type:#04x}")


def echo_latencies(port: int, called_ae: str, rounds: int, warmup: int = 3) -> list[float]:
    """Seconds per associate+echo+release, `rounds` times after `warmup` untimed ones."""
    for _ in range(warmup):
        echo_once(port, called_ae)
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        echo_once(port, called_ae)
        timings.append(time.perf_counter() - started)
    return timings
