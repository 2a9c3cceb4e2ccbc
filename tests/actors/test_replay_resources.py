"""A replay never touches live data: declared resources are replaced by scratch ones; an
actor that cannot be kept off live data is refused."""

import hashlib
import io
import json
from pathlib import Path

import pytest

from triopacs.actors import (
    Actor,
    ActorSpec,
    ActorSystem,
    DirectoryResource,
    JsonLinesSink,
    ReplayError,
    TraceRecorder,
    open_supervisor,
    replay,
)

from .notebook import Doorbell, Erase, Notebook, Read, Scribble, Write

PATH = "/desk/notebook"


async def record(spec: ActorSpec, *messages: object) -> list[str]:
    buffer = io.StringIO()
    system = ActorSystem(recorder=TraceRecorder(JsonLinesSink(buffer)))
    system.recorder.begin()
    async with open_supervisor(system, "/desk") as root:
        ref = await root.start(spec)
        for message in messages:
            await ref.ask(message)
    return buffer.getvalue().splitlines()


def live_notebook(tmp_path: Path, actor: type = Notebook) -> tuple[ActorSpec, Path]:
    live = tmp_path / "live"
    (live / "notes").mkdir(parents=True)
    args = {"folder": str(live / "notes"), "log": str(live / "changes.log")}
    return ActorSpec(name="notebook", actor=actor, args=args), live


SESSION = (Write(name="a", text="one"), Write(name="b", text="two"), Read(name="a"), Erase(name="a"), Read(name="a"))


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file by content, every directory by name."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "directory"
        for p in folder.rglob("*")
    }


async def test_a_replay_runs_on_copies_and_leaves_the_live_files_alone(tmp_path, autojump_clock):
    spec, live = live_notebook(tmp_path)
    lines = await record(spec, *SESSION)
    (live / "notes" / "a").write_text("one")  # written again since the recording
    (live / "changes.log.bak").write_text("an older log")
    before = fingerprint(live)

    result = await replay(lines, scratch=tmp_path / "scratch")

    assert result.ok, result.report()
    assert fingerprint(live) == before
    used = {s.argument: s for s in result.resources}
    assert used["folder"].how == "copy" and used["log"].how == "copy"
    copies = tmp_path / "scratch"
    assert (copies / "1-notes" / "b").read_text() == "two"
    assert (copies / "1-notes" / "a").exists() is False  # the replayed Erase ran on the copy
    assert (copies / "2-changes.log").read_text().count("\n") == 3 + 3  # the live log's lines, then the replay's
    assert (copies / "2-changes.log.bak").read_text() == "an older log"  # companions come along
    assert f"{PATH} folder: {copies.resolve()}/1-notes, a copy of {live.resolve()}/notes" in result.report()


async def test_a_replay_can_start_from_empty_resources(tmp_path, autojump_clock):
    spec, live = live_notebook(tmp_path)
    lines = await record(spec, *SESSION)
    before = fingerprint(live)
    result = await replay(lines, start_empty=True)
    assert result.ok, result.report()
    assert fingerprint(live) == before
    assert {s.how for s in result.resources} == {"empty"}
    assert not Path(result.scratch).exists()  # a temporary scratch directory is removed
    assert f"ran in the scratch directory {result.scratch} (removed afterwards), not on live data:" in result.report()


async def test_a_file_inside_a_copied_directory_is_used_inside_the_copy(tmp_path, autojump_clock):
    live = tmp_path / "live"
    live.mkdir()
    spec = ActorSpec(name="notebook", actor=Notebook, args={"folder": str(live), "log": str(live / "changes.log")})
    lines = await record(spec, *SESSION)
    result = await replay(lines)
    assert result.ok, result.report()
    used = {s.argument: s for s in result.resources}
    assert used["log"].how == "inside"
    assert Path(used["log"].used) == Path(used["folder"].used) / "changes.log"


async def test_the_callers_resources_are_used_as_given(tmp_path, autojump_clock):
    spec, live = live_notebook(tmp_path)
    lines = await record(spec, *SESSION)
    mine = tmp_path / "mine"
    mine.mkdir()
    result = await replay(lines, resources={PATH: {"folder": str(mine), "log": str(mine / "log")}}, start_empty=True)
    assert result.ok, result.report()
    assert (mine / "b").read_text() == "two"
    assert result.scratch is None  # nothing left to replace
    assert "ran on what the caller gave, not on live data:" in result.report()
    with pytest.raises(ReplayError, match=r"name \['colour'\], which it does not declare"):
        await replay(lines, resources={PATH: {"colour": "red"}})


async def test_an_actor_that_declares_nothing_is_not_rebuilt(tmp_path, autojump_clock):
    spec, live = live_notebook(tmp_path, actor=Scribble)
    lines = await record(spec, *SESSION)
    before = fingerprint(live)
    with pytest.raises(ReplayError, match="does not declare its external resources") as refused:
        await replay(lines, actors=[PATH])
    assert "\n" not in str(refused.value)
    assert fingerprint(live) == before
    # Not picked by default either: the error says why, rather than running it.
    with pytest.raises(ReplayError, match="does not declare"):
        await replay(lines)


async def test_an_actor_built_by_a_lambda_is_recorded_as_such_and_refused(tmp_path, autojump_clock):
    _, live = live_notebook(tmp_path)
    folder, log = str(live / "notes"), str(live / "changes.log")
    spec = ActorSpec(name="notebook", actor=lambda: Notebook(folder=folder, log=log))
    lines = await record(spec, *SESSION)
    started = next(json.loads(line) for line in lines if '"kind":"actor"' in line)
    assert started["args"] is None and started["class"].endswith(":Notebook")
    assert "<lambda>" in started["factory"]
    with pytest.raises(ReplayError, match="it was built by .*<lambda>, not by its class") as refused:
        await replay(lines)
    assert "\n" not in str(refused.value)
    # The caller's factory rebuilds it (and the caller answers for where it writes).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = await replay(lines, factories={PATH: lambda: Notebook(folder=str(elsewhere), log=str(elsewhere / "log"))})
    assert result.ok, result.report()
    assert result.built_by_caller == (PATH,) and f"{PATH}: built by the caller's factory" in result.report()


async def test_an_uncopyable_resource_needs_the_callers_value(autojump_clock):
    lines = await record(ActorSpec(name="bell", actor=Doorbell, args={"port": 11112}), Read(name="x"))
    with pytest.raises(ReplayError, match=r"/desk/bell port .*a listening socket cannot be copied"):
        await replay(lines)
    result = await replay(lines, resources={"/desk/bell": {"port": 11112}})
    assert result.ok, result.report()
    (used,) = result.resources
    assert used.how == "given" and used.used == 11112


async def test_the_scratch_directory_stays_apart_from_live_data(tmp_path, autojump_clock):
    spec, live = live_notebook(tmp_path)
    lines = await record(spec, *SESSION)
    before = fingerprint(live)
    with pytest.raises(ReplayError, match="overlap"):
        await replay(lines, scratch=live / "notes" / "scratch")
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("")
    with pytest.raises(ReplayError, match="must be new or empty"):
        await replay(lines, scratch=used)
    assert fingerprint(live) == before


def test_a_declaration_names_constructor_arguments():
    with pytest.raises(TypeError, match=r"Misdeclared.resources names \['path'\], which its constructor does not take"):

        class Misdeclared(Actor):
            resources = {"path": DirectoryResource()}

            def __init__(self, folder: str) -> None:
                self.folder = folder
