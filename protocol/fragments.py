"""Cutting DIMSE messages into P-DATA-TF PDUs and putting them back together (PS3.8 Annex E).

Sending: `MessageFragmenter` takes a message's command and then its data set in chunks of
any size as they become available (push style, so an async reader can drive it), and
hands back finished PDUs that fit the peer's Maximum Length Received. `fragment_message`
is the same for a data set already in memory or a synchronous iterable of chunks.

Receiving: `MessageAssembler.feed(pdv)` hands over the command set whole, decoded, and
then each data set fragment as it arrives, as a memoryview of the received PDU: nothing
is copied or collected, so a data set of any size flows straight to its sink.
`DatasetAccumulator` collects small data sets (identifiers) up to a size cap.

The rules we follow (PS3.8 E.1, E.2, D.1):
- Maximum Length Received bounds the P-DATA-TF variable field: every PDV item, 4-byte
  item length and 2 header bytes included. 0 means no limit.
- A PDV holds command or data set bytes, never both; bit 0 of its header marks a
  command, bit 1 the last fragment of the command or of the data set.
- All fragments of a message use one presentation context, and messages are not
  interleaved.
- Every fragment has an even length.
- A P-DATA-TF may carry several PDVs of the same message: we put the command's last
  fragment and the data set's first one in the same PDU, saving a send per message.
"""

from collections import deque
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import attrs

from .commands import DimseMessage, decode
from .errors import LocalProtocolError, RemoteProtocolError
from .pdu import PDataTF, PresentationDataValue

PDV_OVERHEAD = 6  # item length (4) + presentation context id (1) + message control header (1)

# Our own cap on a PDV's data even when the peer allows more (or sets no limit): it bounds
# the memory one outgoing PDU takes, and larger PDUs no longer make sends cheaper.
DEFAULT_MAX_FRAGMENT = 1 << 20

# Don't open a data PDV in the command's PDU for less than this: a tiny fragment costs a
# PDV header for nothing.
_MIN_PACKED_FRAGMENT = 64


def max_fragment_size(max_pdu_length: int, cap: int = DEFAULT_MAX_FRAGMENT) -> int:
    """The largest even fragment a PDV may carry in a PDU of `max_pdu_length`."""
    if max_pdu_length < 0:
        raise LocalProtocolError(f"max PDU length {max_pdu_length} is negative")
    if max_pdu_length == 0:
        limit = cap
    else:
        if max_pdu_length < PDV_OVERHEAD + 2:
            raise LocalProtocolError(
                f"max PDU length {max_pdu_length} leaves no room for a fragment"
                f" after the {PDV_OVERHEAD}-byte PDV header"
            )
        limit = min(max_pdu_length - PDV_OVERHEAD, cap)
    return limit & ~1


def _as_bytes_view(chunk: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(chunk)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class MessageFragmenter:
    """Cuts one message into P-DATA-TF PDUs.

    Call `add_data(chunk)` for each piece of the data set (if the message has one), then
    `finish()`; each returns the PDUs that are ready to send, in order. Until `finish()`
    the fragmenter keeps up to one fragment back, because only then does it know which
    fragment is the last. Held-back bytes are views of the caller's chunks when these are
    read-only (bytes) and copies when they are writable (a reused read buffer); the PDUs
    returned may still view a writable chunk, so send them before refilling it.
    """

    def __init__(
        self,
        message: DimseMessage,
        *,
        context_id: int,
        max_pdu_length: int,
        max_fragment: int = DEFAULT_MAX_FRAGMENT,
    ) -> None:
        if not 1 <= context_id <= 255 or context_id % 2 == 0:
            raise LocalProtocolError(f"presentation context id {context_id} is not odd 1-255")
        self._context_id = context_id
        self._fragment = max_fragment_size(max_pdu_length, max_fragment)
        self._budget = self._fragment + PDV_OVERHEAD  # data space of one PDU, headers included
        self._has_dataset = message.has_dataset
        self._command_tail: PresentationDataValue | None = None
        self._pending: deque[memoryview] = deque()  # data not yet cut into fragments
        self._pending_length = 0
        self._dataset_length = 0
        self._finished = False
        self._out: list[PDataTF] = []
        self._cut_command(message.encode())

    def _cut_command(self, command: bytes) -> None:
        """Queue all command fragments but the last, which may share a PDU with data."""
        view = memoryview(command)
        step = self._fragment
        while len(view) > step:
            self._out.append(self._single(view[:step], is_command=True, is_last=False))
            view = view[step:]
        self._command_tail = PresentationDataValue(
            context_id=self._context_id, is_command=True, is_last=True, data=view
        )

    def _single(self, data: memoryview | bytes, *, is_command: bool, is_last: bool) -> PDataTF:
        pdv = PresentationDataValue(
            context_id=self._context_id, is_command=is_command, is_last=is_last, data=data
        )
        return PDataTF(pdvs=(pdv,))

    def _packing_room(self) -> int:
        """Data bytes the command's last PDU can still take, 0 if not worth a PDV."""
        if self._command_tail is None:
            return 0
        used = PDV_OVERHEAD + len(self._command_tail.data) + PDV_OVERHEAD
        room = (self._budget - used) & ~1
        return room if room >= _MIN_PACKED_FRAGMENT else 0

    def _next_fragment_size(self) -> int:
        return self._packing_room() or self._fragment

    def add_data(self, chunk: bytes | bytearray | memoryview) -> list[PDataTF]:
        """Take the next piece of the data set; return the PDUs now complete."""
        if self._finished:
            raise LocalProtocolError("add_data() after finish()")
        if not self._has_dataset:
            raise LocalProtocolError("this message carries no data set")
        view = _as_bytes_view(chunk)
        if view:
            self._pending.append(view)
            self._pending_length += len(view)
            self._dataset_length += len(view)
            # Strictly more than a fragment pending: then this fragment is not the last.
            while self._pending_length > (size := self._next_fragment_size()):
                self._emit_data(self._take(size), is_last=False)
            # What is left is the tail of this chunk (fragments are cut from the front).
            if not self._pending[-1].readonly:
                self._pending[-1] = memoryview(bytes(self._pending[-1]))
        return self._drain()

    def finish(self) -> list[PDataTF]:
        """The remaining PDUs, the last fragment marked as such."""
        if self._finished:
            raise LocalProtocolError("finish() called twice")
        self._finished = True
        if not self._has_dataset:
            self._out.append(PDataTF(pdvs=(self._command_tail,)))
            self._command_tail = None
            return self._drain()
        if self._dataset_length == 0:
            # PS3.8 E.2 forbids a PDV with no fragment in it; a message with an empty data
            # set should have been sent as one without a data set.
            raise LocalProtocolError("the message announces a data set but none was given")
        if self._dataset_length % 2:
            raise LocalProtocolError(
                f"data set of odd length {self._dataset_length}; DICOM data sets are even"
            )
        self._emit_data(self._take(self._pending_length), is_last=True)
        return self._drain()

    def _take(self, size: int) -> memoryview | bytes:
        """Remove `size` bytes from the front of the pending pieces; copy only when the
        fragment spans pieces."""
        first = self._pending[0]
        if len(first) >= size:
            fragment = first[:size]
            if len(first) == size:
                self._pending.popleft()
            else:
                self._pending[0] = first[size:]
            self._pending_length -= size
            return fragment
        parts = []
        needed = size
        while needed:
            piece = self._pending[0]
            if len(piece) <= needed:
                parts.append(piece)
                self._pending.popleft()
                needed -= len(piece)
            else:
                parts.append(piece[:needed])
                self._pending[0] = piece[needed:]
                needed = 0
        self._pending_length -= size
        return b"".join(parts)

    def _emit_data(self, data: memoryview | bytes, *, is_last: bool) -> None:
        pdv = PresentationDataValue(
            context_id=self._context_id, is_command=False, is_last=is_last, data=data
        )
        if self._command_tail is not None:
            if len(data) <= self._packing_room():
                self._out.append(PDataTF(pdvs=(self._command_tail, pdv)))
            else:  # the command left too little room to share its PDU
                self._out.append(PDataTF(pdvs=(self._command_tail,)))
                self._out.append(PDataTF(pdvs=(pdv,)))
            self._command_tail = None
        else:
            self._out.append(PDataTF(pdvs=(pdv,)))

    def _drain(self) -> list[PDataTF]:
        out, self._out = self._out, []
        return out


def fragment_message(
    message: DimseMessage,
    dataset: bytes | bytearray | memoryview | Iterable[bytes | bytearray | memoryview] | None = None,
    *,
    context_id: int,
    max_pdu_length: int,
    max_fragment: int = DEFAULT_MAX_FRAGMENT,
) -> Iterator[PDataTF]:
    """All PDUs of a message whose data set is in memory or a synchronous iterable of
    chunks, read lazily: the next chunk is taken once the PDUs before it are."""
    if (dataset is not None) != message.has_dataset:
        wanted = "needs a data set" if message.has_dataset else "carries no data set"
        raise LocalProtocolError(f"{type(message).__name__} {wanted}")
    fragmenter = MessageFragmenter(
        message, context_id=context_id, max_pdu_length=max_pdu_length, max_fragment=max_fragment
    )
    if dataset is not None:
        chunks = (dataset,) if isinstance(dataset, (bytes, bytearray, memoryview)) else dataset
        for chunk in chunks:
            yield from fragmenter.add_data(chunk)
    yield from fragmenter.finish()


# --- receiving ------------------------------------------------------------------------


@attrs.frozen
class CommandReceived:
    """A whole command set arrived. If `message.has_dataset`, DatasetFragments follow."""

    context_id: int
    message: DimseMessage


class DatasetFragment(NamedTuple):
    """A piece of the current message's data set, a view of the received PDU.

    A NamedTuple rather than an attrs class: one is built per PDV on the hot path, and
    a tuple costs half as much to make. It is just as immutable.
    """

    context_id: int
    data: memoryview
    is_last: bool


DEFAULT_MAX_COMMAND_LENGTH = 64 * 1024  # real command sets are a few hundred bytes
# A fragment that is not a message's last and carries fewer bytes than this is "small".
# Peers cut messages at the negotiated maximum PDU length (at least 4 KiB), so a real
# message has a handful of small fragments at most; a stream of them costs a PDV object
# per byte or two and is refused (the association is aborted) past the allowance.
SMALL_FRAGMENT = 256
DEFAULT_MAX_SMALL_FRAGMENTS = 64


class MessageAssembler:
    """Reassembles messages from the PDVs of one association, in arrival order.

    `feed(pdv)` returns the event the PDV completes, if any: a PDV finishes at most one
    command set or carries at most one data set fragment, so it is one event or None.
    Any breach of PS3.8 Annex E by the peer raises RemoteProtocolError.
    """

    def __init__(
        self,
        *,
        max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH,
        max_small_fragments: int = DEFAULT_MAX_SMALL_FRAGMENTS,
    ) -> None:
        self._max_command_length = max_command_length
        self._max_small_fragments = max_small_fragments
        self._small_fragments = 0  # in the message being received
        self._dataset_context: int | None = None  # set while a data set is arriving
        self._command_context: int | None = None  # set while a command set is arriving
        self._command: list[bytes | memoryview] = []
        self._command_length = 0

    @property
    def idle(self) -> bool:
        """True between messages (nothing half-received)."""
        return self._dataset_context is None and self._command_context is None

    def feed(self, pdv: PresentationDataValue) -> CommandReceived | DatasetFragment | None:
        # The hot path: the next fragment of the data set in progress.
        if pdv.context_id == self._dataset_context and not pdv.is_command:
            data = pdv.data
            if pdv.is_last:
                self._dataset_context = None
                self._small_fragments = 0
                return DatasetFragment(
                    pdv.context_id, data if data.__class__ is memoryview else memoryview(data), True
                )
            if len(data) < SMALL_FRAGMENT:
                self._count_small_fragment()
            return DatasetFragment(
                pdv.context_id, data if data.__class__ is memoryview else memoryview(data), False
            )
        if self._dataset_context is not None:
            if pdv.is_command:
                raise RemoteProtocolError("command fragment in the middle of a data set")
            raise self._wrong_context(pdv.context_id, self._dataset_context)
        if not pdv.is_command:
            if self._command_context is None:
                raise RemoteProtocolError(
                    f"data set fragment on presentation context {pdv.context_id} with no command"
                )
            raise RemoteProtocolError("data set fragment before the command set was complete")
        return self._feed_command(pdv)

    def _feed_command(self, pdv: PresentationDataValue) -> CommandReceived | None:
        context_id = pdv.context_id
        if self._command_context is None:
            self._command_context = context_id
        elif context_id != self._command_context:
            raise self._wrong_context(context_id, self._command_context)
        self._command_length += len(pdv.data)
        if self._command_length > self._max_command_length:
            raise RemoteProtocolError(f"command set longer than {self._max_command_length} bytes")
        if not pdv.is_last:
            if len(pdv.data) < SMALL_FRAGMENT:
                self._count_small_fragment()
            self._command.append(pdv.data)
            return None

        if self._command:
            self._command.append(pdv.data)
            command = b"".join(self._command)
            self._command = []
        else:
            command = pdv.data
        self._command_length = 0
        self._command_context = None
        message = decode(command)
        if message.has_dataset:
            self._dataset_context = context_id
        else:
            self._small_fragments = 0
        return CommandReceived(context_id, message)

    def _count_small_fragment(self) -> None:
        self._small_fragments += 1
        if self._small_fragments > self._max_small_fragments:
            raise RemoteProtocolError(
                f"more than {self._max_small_fragments} fragments of under {SMALL_FRAGMENT} bytes"
                " in one message: refusing absurd fragmentation"
            )

    @staticmethod
    def _wrong_context(context_id: int, expected: int) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"PDV on presentation context {context_id} in the middle of a message"
            f" on context {expected}"
        )

    def feed_all(
        self, pdvs: Iterable[PresentationDataValue]
    ) -> list[CommandReceived | DatasetFragment]:
        """Feed every PDV of a P-DATA-TF; the events in order."""
        events = []
        for pdv in pdvs:
            event = self.feed(pdv)
            if event is not None:
                events.append(event)
        return events


class DatasetAccumulator:
    """Collects a small data set (an identifier, an N-service attribute list) whole.

    For data sets that belong in memory only: past `max_length` bytes the peer is in
    breach of what we accept and RemoteProtocolError is raised.
    """

    def __init__(self, max_length: int) -> None:
        self._max_length = max_length
        self._buffer = bytearray()

    def add(self, fragment: DatasetFragment) -> bytes | None:
        """Append a fragment; the whole data set once the last one arrives, else None."""
        if len(self._buffer) + len(fragment.data) > self._max_length:
            raise RemoteProtocolError(f"data set larger than the {self._max_length} bytes accepted")
        self._buffer += fragment.data
        if not fragment.is_last:
            return None
        data = bytes(self._buffer)
        self._buffer = bytearray()
        return data
