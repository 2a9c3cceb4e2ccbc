"""Fragmentation into P-DATA-TF PDUs and streaming reassembly (PS3.8 Annex E)."""

import hashlib
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triopacs.protocol import commands as c
from triopacs.protocol import fragments as f
from triopacs.protocol.errors import LocalProtocolError, RemoteProtocolError
from triopacs.protocol.pdu import PDataTF, PresentationDataValue

STORE = c.CStoreRQ(
    message_id=9,
    affected_sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
    affected_sop_instance_uid="1.2.826.0.1.3680043.2.1125.1.12345678901234567890",
)
ECHO = c.CEchoRQ(message_id=1, affected_sop_class_uid="1.2.840.10008.1.1")
FIND = c.CFindRQ(message_id=2, affected_sop_class_uid="1.2.840.10008.5.1.4.1.2.2.1")

BIG = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def big_dataset() -> bytes:
    return random.Random(1234).randbytes(BIG)


def _chunks(data: bytes, sizes: list[int]):
    """Stream `data` as read-only views in a repeating pattern of (partly odd) sizes."""
    view = memoryview(data)
    offset = 0
    index = 0
    while offset < len(view):
        size = sizes[index % len(sizes)]
        yield view[offset : offset + size]
        offset += size
        index += 1


def _check_pdu(pdu: PDataTF, max_pdu_length: int) -> None:
    """The limits of PS3.8: variable field within the peer's maximum, even fragments,
    one kind of fragment per PDV, one context per PDU."""
    variable_field = sum(len(pdv.data) + 6 for pdv in pdu.pdvs)
    if max_pdu_length:
        assert variable_field <= max_pdu_length
    else:
        assert all(len(pdv.data) <= f.DEFAULT_MAX_FRAGMENT for pdv in pdu.pdvs)
    for pdv in pdu.pdvs:
        assert len(pdv.data) % 2 == 0 and len(pdv.data) > 0
    assert len({pdv.context_id for pdv in pdu.pdvs}) == 1
    kinds = [pdv.is_command for pdv in pdu.pdvs]
    assert kinds == sorted(kinds, reverse=True)  # a command PDV never follows a data PDV


@pytest.mark.parametrize("max_pdu_length", [0, 4096, 16384, 4097, 12345])
def test_50_mb_streamed_through_at_every_limit(big_dataset, max_pdu_length):
    sizes = [1 << 20, 65537, 999, 3, 262144, 7777777]
    assembler = f.MessageAssembler()
    digest = hashlib.sha256()
    commands = []
    last_flags = []
    for pdu in f.fragment_message(
        STORE, _chunks(big_dataset, sizes), context_id=3, max_pdu_length=max_pdu_length
    ):
        _check_pdu(pdu, max_pdu_length)
        wire = pdu.encode()
        if max_pdu_length:
            assert len(wire) - 6 <= max_pdu_length
        for event in assembler.feed_all(_parse_pdu(wire)):
            if isinstance(event, f.CommandReceived):
                commands.append(event.message)
            else:
                assert event.context_id == 3
                digest.update(event.data)
                last_flags.append(event.is_last)
    assert commands == [STORE]
    assert digest.digest() == hashlib.sha256(big_dataset).digest()
    assert last_flags[-1] and not any(last_flags[:-1])
    assert assembler.idle


@pytest.mark.parametrize("max_pdu_length", [4096, 4097, 12345, 16384])
def test_encoded_pdus_respect_the_limit_on_the_wire(max_pdu_length):
    dataset = random.Random(max_pdu_length).randbytes(300_000)
    for pdu in f.fragment_message(STORE, dataset, context_id=1, max_pdu_length=max_pdu_length):
        wire = pdu.encode()
        (length,) = struct.unpack(">L", wire[2:6])
        assert wire[0] == 0x04 and length == len(wire) - 6 <= max_pdu_length


def test_full_pdus_use_the_whole_limit():
    dataset = bytes(100_000)
    pdus = list(f.fragment_message(STORE, dataset, context_id=1, max_pdu_length=12345))
    # every PDU but the last is filled to the even fragment limit: (12345 - 6) & ~1
    for pdu in pdus[1:-1]:
        assert [len(pdv.data) for pdv in pdu.pdvs] == [12338]


def test_command_and_first_fragment_share_a_pdu():
    dataset = bytes(10_000)
    pdus = list(f.fragment_message(STORE, dataset, context_id=5, max_pdu_length=16384))
    assert len(pdus) == 1
    command, data = pdus[0].pdvs
    assert (command.is_command, command.is_last) == (True, True)
    assert (data.is_command, data.is_last) == (False, True)
    assert bytes(command.data) == STORE.encode() and bytes(data.data) == dataset


def test_command_goes_alone_when_too_little_room_is_left():
    command_length = len(STORE.encode())
    limit = command_length + 6 + 6 + 10  # room for a 10-byte fragment only
    pdus = list(f.fragment_message(STORE, bytes(1000), context_id=1, max_pdu_length=limit))
    assert [len(p.pdvs) for p in pdus[:2]] == [1, 1]
    assert pdus[0].pdvs[0].is_command


def test_message_without_data_set_is_one_pdu_with_the_last_command_bit():
    (pdu,) = f.fragment_message(ECHO, context_id=7, max_pdu_length=16384)
    (pdv,) = pdu.pdvs
    assert pdv.control_header == 0x03
    wire = pdu.encode()
    command = ECHO.encode()
    # PS3.8 9.3.5: type 04H, reserved, length; item length, context id, header, fragment
    assert wire == struct.pack(">BxL", 4, len(command) + 6) + struct.pack(
        ">LBB", len(command) + 2, 7, 0x03
    ) + command


def test_tiny_limit_splits_the_command_into_many_even_fragments():
    pdus = list(f.fragment_message(STORE, bytes(40), context_id=1, max_pdu_length=8))
    headers = [pdv.control_header for pdu in pdus for pdv in pdu.pdvs]
    command_fragments = len(STORE.encode()) // 2
    assert headers == [0x01] * (command_fragments - 1) + [0x03] + [0x00] * 19 + [0x02]
    assembler = f.MessageAssembler(max_small_fragments=1000)  # what the node would refuse
    events = [e for pdu in pdus for e in assembler.feed_all(pdu.pdvs)]
    assert events[0] == f.CommandReceived(1, STORE)
    assert b"".join(e.data for e in events[1:]) == bytes(40)


def test_unlimited_uses_our_own_fragment_cap():
    pdus = list(f.fragment_message(STORE, bytes(5 << 20), context_id=1, max_pdu_length=0))
    sizes = [len(pdv.data) for pdu in pdus for pdv in pdu.pdvs if not pdv.is_command]
    assert max(sizes) == f.DEFAULT_MAX_FRAGMENT and sum(sizes) == 5 << 20


def test_fragments_are_views_of_the_callers_bytes_not_copies():
    dataset = bytes(range(256)) * 400
    pdus = list(f.fragment_message(STORE, dataset, context_id=1, max_pdu_length=4096))
    data_pdvs = [pdv for pdu in pdus for pdv in pdu.pdvs if not pdv.is_command]
    assert all(isinstance(pdv.data, memoryview) and pdv.data.obj is dataset for pdv in data_pdvs)


def test_reused_writable_read_buffer_is_safe():
    """The readinto pattern: one bytearray refilled for every chunk."""
    source = random.Random(5).randbytes(200_003 * 2)
    buffer = bytearray(50_001)
    fragmenter = f.MessageFragmenter(STORE, context_id=1, max_pdu_length=4097)
    wire = []
    for offset in range(0, len(source), len(buffer)):
        piece = source[offset : offset + len(buffer)]
        buffer[: len(piece)] = piece
        wire += [pdu.encode() for pdu in fragmenter.add_data(memoryview(buffer)[: len(piece)])]
        buffer[:] = b"\xee" * len(buffer)  # the caller scribbles over its buffer
    wire += [pdu.encode() for pdu in fragmenter.finish()]
    received = b"".join(_data_of(_parse_pdu(w)) for w in wire)
    assert received == source


def test_many_tiny_writable_chunks_are_gathered_into_full_fragments():
    source = random.Random(6).randbytes(6000)
    buffer = bytearray(2)
    fragmenter = f.MessageFragmenter(STORE, context_id=1, max_pdu_length=64)
    pdus = []
    for offset in range(0, len(source), 2):
        buffer[:] = source[offset : offset + 2]
        pdus += [_parse_pdu(pdu.encode()) for pdu in fragmenter.add_data(buffer)]
    pdus += [_parse_pdu(pdu.encode()) for pdu in fragmenter.finish()]
    assert b"".join(_data_of(pdvs) for pdvs in pdus) == source
    data_sizes = [len(pdv.data) for pdvs in pdus for pdv in pdvs if not pdv.is_command]
    assert set(data_sizes[1:-1]) == {58}


def _parse_pdu(wire: bytes) -> list[PresentationDataValue]:
    """Just enough P-DATA-TF parsing to check our bytes independently of the decoder."""
    pdvs = []
    view = memoryview(wire)
    offset = 6
    while offset < len(wire):
        length, context_id, header = struct.unpack_from(">LBB", wire, offset)
        data = view[offset + 6 : offset + 4 + length]
        pdvs.append(
            PresentationDataValue(
                context_id=context_id, is_command=bool(header & 1), is_last=bool(header & 2), data=data
            )
        )
        offset += 4 + length
    return pdvs


def _data_of(pdvs: list[PresentationDataValue]) -> bytes:
    return b"".join(pdv.data for pdv in pdvs if not pdv.is_command)


@settings(max_examples=150, deadline=None)
@given(
    dataset_length=st.integers(1, 6_000).map(lambda n: n * 2),
    max_pdu_length=st.sampled_from([0, 8, 9, 10, 64, 101, 255, 1000, 4097]) | st.integers(8, 5000),
    cuts=st.lists(st.integers(0, 12_000), max_size=8),
    message=st.sampled_from([STORE, FIND]),
)
def test_any_chunking_and_limit_round_trips(dataset_length, max_pdu_length, cuts, message):
    dataset = random.Random(dataset_length).randbytes(dataset_length)
    bounds = sorted({0, dataset_length, *(cut for cut in cuts if cut < dataset_length)})
    chunks = [dataset[a:b] for a, b in zip(bounds, bounds[1:])]
    assembler = f.MessageAssembler(max_small_fragments=100_000)  # tiny PDUs on purpose
    received = []
    for pdu in f.fragment_message(message, chunks, context_id=1, max_pdu_length=max_pdu_length):
        _check_pdu(pdu, max_pdu_length)
        for pdv in _parse_pdu(pdu.encode()):
            event = assembler.feed(pdv)
            if event is not None:
                received.append(event)
    assert received[0] == f.CommandReceived(1, message)
    assert b"".join(e.data for e in received[1:]) == dataset
    assert [e.is_last for e in received[1:]] == [False] * (len(received) - 2) + [True]


# --- local misuse while sending --------------------------------------------------------


def test_data_set_presence_must_match_the_message():
    with pytest.raises(LocalProtocolError, match="needs a data set"):
        list(f.fragment_message(STORE, context_id=1, max_pdu_length=0))
    with pytest.raises(LocalProtocolError, match="carries no data set"):
        list(f.fragment_message(ECHO, b"\x00\x00", context_id=1, max_pdu_length=0))
    with pytest.raises(LocalProtocolError, match="carries no data set"):
        f.MessageFragmenter(ECHO, context_id=1, max_pdu_length=0).add_data(b"ab")


def test_empty_and_odd_data_sets_are_refused():
    with pytest.raises(LocalProtocolError, match="none was given"):
        list(f.fragment_message(STORE, [b"", b""], context_id=1, max_pdu_length=0))
    with pytest.raises(LocalProtocolError, match="odd length 3"):
        list(f.fragment_message(STORE, b"abc", context_id=1, max_pdu_length=0))


@pytest.mark.parametrize("max_pdu_length", [-1, 1, 6, 7])
def test_too_small_a_limit_is_refused(max_pdu_length):
    with pytest.raises(LocalProtocolError):
        f.MessageFragmenter(ECHO, context_id=1, max_pdu_length=max_pdu_length)


@pytest.mark.parametrize("context_id", [0, 2, 256])
def test_context_ids_are_odd_bytes(context_id):
    with pytest.raises(LocalProtocolError):
        f.MessageFragmenter(ECHO, context_id=context_id, max_pdu_length=0)


def test_fragmenter_is_single_use():
    fragmenter = f.MessageFragmenter(STORE, context_id=1, max_pdu_length=0)
    fragmenter.add_data(b"ab")
    fragmenter.finish()
    with pytest.raises(LocalProtocolError):
        fragmenter.add_data(b"cd")
    with pytest.raises(LocalProtocolError):
        fragmenter.finish()


# --- reassembly ------------------------------------------------------------------------


def _pdv(context_id: int, is_command: bool, is_last: bool, data: bytes) -> PresentationDataValue:
    return PresentationDataValue(
        context_id=context_id, is_command=is_command, is_last=is_last, data=memoryview(data)
    )


def test_fragments_are_handed_over_without_copying():
    received_pdu = bytearray(b"\x00" * 64)  # stands for the decoder's PDU buffer
    assembler = f.MessageAssembler()
    assembler.feed(_pdv(1, True, True, STORE.encode()))
    pdv = PresentationDataValue(
        context_id=1, is_command=False, is_last=False, data=memoryview(received_pdu)[6:38]
    )
    event = assembler.feed(pdv)
    assert event.data is pdv.data and event.data.obj is received_pdu


def test_several_messages_in_a_row_on_different_contexts():
    assembler = f.MessageAssembler()
    echo = assembler.feed(_pdv(1, True, True, ECHO.encode()))
    assert echo == f.CommandReceived(1, ECHO) and assembler.idle
    assert assembler.feed(_pdv(3, True, True, FIND.encode())) == f.CommandReceived(3, FIND)
    assert not assembler.idle
    first = assembler.feed(_pdv(3, False, False, b"ab"))
    last = assembler.feed(_pdv(3, False, True, b"cd"))
    assert (bytes(first.data), first.is_last, bytes(last.data), last.is_last) == (b"ab", False, b"cd", True)
    assert assembler.idle
    command = STORE.encode()
    assert assembler.feed(_pdv(5, True, False, command[:10])) is None
    assert assembler.feed(_pdv(5, True, True, command[10:])) == f.CommandReceived(5, STORE)


@pytest.mark.parametrize(
    "pdvs, problem",
    [
        ([_pdv(1, False, True, b"ab")], "with no command"),
        ([_pdv(1, True, False, b"\x00\x00"), _pdv(3, True, True, b"\x00\x00")], "context 3"),
        ([_pdv(1, True, False, b"\x00\x00"), _pdv(1, False, True, b"ab")], "before the command"),
        ([_pdv(1, True, True, STORE.encode()), _pdv(3, False, True, b"ab")], "context 3"),
        (
            [_pdv(1, True, True, STORE.encode()), _pdv(1, True, True, ECHO.encode())],
            "command fragment in the middle of a data set",
        ),
        ([_pdv(1, True, True, ECHO.encode()), _pdv(1, False, True, b"ab")], "with no command"),
        ([_pdv(1, True, True, b"\x00\x00\x00")], "malformed command set"),
    ],
)
def test_protocol_violations_are_remote_errors(pdvs, problem):
    assembler = f.MessageAssembler()
    with pytest.raises(RemoteProtocolError, match=problem):
        for pdv in pdvs:
            assembler.feed(pdv)


def test_oversized_command_set_is_refused_before_it_is_collected():
    assembler = f.MessageAssembler(max_command_length=100)
    assembler.feed(_pdv(1, True, False, bytes(100)))
    with pytest.raises(RemoteProtocolError, match="longer than 100"):
        assembler.feed(_pdv(1, True, False, bytes(2)))


def test_accumulator_collects_small_data_sets_up_to_its_cap():
    accumulator = f.DatasetAccumulator(max_length=6)
    assert accumulator.add(f.DatasetFragment(1, memoryview(b"ab"), False)) is None
    assert accumulator.add(f.DatasetFragment(1, memoryview(b"cdef"), True)) == b"abcdef"
    assert accumulator.add(f.DatasetFragment(1, memoryview(b"gh"), True)) == b"gh"  # reusable
    with pytest.raises(RemoteProtocolError, match="6 bytes"):
        accumulator.add(f.DatasetFragment(1, memoryview(b"1234567"), True))


# -- absurd fragmentation -----------------------------------------------------------------


def small_fragments(count: int, *, size: int = 2, context_id: int = 1) -> list[PresentationDataValue]:
    return [PresentationDataValue(context_id=context_id, is_command=False, is_last=False, data=bytes(size)) for _ in range(count)]


def command_pdv(message=STORE) -> PresentationDataValue:
    return PresentationDataValue(context_id=1, is_command=True, is_last=True, data=message.encode())


def test_small_fragments_are_allowed_up_to_the_limit_per_message():
    assembler = f.MessageAssembler(max_small_fragments=8)
    for _ in range(3):  # the allowance starts again with every message
        assembler.feed(command_pdv())
        assembler.feed_all(small_fragments(8))
        last = PresentationDataValue(context_id=1, is_command=False, is_last=True, data=b"\x00\x00")
        assert assembler.feed(last).is_last


@pytest.mark.parametrize("size", [0, 2, f.SMALL_FRAGMENT - 2])
def test_a_stream_of_small_dataset_fragments_is_refused(size):
    assembler = f.MessageAssembler(max_small_fragments=8)
    assembler.feed(command_pdv())
    assembler.feed_all(small_fragments(8, size=size))
    with pytest.raises(RemoteProtocolError, match="more than 8 fragments of under 256 bytes"):
        assembler.feed_all(small_fragments(1, size=size))


def test_fragments_of_ordinary_size_are_not_counted():
    assembler = f.MessageAssembler(max_small_fragments=8)
    assembler.feed(command_pdv())
    assembler.feed_all(small_fragments(1000, size=f.SMALL_FRAGMENT))


def test_a_stream_of_empty_command_fragments_is_refused():
    assembler = f.MessageAssembler(max_small_fragments=8)
    empty = PresentationDataValue(context_id=1, is_command=True, is_last=False, data=b"")
    with pytest.raises(RemoteProtocolError, match="absurd fragmentation"):
        assembler.feed_all([empty] * 9)
