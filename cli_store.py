"""`triopacs store HOST PORT PATH... [-r]`: send files and folders, every file checked first.

- A file that is not DICOM Part 10 (no DICM prefix) is skipped and counted. A Part 10 file
  that cannot be sent whole (its meta unreadable, its dataset truncated, an odd length,
  elements that do not fit: storage/part10_check.py) is skipped with the reason: a peer
  would refuse it at best and abort the association at worst.
- The files go over one association (several only past 128 SOP classes). When it is
  aborted (by the peer, a timeout, the network), the file in flight is reported failed
  with the reason and the rest go on over a new association; after three aborts in a row
  with nothing stored in between, the rest are reported not sent.
- The summary on stdout says how many were sent, and lists each failed and each skipped
  file with its reason. Exit status 0 only when every Part 10 file was stored.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE = 0, 1
MAX_ABORTS_IN_A_ROW = 3


# --- what is there to send -----------------------------------------------------------------


@dataclass
class Scan:
    files: list = field(default_factory=list)  # FileToSend, checked
    unusable: list[tuple[Path, str]] = field(default_factory=list)  # Part 10 files that cannot be sent, and why
    not_dicom: list[Path] = field(default_factory=list)

    @property
    def part10_count(self) -> int:
        return len(self.files) + len(self.unusable)


def scan(paths: Sequence[str], recursive: bool) -> Scan:
    """Every file under `paths`, located and checked (blocking: run it in a thread)."""
    from .client.datasets import locate
    from .client.errors import InvalidInput
    from .storage.errors import InvalidPart10File
    from .storage.part10_check import check_dataset_structure

    found = Scan()
    for path in _iter_files(paths, recursive):
        if not _has_dicm_prefix(path):
            found.not_dicom.append(path)
            continue
        try:
            file = locate(path)
            check_dataset_structure(file.stored)
        except InvalidInput as error:
            found.unusable.append((path, str(error).removeprefix(f"{path}: ")))
        except InvalidPart10File as error:
            found.unusable.append((path, error.reason))
        except OSError as error:
            found.unusable.append((path, error.strerror or str(error)))
        else:
            found.files.append(file)
    return found


def _has_dicm_prefix(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(132)[128:] == b"DICM"
    except OSError:
        return True  # let locate() say what is wrong with it


def _iter_files(paths: Sequence[str], recursive: bool) -> Iterator[Path]:
    for path in map(Path, paths):
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            yield from sorted(p for p in found if p.is_file())
        elif path.exists():
            yield path
        else:
            from .client.errors import InvalidInput

            raise InvalidInput(f"{path}: no such file or folder")


def batches(files: list) -> list[tuple[list, list]]:
    """[(files, contexts)]: one association each; several only past 128 SOP classes."""
    from .client.contexts import storage_contexts_for
    from .client.errors import InvalidInput
    from .protocol.negotiation import MAX_PRESENTATION_CONTEXTS

    pairs = [(file.sop_class_uid, file.transfer_syntax_uid) for file in files]
    try:
        return [(files, storage_contexts_for(pairs))]
    except InvalidInput:
        classes = sorted({sop_class for sop_class, _ in pairs})
        result = []
        for start in range(0, len(classes), MAX_PRESENTATION_CONTEXTS):
            chosen = set(classes[start : start + MAX_PRESENTATION_CONTEXTS])
            batch = [file for file in files if file.sop_class_uid in chosen]
            result.append((batch, storage_contexts_for((f.sop_class_uid, f.transfer_syntax_uid) for f in batch)))
        return result


# --- progress and summary --------------------------------------------------------------------


def size_text(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.0f} kB"


class Progress:
    """Store progress on stderr: one self-rewriting line on a terminal, a line per file otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.bytes = 0
        self.started = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def rate(self) -> float:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return self.bytes / elapsed / 1e6

    def file_done(self, path: Path, size: int, problem: str | None) -> None:
        self.done += 1
        self.bytes += size
        if self.tty:
            width = 30
            filled = width * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (width - filled)
            sys.stderr.write(f"\r[{bar}] {self.done}/{self.total} files  {size_text(self.bytes)}  {self.rate():.1f} MB/s ")
            if problem:
                sys.stderr.write(f"\nfailed: {path}: {problem}\n")
        else:
            outcome = f"failed: {problem}" if problem else "ok"
            sys.stderr.write(f"[{self.done}/{self.total}] {path}: {outcome}\n")
        sys.stderr.flush()

    def note(self, text: str) -> None:
        sys.stderr.write(("\n" if self.tty else "") + text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


# --- sending -------------------------------------------------------------------------------


class Sender:
    """Sends batches over associations from `connect(contexts)`, reconnecting after aborts."""

    def __init__(self, connect: Callable[[list], Any], progress: Progress) -> None:
        self.connect = connect
        self.progress = progress
        self.sent = 0
        self.warnings = 0
        self.failures: list[tuple[Path, str]] = []
        self.associations = 0  # opened so far

    async def send(self, batch: list, contexts: list) -> None:
        from .client.errors import ClientError

        queue = deque(batch)
        aborts_in_a_row = 0
        while queue:
            opened = False
            try:
                async with self.connect(contexts) as association:
                    opened = True
                    self.associations += 1
                    while queue:
                        if await self._send_one(association, queue[0]):
                            aborts_in_a_row = 0
                        queue.popleft()
            except ClientError as error:
                if not opened:
                    if not self.associations:
                        raise  # no association at all: one line says why
                    self._fail_all(queue, f"not sent: {error}")
                    return
                if queue:  # the file in flight when the association ended
                    self._fail(queue.popleft().stored.path, str(error))
                aborts_in_a_row += 1
                if queue and aborts_in_a_row >= MAX_ABORTS_IN_A_ROW:
                    self._fail_all(queue, f"not sent: the association ended {aborts_in_a_row} times in a row ({error})")
                    return
                if queue:
                    self.progress.note(f"{error}: reconnecting for the other {len(queue)} files")

    async def _send_one(self, association, file) -> bool:
        """Store one file; whether it was stored. Per-file problems are recorded here;
        the association ending raises."""
        from .client.errors import InvalidInput, NoPresentationContext

        path = file.stored.path
        try:
            result = await association.store(path)
        except (NoPresentationContext, InvalidInput) as error:
            self._fail(path, str(error).removeprefix(f"{path}: "))
            return False
        if not result.ok:
            problem = f"0x{result.status:04X} {result.meaning}" + (f" ({result.error_comment})" if result.error_comment else "")
            self._fail(path, problem, result.bytes_sent)
            return False
        self.sent += 1
        self.warnings += result.status != 0
        self.progress.file_done(path, result.bytes_sent, None)
        return True

    def _fail(self, path: Path, reason: str, size: int = 0) -> None:
        self.failures.append((path, reason))
        self.progress.file_done(path, size, reason)

    def _fail_all(self, files, reason: str) -> None:
        for file in files:
            self._fail(file.stored.path, reason)


async def store(args: argparse.Namespace, connect: Callable[[list], Any], peer: str) -> int:
    import trio

    from .client.errors import InvalidInput

    found = await trio.to_thread.run_sync(scan, args.paths, args.recursive)
    if not found.files:
        _print_skipped(found)
        unusable = f"{len(found.unusable)} cannot be sent, " if found.unusable else ""
        raise InvalidInput(f"no DICOM files to send ({unusable}{len(found.not_dicom)} other files skipped)")
    planned = await trio.to_thread.run_sync(batches, found.files)
    progress = Progress(len(found.files))
    sender = Sender(connect, progress)
    try:
        for batch, contexts in planned:
            await sender.send(batch, contexts)
    finally:
        progress.close()
    elapsed = time.perf_counter() - progress.started
    summary = (
        f"sent {sender.sent} of {found.part10_count} files, {size_text(progress.bytes)} in {elapsed:.2f} s "
        f"({progress.rate():.1f} MB/s) to {peer}"
    )
    if sender.warnings:
        summary += f"; {sender.warnings} with a warning status"
    print(summary)
    if sender.failures:
        print(f"failed {len(sender.failures)}:")
        for path, reason in sender.failures:
            print(f"  {path}: {reason}")
    _print_skipped(found)
    return EXIT_OK if not (sender.failures or found.unusable) else EXIT_FAILURE


def _print_skipped(found: Scan) -> None:
    if found.unusable:
        print(f"skipped {len(found.unusable)} DICOM files that cannot be sent:")
        for path, reason in found.unusable:
            print(f"  {path}: {reason}")
    if found.not_dicom:
        print(f"skipped {len(found.not_dicom)} non-DICOM files")
