"""Receive-side cost of one C-STORE: decode + reassemble a 512 KiB data set.

The data set arrives in P-DATA-TF PDUs of 16 KiB (the peer's maximum length 16384, as
DCMTK's storescu uses by default). Each PDU is fed to the incremental decoder as one
network chunk, its PDVs go through the reassembler, and the data set fragments reach a
sink that only counts bytes (writing them is the storage layer's cost, not ours).

Also timed, to see where the time goes: reassembly alone (PDVs already decoded), the
same stream fed in 64 KiB reads that cut PDUs in two, and the send side (fragmenting
and encoding the same message).

Run: .venv/bin/python bench/bench_protocol.py
"""

import random
import statistics
import timeit

from triopacs.protocol.commands import CStoreRQ
from triopacs.protocol.decoder import PDUDecoder
from triopacs.protocol.fragments import CommandReceived, MessageAssembler, fragment_message

DATASET_SIZE = 512 * 1024
MAX_PDU_LENGTH = 16384
READ_SIZE = 64 * 1024

MESSAGE = CStoreRQ(
    message_id=1,
    affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
    affected_sop_instance_uid="1.2.826.0.1.3680043.2.1125.1.41937628540739202659231986148012",
)
DATASET = random.Random(0).randbytes(DATASET_SIZE)
PDUS = list(fragment_message(MESSAGE, DATASET, context_id=1, max_pdu_length=MAX_PDU_LENGTH))
WIRE = [pdu.encode() for pdu in PDUS]
STREAM = b"".join(WIRE)
READS = [STREAM[i : i + READ_SIZE] for i in range(0, len(STREAM), READ_SIZE)]


def receive(chunks: list[bytes]) -> int:
    decoder = PDUDecoder(max_pdata_length=MAX_PDU_LENGTH)
    assembler = MessageAssembler()
    received = 0
    for chunk in chunks:
        decoder.feed(chunk)
        while (pdu := decoder.next_pdu()) is not None:
            for pdv in pdu.pdvs:
                event = assembler.feed(pdv)
                if event is not None and not isinstance(event, CommandReceived):
                    received += len(event.data)
    return received


def reassemble_only() -> int:
    assembler = MessageAssembler()
    received = 0
    for pdu in PDUS:
        for pdv in pdu.pdvs:
            event = assembler.feed(pdv)
            if event is not None and not isinstance(event, CommandReceived):
                received += len(event.data)
    return received


def send() -> int:
    return sum(
        len(pdu.encode())
        for pdu in fragment_message(MESSAGE, DATASET, context_id=1, max_pdu_length=MAX_PDU_LENGTH)
    )


def timing_us(function, number: int = 200, repeat: int = 31) -> tuple[float, float]:
    """(median, best) time per call in microseconds. The median is the figure; the best
    run shows what the code costs when no other process competes for the CPU."""
    times = [t / number * 1e6 for t in timeit.repeat(function, number=number, repeat=repeat)]
    return statistics.median(times), min(times)


def report(label: str, function, number: int = 200) -> float:
    median, best = timing_us(function, number)
    print(f"{label:<42} {median:7.1f} us median, {best:7.1f} us best")
    return median


def main() -> None:
    assert receive(WIRE) == DATASET_SIZE and receive(READS) == DATASET_SIZE
    assert reassemble_only() == DATASET_SIZE
    data_pdvs = sum(1 for pdu in PDUS for pdv in pdu.pdvs if not pdv.is_command)
    print(
        f"512 KiB data set, max PDU {MAX_PDU_LENGTH}: {len(PDUS)} P-DATA-TF PDUs,"
        f" {data_pdvs} data PDVs, {len(STREAM)} bytes on the wire"
    )
    total = report("decode + reassemble, one PDU per chunk:", lambda: receive(WIRE))
    print(f"  -> {total:.1f} us per data set (target: under 150 us)")
    report(f"decode + reassemble, {READ_SIZE // 1024} KiB reads:", lambda: receive(READS))
    report("reassemble only (PDVs already decoded):", reassemble_only)
    report("send side: fragment + encode:", send, number=50)


if __name__ == "__main__":
    main()
