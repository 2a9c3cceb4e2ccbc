"""Actors that own things outside the process, for the replay-safety tests.

The notebook keeps one file per note in a folder and appends every change to a log file;
its writes run on a worker thread, as a database's would.
"""

from pathlib import Path

from triopacs.actors import Actor, DirectoryResource, FileResource, UncopyableResource, message
from triopacs.actors.runtime.threads import run_sync_in_thread


@message("notes.write")
class Write:
    name: str
    text: str


@message("notes.erase")
class Erase:
    name: str


@message("notes.read")
class Read:
    name: str


@message("notes.text")
class Text:
    text: str | None


class Notebook(Actor):
    accepts = (Write, Erase, Read)
    resources = {"folder": DirectoryResource(), "log": FileResource(companions=(".bak",))}

    def __init__(self, folder: str, log: str) -> None:
        self.folder = Path(folder)
        self.log = Path(log)

    async def handle(self, message):
        match message:
            case Write(name=name, text=text):
                await run_sync_in_thread(self._change, name, text)
            case Erase(name=name):
                await run_sync_in_thread(self._change, name, None)
            case Read(name=name):
                note = self.folder / name
                return Text(text=note.read_text() if note.exists() else None)

    def _change(self, name: str, text: str | None) -> None:
        note = self.folder / name
        if text is None:
            note.unlink(missing_ok=True)
        else:
            note.write_text(text)
        with self.log.open("a") as log:
            log.write(f"{'erase' if text is None else 'write'} {name}\n")


class Scribble(Notebook):
    """The same, but declaring nothing: nobody can tell what it touches."""

    resources = None


class Doorbell(Actor):
    """Stands for an actor that listens on a port: no copy of that can be made."""

    accepts = (Read,)
    resources = {"port": UncopyableResource("a listening socket cannot be copied")}

    def __init__(self, port: int) -> None:
        self.port = port

    async def handle(self, message):
        return Text(text=f"port {self.port}")
