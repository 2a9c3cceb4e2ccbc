"""The audit trail on disk: append-only JSON lines, chained by SHA-256.

Each line is one record: its fields, `seq` (1, 2, 3, ... across files), `time` (UTC),
`source` (our AE title), `prev` (the previous record's hash; 64 zeros for the first)
and `hash`, the SHA-256 of the record's compact JSON without `hash` (in its own key order). So a record
changed no longer matches its hash; one removed or inserted breaks `seq` and the next
record's `prev`. `verify` names the first such break.

Rotation: past `rotate_bytes` the current file (audit.jsonl) is renamed to
audit.<first seq>.jsonl and a new one begins; the chain runs on across the files, and
`verify` reads them in order. What the chain cannot show by itself is the newest
records cut off the end together: `verify` prints the head (last seq and hash) to be
kept somewhere else, and `--head` checks against it.

A crash can leave a partly written last line (never acknowledged: a record is answered
only once written, and with sync fsync on disk); opening the log cuts it off.
Plain functions of a file and a state; the audit actor runs them on a thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

GENESIS = "0" * 64
_ROTATED = re.compile(r"^(?P<stem>.+)\.(?P<seq>\d{12})\.jsonl$")


def canonical(fields: dict[str, Any]) -> bytes:
    """The bytes hashed: compact JSON in the fields' own order, which a JSON parser keeps,
    so `verify` gets the same bytes back from a line it reads."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in fields.items() if k != "hash"})).hexdigest()


def now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def trail_files(current: Path) -> list[Path]:
    """The rotated files in order, then the current one (if it exists)."""
    rotated = []
    for path in current.parent.glob(f"{current.stem}.*.jsonl"):
        match = _ROTATED.match(path.name)
        if match and match["stem"] == current.stem:
            rotated.append((int(match["seq"]), path))
    files = [path for _, path in sorted(rotated)]
    return files + ([current] if current.exists() else [])


@attrs.define
class AuditLog:
    """The writer's side: the current file, the chain's head, rotation."""

    path: Path
    fsync: bool = True
    rotate_bytes: int = 64 * 1024 * 1024
    seq: int = 0  # of the last record written
    head: str = GENESIS  # its hash
    cut: int = 0  # bytes of a torn last line removed at open
    _file: Any = None
    _first_seq: int = 0  # of the current file

    @classmethod
    def open(cls, path: Path, *, fsync: bool = True, rotate_bytes: int = 64 * 1024 * 1024) -> "AuditLog":
        path.parent.mkdir(parents=True, exist_ok=True)
        log = cls(path=path, fsync=fsync, rotate_bytes=rotate_bytes)
        log.cut = _cut_torn_line(path)
        for file in reversed(trail_files(path)):
            last = _last_line(file)
            if last is not None:
                fields = json.loads(last)
                log.seq, log.head = int(fields["seq"]), str(fields["hash"])
                break
        first = _first_line(path) if path.exists() else None
        log._first_seq = int(json.loads(first)["seq"]) if first else log.seq + 1
        log._file = open(path, "ab")
        return log

    def append(self, records: Sequence[dict[str, Any]], source: str) -> list[int]:
        """Write the records (one write, one fsync for all); their seq numbers."""
        lines, numbers = [], []
        for record in records:
            self.seq += 1
            body = canonical({**record, "seq": self.seq, "time": now_text(), "source": source, "prev": self.head})
            self.head = hashlib.sha256(body).hexdigest()
            # The line is the hashed body with its hash added last (verify takes it out again).
            lines.append(body[:-1] + b',"hash":"' + self.head.encode("ascii") + b'"}\n')
            numbers.append(self.seq)
        self._file.write(b"".join(lines))
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        if self._file.tell() >= self.rotate_bytes:
            self.rotate()
        return numbers

    def rotate(self) -> None:
        self._file.close()
        rotated = self.path.with_name(f"{self.path.stem}.{self._first_seq:012d}.jsonl")
        os.replace(self.path, rotated)
        self._file = open(self.path, "ab")
        self._first_seq = self.seq + 1
        if self.fsync:
            _fsync_directory(self.path.parent)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _fsync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cut_torn_line(path: Path) -> int:
    """Remove a last line without its newline (a write a crash interrupted)."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(size - 1)
        if file.read(1) == b"\n":
            return 0
        position = size
        while position > 0:
            step = min(65536, position)
            file.seek(position - step)
            chunk = file.read(step)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                position = position - step + newline + 1
                break
            position -= step
        file.truncate(position)
        os.fsync(file.fileno())
        return size - position


def _last_line(path: Path) -> bytes | None:
    with open(path, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        step = 65536
        while True:
            start = max(0, size - step)
            file.seek(start)
            lines = file.read(size - start).rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or start == 0:
                return lines[-1] or None
            step *= 4


def _first_line(path: Path) -> bytes | None:
    with open(path, "rb") as file:
        return file.readline().rstrip(b"\n") or None


# --- reading and verifying ----------------------------------------------------------------------


@attrs.frozen
class Entry:
    file: Path
    line: int
    fields: dict[str, Any] | None  # None: not a JSON object
    text: bytes


def entries(current: Path) -> Iterator[Entry]:
    for file in trail_files(current):
        with open(file, "rb") as stream:
            for number, text in enumerate(stream, 1):
                text = text.rstrip(b"\n")
                try:
                    fields = json.loads(text)
                except ValueError:
                    fields = None
                yield Entry(file, number, fields if isinstance(fields, dict) else None, text)


@attrs.frozen
class Verification:
    ok: bool
    records: int
    files: int
    head_seq: int
    head: str
    problem: str = ""


def verify(current: Path, *, expected_head: str | None = None) -> Verification:
    """Walk the chain; the first record changed, removed or inserted, named by file,
    line and seq. `expected_head`: "SEQ:HASH" kept from an earlier verify."""
    expected_seq, previous, count = 1, GENESIS, 0
    files = trail_files(current)
    for entry in entries(current):
        where = f"{entry.file.name} line {entry.line}"
        fields = entry.fields
        if fields is None or not {"seq", "prev", "hash"} <= fields.keys():
            return Verification(False, count, len(files), expected_seq - 1, previous, f"{where}: not an audit record (changed or inserted)")
        seq = fields["seq"]
        if record_hash(fields) != fields["hash"]:
            return Verification(False, count, len(files), expected_seq - 1, previous, f"{where}: record {seq} was changed (its hash does not match)")
        if seq != expected_seq or fields["prev"] != previous:
            if isinstance(seq, int) and seq > expected_seq:
                what = f"record {expected_seq} removed" if seq == expected_seq + 1 else f"records {expected_seq} to {seq - 1} removed"
            elif isinstance(seq, int) and seq < expected_seq:
                what = f"record {seq} inserted (or repeated)"
            else:
                what = "a record removed or inserted before it (the chain breaks)"
            return Verification(False, count, len(files), expected_seq - 1, previous, f"{where}: {what}")
        expected_seq, previous, count = seq + 1, fields["hash"], count + 1
    head_seq = expected_seq - 1
    if expected_head is not None:
        seq_text, _, hash_text = expected_head.partition(":")
        if not seq_text.isdigit() or int(seq_text) > head_seq:
            return Verification(False, count, len(files), head_seq, previous, f"the trail ends at record {head_seq}; the head kept says {expected_head}: records cut off the end")
        if int(seq_text) == head_seq and hash_text != previous:
            return Verification(False, count, len(files), head_seq, previous, f"record {head_seq} differs from the head kept")
    return Verification(True, count, len(files), head_seq, previous)


def since(current: Path, start: str, until: str | None = None) -> Iterator[dict[str, Any]]:
    """Records whose time is at or after `start` (ISO 8601 text, compared as UTC text)."""
    for entry in entries(current):
        if entry.fields is None:
            continue
        time = str(entry.fields.get("time", ""))
        if time >= start and (until is None or time < until):
            yield entry.fields
