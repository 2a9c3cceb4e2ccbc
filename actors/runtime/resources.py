"""External resources: what an actor changes outside the process, and what a replay gives
it to change instead.

An actor class names the constructor arguments that point at something outside the
process - a file, a directory of files, a socket - and says how a replay may replace each:

    class Archive(Actor):
        resources = {"database": FileResource(companions=("-wal",)), "files": DirectoryResource()}

A replay then builds the actor with every declared argument pointing into a scratch
directory - at a copy of what the argument names, or at an empty one - never at the live
thing. `resources = {}` says the actor touches nothing outside the process. An actor that
says nothing (the default, None) is not rebuilt from a trace at all: nobody can tell what
it would write to.

This module knows paths and copies, nothing about what the files hold.
"""

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs


class ResourceRefused(Exception):
    """A declared resource cannot be replaced by a scratch one (a socket, say)."""


@attrs.frozen
class FileResource:
    """One file. Replaced by a copy of the file and of its `companions` (files named by
    the same path plus a suffix that belong with it, like a database's write-ahead log),
    or by no file at all when a replay starts empty."""

    companions: tuple[str, ...] = ()
    kind = "file"

    def make_scratch(self, live: Path, scratch: Path, *, copy: bool) -> bool:
        """Prepare `scratch` in place of `live`; True when something was copied."""
        scratch.parent.mkdir(parents=True, exist_ok=True)
        if not copy or not live.is_file():
            return False
        shutil.copy2(live, scratch)
        for suffix in self.companions:
            companion = Path(f"{live}{suffix}")
            if companion.is_file():
                shutil.copy2(companion, f"{scratch}{suffix}")
        return True


@attrs.frozen
class DirectoryResource:
    """A directory tree. Replaced by a copy of the whole tree - links copied as the files
    they point to, so nothing in the copy leads back to live data - or an empty directory."""

    kind = "directory"

    def make_scratch(self, live: Path, scratch: Path, *, copy: bool) -> bool:
        if not copy or not live.is_dir():
            scratch.mkdir(parents=True)
            return False
        shutil.copytree(live, scratch, symlinks=False, ignore_dangling_symlinks=True)
        return True


@attrs.frozen
class UncopyableResource:
    """Something no copy can replace (a listening socket, a device): the actor is rebuilt
    from a trace only when the caller gives a value for it."""

    why: str
    kind = "uncopyable"

    def make_scratch(self, live: Path, scratch: Path, *, copy: bool) -> bool:
        raise ResourceRefused(self.why)


Resource = FileResource | DirectoryResource | UncopyableResource


def check_declaration(owner: type, resources: Mapping[str, Resource], parameters: Iterable[str]) -> None:
    """Every declared resource names a constructor argument (so a renamed argument cannot
    leave its resource undeclared without anyone noticing)."""
    unknown = sorted(set(resources) - set(parameters))
    if unknown:
        raise TypeError(f"{owner.__qualname__}.resources names {unknown}, which its constructor does not take")
    for name, resource in resources.items():
        if not isinstance(resource, (FileResource, DirectoryResource, UncopyableResource)):
            raise TypeError(f"{owner.__qualname__}.resources[{name!r}] is {resource!r}, not a resource kind")


@attrs.frozen(kw_only=True)
class UsedResource:
    """What one declared resource of one replayed actor really was during a replay."""

    actor: str
    argument: str
    live: str | None  # what the trace recorded (None: the argument was None)
    used: Any  # what the actor was given instead
    how: str  # "copy", "empty", "inside" (a copied directory), "given" (by the caller), "none"

    def describe(self) -> str:
        where = f"{self.actor} {self.argument}"
        match self.how:
            case "copy":
                return f"{where}: {self.used}, a copy of {self.live}"
            case "empty":
                return f"{where}: {self.used}, empty (live: {self.live})"
            case "inside":
                return f"{where}: {self.used}, inside the replacement of its directory (live: {self.live})"
            case "given":
                return f"{where}: {self.used}, given by the caller"
            case _:
                return f"{where}: None, as recorded"


@attrs.frozen(kw_only=True)
class Wanted:
    """A declared resource of an actor to be replayed, and the live path it names."""

    actor: str
    argument: str
    resource: Resource
    live: Path


class Scratch:
    """One replay's scratch directory: one replacement per live path, shared by every
    actor that names it; a file or directory inside a replaced directory is used inside
    the replacement (a database kept in its data directory stays there)."""

    def __init__(self, root: Path, *, copy: bool) -> None:
        self.root = root
        self.copy = copy
        self._made: dict[Path, tuple[Path, str]] = {}  # live path -> (its replacement, how)
        self._directories: dict[Path, Path] = {}  # live directory -> its replacement

    def replace_all(self, wanted: Iterable[Wanted]) -> list[UsedResource]:
        wanted = list(wanted)
        self._refuse_overlap(wanted)
        self.root.mkdir(parents=True, exist_ok=True)
        # Directories first, outermost first, so that what lies inside them is found there.
        ordered = sorted(wanted, key=lambda w: (w.resource.kind != "directory", len(w.live.parts)))
        used = []
        for want in ordered:
            replacement, how = self._replace(want)
            used.append(UsedResource(actor=want.actor, argument=want.argument, live=str(want.live), used=str(replacement), how=how))
        return used

    def _refuse_overlap(self, wanted: list[Wanted]) -> None:
        # A tree copied into itself never ends, and a scratch file inside live data is live data.
        for want in wanted:
            if self.root.is_relative_to(want.live) or want.live.is_relative_to(self.root):
                raise ResourceRefused(f"the scratch directory {self.root} and {want.actor} {want.argument} ({want.live}) overlap")

    def _replace(self, want: Wanted) -> tuple[Path, str]:
        if want.live in self._made:
            return self._made[want.live]
        for live_dir, scratch_dir in self._directories.items():
            if want.live.is_relative_to(live_dir):
                made = (scratch_dir / want.live.relative_to(live_dir), "inside")
                break
        else:
            scratch = self.root / f"{len(self._made) + 1}-{want.live.name or 'root'}"
            try:
                copied = want.resource.make_scratch(want.live, scratch, copy=self.copy)
            except ResourceRefused as refusal:
                raise ResourceRefused(f"{want.actor} {want.argument} ({want.live}): {refusal}") from None
            made = (scratch, "copy" if copied else "empty")
            if want.resource.kind == "directory":
                self._directories[want.live] = scratch
        self._made[want.live] = made
        return made
