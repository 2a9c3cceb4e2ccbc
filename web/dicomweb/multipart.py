"""multipart/related (RFC 2387) in both directions, without I/O.

`MultipartReader` is fed a request body in chunks of any size and returns events: a
part's headers, pieces of its body as they arrive, its end, the end of the message.
It holds at most one chunk plus a delimiter's length of body (and a part's headers,
bounded), so a STOW-RS body of any size passes through in bounded memory. Anything
that is not a well-formed multipart body raises `MalformedMultipart`.

Writing is a boundary, a head per part and a closing line (`part_head`, `closing`).
"""

from __future__ import annotations

import secrets

import attrs

CRLF = b"\r\n"
MAX_PART_HEAD = 16 * 1024  # a part's header lines; real ones are a few hundred bytes
MAX_PREAMBLE = 64 * 1024  # bytes before the first boundary (RFC 2046 allows a preamble)
# RFC 2046 says at most 70 characters; Orthanc's DICOMweb client sends 73. Lenient, bounded.
MAX_BOUNDARY = 256


class MalformedMultipart(ValueError):
    """The body is not a multipart message with the announced boundary."""


@attrs.frozen
class PartStarted:
    headers: dict[str, str]  # lower-case names


@attrs.frozen
class PartData:
    data: bytes | memoryview


@attrs.frozen
class PartEnded:
    pass


@attrs.frozen
class MessageEnded:
    pass


Event = PartStarted | PartData | PartEnded | MessageEnded


class MultipartReader:
    def __init__(self, boundary: str) -> None:
        if not boundary or len(boundary) > MAX_BOUNDARY:
            raise MalformedMultipart(f"the boundary must be 1 to {MAX_BOUNDARY} characters")
        self._dash_boundary = b"--" + boundary.encode("latin-1")
        self._delimiter = CRLF + self._dash_boundary  # what ends a part's body
        self._buffer = bytearray()
        self._state = "preamble"
        self._seen = 0  # preamble bytes looked at

    @property
    def finished(self) -> bool:
        return self._state == "done"

    def feed(self, chunk: bytes) -> list[Event]:
        """Events for the bytes so far; bytes after the closing delimiter are ignored."""
        if self._state == "done":
            return []
        self._buffer += chunk
        events: list[Event] = []
        while True:
            step = getattr(self, f"_{self._state}")()
            if step is None:
                return events
            events.extend(step)
            if self._state == "done":
                self._buffer.clear()
                return events

    def end(self) -> None:
        """The body ended: complain unless the closing delimiter was seen."""
        if self._state != "done":
            raise MalformedMultipart("the body ends before the closing boundary (truncated)")

    # -- states: each returns events (maybe none) to go on, or None to wait for bytes ----

    def _preamble(self) -> list[Event] | None:
        # The first boundary may open the body, or follow a preamble line.
        if self._buffer.startswith(self._dash_boundary):
            del self._buffer[: len(self._dash_boundary)]
            self._state = "after_boundary"
            return []
        at = self._buffer.find(self._delimiter)
        if at < 0:
            if len(self._buffer) > MAX_PREAMBLE:
                raise MalformedMultipart("no boundary where the body starts")
            return None
        del self._buffer[: at + len(self._delimiter)]
        self._state = "after_boundary"
        return []

    def _after_boundary(self) -> list[Event] | None:
        if len(self._buffer) < 2:
            return None
        if self._buffer.startswith(b"--"):
            self._state = "done"
            return [MessageEnded()]
        # Transport padding (spaces, tabs) may follow a boundary before its CRLF.
        line_end = self._buffer.find(CRLF)
        if line_end < 0:
            if len(self._buffer) > 256:
                raise MalformedMultipart("a boundary line does not end")
            return None
        if self._buffer[:line_end].strip(b" \t"):
            raise MalformedMultipart("text after a boundary on its line")
        del self._buffer[: line_end + 2]
        self._state = "head"
        return []

    def _head(self) -> list[Event] | None:
        if self._buffer.startswith(CRLF):  # a part without headers
            del self._buffer[:2]
            self._state = "body"
            return [PartStarted(headers={})]
        end = self._buffer.find(CRLF + CRLF)
        if end < 0:
            if len(self._buffer) > MAX_PART_HEAD:
                raise MalformedMultipart("a part's headers are too long")
            return None
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise MalformedMultipart(f"not a header line: {line[:60]!r}")
            headers[name.strip().lower()] = value.strip()
        self._state = "body"
        return [PartStarted(headers=headers)]

    def _body(self) -> list[Event] | None:
        at = self._buffer.find(self._delimiter)
        if at < 0:
            # Keep what could be the start of a delimiter; hand on the rest.
            keep = len(self._delimiter) - 1
            if len(self._buffer) <= keep:
                return None
            data = bytes(self._buffer[:-keep])
            del self._buffer[:-keep]
            return [PartData(data)]
        events: list[Event] = [PartData(bytes(self._buffer[:at]))] if at else []
        del self._buffer[: at + len(self._delimiter)]
        events.append(PartEnded())
        self._state = "after_boundary"
        return events


def new_boundary() -> str:
    return f"triopacs-{secrets.token_hex(12)}"


def part_head(boundary: str, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    """The delimiter line and headers of one part, up to its body."""
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("latin-1")


def related_type(media_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    """The Content-Type of a multipart/related answer whose parts are `media_type`."""
    value = f'multipart/related; type="{media_type}"; boundary={boundary}'
    return value + (f"; transfer-syntax={transfer_syntax}" if transfer_syntax else "")
