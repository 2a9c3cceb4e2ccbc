"""Replaying a node's trace never touches the node's data.

The recorded session stores two studies, finds one and deletes it (DeleteStudy, as the
cleanup task asks). Afterwards the node runs again, untraced, and the deleted study is
stored once more: a replay that ran the index on the live files would now bring rows
back and, replaying the deletion, remove that study's files for good. A replay runs the
index on a scratch copy of the live database, or on an empty one; the files are the hot
tier's, which a replay never runs (a stand-in gives the recorded answers), and the live
index.sqlite and data directory stay byte-for-byte as they were.
"""

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from dicom_samples import GeneratedSeries, SeriesSpec, write_series
from pydicom import Dataset

from triopacs import connect
from triopacs.actors import replay
from triopacs.actors.node.index import DeleteStudy, StudyDeleted
from triopacs.client.contexts import default_contexts, storage_contexts_for

from .nodes import AE_TITLE, LOOPBACK, running_node, stored_files

INDEX = "/node/services/index"
AES = "/node/services/aes"


@dataclass(frozen=True)
class Session:
    trace: Path
    data: Path  # the node's live data directory
    deleted: GeneratedSeries  # stored, found and deleted while recording; stored again since
    kept: GeneratedSeries


async def store(node, series: GeneratedSeries) -> None:
    contexts = [*default_contexts(), *storage_contexts_for(series.paths)]
    async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=contexts) as association:
        for path in series.paths:
            assert (await association.store(path)).ok


async def record_session(folder: Path) -> Session:
    trace = folder / "trace.jsonl"
    deleted = write_series(folder / "source", SeriesSpec(count=3, modality="MR", patient_id="GONE"))
    kept = write_series(folder / "source", SeriesSpec(count=2, modality="MR", patient_id="KEPT"))
    async with running_node(folder, trace_file=trace) as node:
        await store(node, deleted)
        await store(node, kept)
        contexts = default_contexts()
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=contexts) as association:
            query = Dataset()
            query.PatientID = "GONE"
            query.StudyInstanceUID = ""
            matches = [m async for m in association.find(query, level="STUDY")]
            assert [m.StudyInstanceUID for m in matches] == [deleted.study_instance_uid]
        answer = await node.ref("index").ask(DeleteStudy(study_instance_uid=deleted.study_instance_uid))
        assert isinstance(answer, StudyDeleted) and answer.removed == 3
        data = node.config.data_dir
    async with running_node(folder) as node:  # no trace: what happened since the recording
        await store(node, deleted)
        assert len(stored_files(node)) == 5
    return Session(trace=trace, data=data, deleted=deleted, kept=kept)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    # Real clock, real sockets: its own trio.run, outside any test's (mock-clocked) loop.
    return trio.run(record_session, tmp_path_factory.mktemp("session"))


def fingerprint(data: Path) -> dict[str, str]:
    """Every file under the data directory, the index database included, by content."""
    return {
        str(path.relative_to(data)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(data.rglob("*"))
        if path.is_file()
    }


def test_the_trace_holds_the_session(session):
    records = [json.loads(line) for line in session.trace.read_text().splitlines()]
    to_index = [r["type"] for r in records if r["kind"] == "message" and r["to"] == INDEX]
    assert to_index.count("index.record") == 5
    assert "index.find" in to_index and "index.delete-study" in to_index
    assert "index.sqlite" in fingerprint(session.data)


async def test_a_default_replay_leaves_the_live_data_unchanged(session, autojump_clock):
    before = fingerprint(session.data)
    result = await replay(session.trace)
    assert fingerprint(session.data) == before
    assert set(result.actors) == {INDEX, AES, "/node/services/commitment"}  # not the tiers: they own live bytes
    # It ran on a copy of the live database, as the report says.
    used = {use.argument: use for use in result.resources}
    live_database = session.data.resolve() / "index.sqlite"
    assert set(used) == {"database"} and used["database"].how == "copy" and used["database"].live == str(live_database)
    assert f"a copy of {live_database}" in result.report()
    assert not result.scratch_kept and not Path(result.scratch).exists()


async def test_a_replay_from_empty_resources_is_faithful_and_leaves_the_live_data_unchanged(
    session, tmp_path, autojump_clock
):
    before = fingerprint(session.data)
    result = await replay(session.trace, start_empty=True, scratch=tmp_path / "scratch")
    assert result.ok, result.report()
    assert fingerprint(session.data) == before
    assert result.inputs >= 5 + 1 + 1  # the records, a find page, the deletion
    # The replayed index wrote a database of its own, kept where the caller asked.
    assert (tmp_path / "scratch" / "1-index.sqlite").is_file() and result.scratch_kept


async def test_a_replay_on_a_copy_sees_the_live_state_of_now(session, autojump_clock):
    # The deleted study is back in the live index: in a copy, storing it again is a
    # replacement, where the recording says "stored" - a copy is not a time machine.
    result = await replay(session.trace)
    assert not result.ok
    assert '"outcome":"replaced"' in result.report()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDEVMODE"}
    return subprocess.run([sys.executable, "-m", "triopacs", *args], capture_output=True, text=True, timeout=120, env=env)


async def test_the_cli_says_where_it_ran_and_leaves_the_live_data_unchanged(session, tmp_path):
    before = fingerprint(session.data)
    scratch = tmp_path / "scratch"
    done = await trio.to_thread.run_sync(
        run_cli, "replay", str(session.trace), "--start-empty", "--scratch", str(scratch)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert fingerprint(session.data) == before
    lines = done.stdout.splitlines()
    assert "identical" in lines[0]
    assert lines[1] == f"ran in the scratch directory {scratch.resolve()} (kept), not on live data:"
    live_database = session.data.resolve() / "index.sqlite"
    assert f"  {INDEX} database: {scratch.resolve()}/1-index.sqlite, empty (live: {live_database})" in lines
    # The default: copies in a temporary directory, named, then removed.
    done = await trio.to_thread.run_sync(run_cli, "replay", str(session.trace))
    assert fingerprint(session.data) == before
    assert f", a copy of {session.data.resolve() / 'index.sqlite'}" in done.stdout
    assert "(removed afterwards), not on live data:" in done.stdout


async def test_an_association_built_by_the_listener_is_refused_in_one_line(session):
    # Today the listener builds it with a lambda over its socket; whatever builds it, an
    # actor a replay cannot keep off live data is refused in one line, not a traceback.
    done = await trio.to_thread.run_sync(run_cli, "replay", str(session.trace), "--actor", "/node/associations/a1")
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("triopacs replay: cannot rebuild /node/associations/a1")
    assert line.endswith(("pass a factory", "pass a factory for it"))
