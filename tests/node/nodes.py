"""A triopacs node for one test, and what the tests read back from it.

    async with running_node(tmp_path, duplicates="reject", remote=[...]) as node:
        await echoscu(peer(node))

`running_node` builds a Config (port 0 on 127.0.0.1, data under tmp_path/"node") with any
setting of any section given by its field name (unique across sections, but for port= and
bind=, which are [node]'s:
max_associations=, duplicates=, ae_title=, ...), `remote` AEs and an optional trace
file, and runs `open_node` inside the calling test's Trio loop until the block ends.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
import trio

from triopacs import open_node
from triopacs.actors.node.ae_registry import RemoteAE
from triopacs.actors.node.index import CountIndex
from triopacs.config import SECTIONS, Config
from triopacs.storage.index_db import IndexCounts
from triopacs.supervisor import Node

AE_TITLE = "TRIOPACS"
LOOPBACK = "127.0.0.1"


def node_config(data_dir: Path, *, remote: Iterable[RemoteAE] = (), trace_file: Path | None = None, **settings: Any) -> Config:
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    sections["node"].update(port=0, bind=LOOPBACK, data_dir=str(data_dir), ae_title=AE_TITLE)
    sections["log"].update(level="warning")
    sections["http"].update(port=0, events_port=0)  # never the default ports: tests run beside other nodes
    if trace_file is not None:
        sections["trace"]["file"] = str(trace_file)
    for key, value in settings.items():
        owners = [name for name, cls in SECTIONS.items() if key in attrs.fields_dict(cls)]
        if len(owners) > 1 and "node" in owners:
            owners = ["node"]  # port= and bind= are the DICOM listener's ([http] has its own)
        if len(owners) != 1:
            raise TypeError(f"no single config section has a setting {key!r}")
        sections[owners[0]][key] = value
    built = {name: SECTIONS[name](**values) for name, values in sections.items()}
    return Config(**built, remote=tuple(remote))


@asynccontextmanager
async def running_node(tmp_path: Path, **options: Any) -> AsyncIterator[Node]:
    async with open_node(node_config(tmp_path / "node", **options)) as node:
        yield node


@dataclass(frozen=True)
class Address:
    """What the tests/peers DCMTK wrappers need to reach a peer."""

    ae_title: str
    port: int
    host: str = LOOPBACK


def peer(node: Node) -> Address:
    return Address(node.config.node.ae_title, node.address.port)


def remote(ae_title: str, port: int) -> RemoteAE:
    return RemoteAE(ae_title=ae_title, host=LOOPBACK, port=port)


async def counts(node: Node) -> IndexCounts:
    """Patients, studies, series, instances and bytes, as the index actor reports them."""
    return (await node.ref("index").ask(CountIndex())).counts


def stored_files(node: Node) -> list[Path]:
    """Published instance files under <data>/files (temp files excluded)."""
    files = node.config.data_dir / "files"
    return sorted(p for p in files.rglob("*.dcm") if p.is_file() and not p.name.startswith("."))


def leftovers(node: Node) -> list[Path]:
    """Anything a failed or refused store could leave: files in incoming/, and temp
    files (hidden `.<sop>.dcm.<hex>.part`) beside destinations under files/."""
    data = node.config.data_dir
    incoming = [p for p in (data / "incoming").rglob("*") if p.is_file()]
    temps = [p for p in (data / "files").rglob("*") if p.is_file() and (p.name.startswith(".") or p.suffix == ".part")]
    return sorted(incoming + temps)


def index_rows(node: Node, sql: str, *args: Any) -> list[tuple]:
    """Read the index database directly (a second reader; WAL allows it while the node runs)."""
    uri = f"file:{node.config.data_dir / 'index.sqlite'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        return db.execute(sql, args).fetchall()


def dataset_bytes(path: Path) -> tuple[str, bytes]:
    """(transfer syntax, the bytes after the File Meta Information) of a Part 10 file.

    Parsed here by hand, not by triopacs or pydicom re-encoding: group 0002 is explicit
    VR little endian, so each element's length says where the next begins."""
    data = path.read_bytes()
    if data[128:132] != b"DICM":
        raise ValueError(f"{path}: not a Part 10 file")
    position, syntax = 132, ""
    while position + 8 <= len(data) and data[position : position + 2] == b"\x02\x00":
        element = int.from_bytes(data[position + 2 : position + 4], "little")
        vr = data[position + 4 : position + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            length = int.from_bytes(data[position + 8 : position + 12], "little")
            start = position + 12
        else:
            length = int.from_bytes(data[position + 6 : position + 8], "little")
            start = position + 8
        if element == 0x0010:
            syntax = data[start : start + length].rstrip(b"\0 ").decode("ascii")
        position = start + length
    return syntax, data[position:]


SECURE_SCU = Path(__file__).with_name("pynetdicom_secure_scu.py")


async def secure_scu(port: int, *args: str, timeout: float = 60) -> dict:
    """pynetdicom_secure_scu.py's JSON: associated or rejected, with TLS and/or a user identity."""
    argv = [sys.executable, str(SECURE_SCU), str(port), AE_TITLE, *args]
    with trio.fail_after(timeout):
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout)


async def run_peer_script(script: Path, *args: str, timeout: float = 60) -> dict:
    """Run a peer script (pynetdicom in its own process) and return the JSON it prints,
    which must say it got associated."""
    argv = [sys.executable, str(script), *args]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDEVMODE"}
    with trio.fail_after(timeout):
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False, env=env)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    result = json.loads(done.stdout)
    assert result["associated"], done.stderr.decode(errors="replace")
    return result
