"""What durability alone costs one C-STORE on this disk.

With one association the peer waits for each answer, and with durability on an answer
waits for the disk: the file's data, its directory entry and the index's WAL commit.
This times exactly those flushes, with nothing else - no network, no parsing - by
doing what the node does for a new instance: write the bytes to a temp file, link it
to its name, fsync it, fsync the directory, and commit one row to a SQLite WAL
database with synchronous=FULL.

Adding the median to a non-fsyncing server's time per image gives the best an
fsyncing server as fast as it could be (its work only) would reach.

    .venv/bin/python bench/flush_floor.py FILE [--rounds N] [--dir DIR]
"""

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path


def flush_floor_seconds(directory: Path, payload: bytes, rounds: int) -> list[float]:
    """Per round: the seconds the flushes of one stored instance took."""
    database = sqlite3.connect(directory / "index.sqlite", isolation_level=None)
    try:
        database.execute("PRAGMA journal_mode=WAL")
        database.execute("PRAGMA synchronous=FULL")
        database.execute("CREATE TABLE instance (uid TEXT PRIMARY KEY, path TEXT)")
        times = []
        for number in range(rounds):
            temp, final = directory / f".{number}.part", directory / f"{number}.dcm"
            started = time.perf_counter()
            with open(temp, "xb") as file:
                file.write(payload)
            os.link(temp, final)
            os.unlink(temp)
            _fsync(final, os.O_RDONLY)
            _fsync(directory, os.O_RDONLY | os.O_DIRECTORY)
            database.execute("BEGIN")
            database.execute("INSERT INTO instance VALUES (?, ?)", (str(number), final.name))
            database.execute("COMMIT")
            times.append(time.perf_counter() - started)
        return times
    finally:
        database.close()


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def measure(sample: Path, rounds: int, where: Path | None = None) -> float:
    """Median seconds of the flushes of one instance the size of ``sample``."""
    payload = sample.read_bytes()
    with tempfile.TemporaryDirectory(prefix="triopacs-flush-", dir=where) as scratch:
        return statistics.median(flush_floor_seconds(Path(scratch), payload, rounds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help="a file the size of the instances being stored")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None, help="a folder on the disk to measure (default: system temp)")
    options = parser.parse_args()
    median = measure(options.file, options.rounds, options.dir)
    print(f"flushes per stored instance of {options.file.stat().st_size / 1024:.0f} KiB: {median * 1000:.2f} ms median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
