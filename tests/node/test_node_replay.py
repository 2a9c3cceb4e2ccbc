"""A recorded trace of a real session (store + find + move) pins the node's behaviour.

The recording needs real sockets and processes, so it runs on the real clock, once per
module, in a fixture of its own (`trio.run` before any test's loop starts). The replays
run as ordinary tests on the autojump MockClock: the index actor is rebuilt on a fresh
database file (the recorded one holds the session's result, so its answers would
differ) and the AE registry from its recorded arguments; every other actor (the
association actors, the listener) is played from the recording.
"""

import asyncio
import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import attrs
import pytest
import trio
from dicom_samples import GeneratedSeries, SeriesSpec, write_series
from peers import storescp
from pydicom import Dataset

from triopacs import connect
from triopacs.actors import AsyncioPortal, replay
from triopacs.client.contexts import default_contexts, storage_contexts_for
from triopacs.actors.node.association import AssociationActor
from triopacs.actors.node.index import IndexActor
from triopacs.protocol.commands import decode
from triopacs.supervisor import association_settings, dicom_services
from triopacs.storage.index_db import DuplicatePolicy

from .nodes import AE_TITLE, LOOPBACK, node_config, remote, running_node


def decode_command(text: str):
    return decode(base64.b64decode(text))

INDEX = "/node/services/index"
AES = "/node/services/aes"


@dataclass(frozen=True)
class Recording:
    trace: Path
    series: GeneratedSeries
    lines: tuple[str, ...]

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


async def record_session(folder: Path) -> Recording:
    trace = folder / "trace.jsonl"
    series = write_series(folder / "source", SeriesSpec(count=3, modality="MR"))
    async with storescp(parent_dir=folder) as destination:
        async with running_node(folder, trace_file=trace, remote=[remote(destination.ae_title, destination.port)]) as node:
            contexts = [*default_contexts(), *storage_contexts_for(series.paths)]
            async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=contexts) as association:
                for path in series.paths:
                    assert (await association.store(path)).ok
                query = Dataset()
                query.StudyInstanceUID = series.study_instance_uid
                query.SeriesInstanceUID = ""
                query.NumberOfSeriesRelatedInstances = ""
                matches = [m async for m in association.find(query, level="SERIES")]
                assert [m.SeriesInstanceUID for m in matches] == [series.series_instance_uid]
                query.SeriesInstanceUID = series.series_instance_uid
                moved = [p async for p in association.move(query, destination.ae_title, level="SERIES")]
                assert moved[-1].ok and moved[-1].completed == 3
        assert len(destination.stored_files()) == 3
    return Recording(trace, series, tuple(trace.read_text().splitlines()))


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Recording:
    # Real clock, real sockets: its own trio.run, outside any test's (mock-clocked) loop.
    return trio.run(record_session, tmp_path_factory.mktemp("recording"))


def fresh_index(tmp_path: Path):
    database = tmp_path / "replay-index.sqlite"
    assert not database.exists()
    return {INDEX: lambda: IndexActor(database=str(database), duplicate_policy=DuplicatePolicy.REPLACE)}


def test_the_trace_records_the_session(recording):
    records = recording.records()
    assert records[0]["kind"] == "trace"
    to_index = [r["type"] for r in records if r["kind"] == "message" and r["to"] == INDEX]
    assert to_index.count("index.record") == 3  # one per C-STORE
    assert "index.find" in to_index and "index.list-instances" in to_index
    lookups = [r for r in records if r["kind"] == "message" and r["to"] == AES and r["type"] == "aes.lookup"]
    assert [r["payload"]["ae_title"] for r in lookups] == ["STORESCP"]


async def test_replaying_index_and_ae_registry_reproduces_the_session(recording, tmp_path, autojump_clock):
    result = await replay(recording.trace, actors=[INDEX, AES], factories=fresh_index(tmp_path))
    assert result.ok, result.report()
    assert set(result.actors) == {INDEX, AES}
    assert result.inputs >= 3 + 1 + 1 + 1  # records, find page(s), instance list, lookup
    assert result.compared >= result.inputs


async def test_virtual_time_waits_for_the_asyncio_portal(autojump_clock):
    # What replaying the index actor needs, reduced to its core. The replayer delivers
    # the next recorded input at its recorded time "once everything before it has
    # settled"; the index may still be in the portal committing the previous one, and
    # virtual time must not run on meanwhile.
    async with AsyncioPortal() as portal:
        committed = False

        async def commit():  # stands for an SQLite commit with fsync
            await asyncio.sleep(0.05)

        async def next_input(seen: list[bool]) -> None:
            await trio.sleep(1.0)  # the next recorded input, one virtual second later
            seen.append(committed)

        seen: list[bool] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(next_input, seen)
            await portal.run(commit)
            committed = True
    assert seen == [True], "the next input was delivered while the portal was still working"


async def test_a_tampered_reply_is_reported_as_a_mismatch(recording, tmp_path, autojump_clock):
    # Pretend the index had answered the C-MOVE's instance list without the last instance.
    records = recording.records()
    listing = next(r for r in records if r["kind"] == "reply" and r.get("type") == "index.instances")
    assert len(listing["payload"]["items"]) == 3
    listing["payload"]["items"].pop()
    result = await replay(records, actors=[INDEX, AES], factories=fresh_index(tmp_path))
    assert not result.ok
    assert [m.stream for m in result.mismatches] == [f"reply {INDEX} -> {listing['to']}"]
    assert "index.instances" in result.report()


async def test_a_tampered_registry_answer_is_reported(recording, tmp_path, autojump_clock):
    records = recording.records()
    answer = next(r for r in records if r["kind"] == "reply" and r.get("type") == "aes.remote-ae")
    answer["payload"]["port"] += 1
    result = await replay(records, actors=[AES])
    assert [m.stream for m in result.mismatches] == [f"reply {AES} -> {answer['to']}"]


def association_path(records: list[dict]) -> str:
    """The association actor that served the session (the listener's only one)."""
    (path,) = {r["path"] for r in records if r["kind"] == "actor" and r["path"].startswith("/node/associations/a")}
    return path


def association_for_replay(path: str, tmp_path: Path):
    """The association as the node builds it, minus its socket; services on scratch
    folders (a replay never touches the node's data)."""
    config = node_config(tmp_path / "scratch")
    return {
        path: lambda: AssociationActor.for_replay(
            association_id=path.rsplit("/", 1)[-1],
            peer="replayed",
            settings=association_settings(config),
            services=dicom_services(config),
            listener="/node/associations/listener",
        )
    }


def test_the_trace_records_everything_the_association_saw(recording):
    records = recording.records()
    path = association_path(records)
    inputs = [r["type"] for r in records if r["kind"] == "message" and r["to"] == path]
    assert inputs[0] == "association.peer-requested"
    assert inputs.count("association.peer-message") == 3 + 1 + 1  # 3 C-STOREs, a C-FIND, a C-MOVE
    assert inputs.count("association.operation-finished") == 5  # each ran as an operation
    assert inputs[-2:] == ["association.peer-release-requested", "association.peer-closed"]
    effects = [r["payload"]["primitive"] for r in records if r["kind"] == "effect" and r["from"] == path and r["to"] == "peer"]
    assert effects == ["accept", "release"]
    # What its operations did to the peer: a response per C-STORE, the C-FIND's pending
    # and final responses, the C-MOVE's pending ones and its final one.
    sent = [r["payload"]["primitive"] for r in records if r["kind"] == "effect" and r["from"] == f"{path}/operation"]
    assert sent and set(sent) == {"send"}


async def test_replaying_the_association_reproduces_what_it_did(recording, tmp_path, autojump_clock):
    path = association_path(recording.records())
    result = await replay(recording.trace, actors=[path], factories=association_for_replay(path, tmp_path))
    assert result.ok, result.report()
    assert result.inputs >= 1 + 5 + 5 + 2
    streams = {name for name in [f"effect {path} -> peer", f"effect {path} -> operation"]}
    assert result.compared >= 2 + 5  # accept, release, five operations started


async def test_a_changed_peer_event_shows_in_the_association_replay(recording, tmp_path, autojump_clock):
    """The C-FIND arrives with another message ID: the association starts its operation
    under that ID - a difference the replay reports."""
    records = recording.records()
    path = association_path(records)
    find = next(
        r for r in records
        if r["kind"] == "message" and r["to"] == path and r["type"] == "association.peer-message"
        and r["payload"]["context_id"] and decode_command(r["payload"]["message"]).__class__.__name__ == "CFindRQ"
    )
    message = decode_command(find["payload"]["message"])
    find["payload"]["message"] = base64.b64encode(attrs.evolve(message, message_id=4242).encode()).decode()
    result = await replay(records, actors=[path], factories=association_for_replay(path, tmp_path))
    assert [m.stream for m in result.mismatches] == [f"effect {path} -> operation"]
    assert "4242" in result.report()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDEVMODE"}
    return subprocess.run([sys.executable, "-m", "triopacs", *args], capture_output=True, text=True, timeout=60, env=env)


async def test_cli_replays_the_ae_registry(recording, tmp_path):
    done = await trio.to_thread.run_sync(run_cli, "replay", str(recording.trace), "--actor", AES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "identical" in done.stdout
    # and the CLI fails on a changed answer
    tampered = tmp_path / "tampered.jsonl"
    records = recording.records()
    next(r for r in records if r["kind"] == "reply" and r.get("type") == "aes.remote-ae")["payload"]["port"] += 1
    tampered.write_text("".join(json.dumps(r) + "\n" for r in records))
    done = await trio.to_thread.run_sync(run_cli, "replay", str(tampered), "--actor", AES)
    assert done.returncode == 1, done.stdout + done.stderr
