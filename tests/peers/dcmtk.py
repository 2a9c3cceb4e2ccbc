"""Run DCMTK's network client tools against a peer and read what they printed.

DCMTK tools report most failures only in their log lines (findscu and movescu exit 0
after the peer aborts; storescu -nh exits 0 after failed stores), so every helper here
runs the tool with -v and parses its log into a result the test can check.

The tools are looked up in the system directories only: the venv's bin holds
pynetdicom's own `echoscu`, `storescu`, ... apps under the same names.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import trio

from .process import LOOPBACK, PeerError, ToolMissing

_SYSTEM_DIRS = ("/usr/bin", "/usr/local/bin")


class PeerAddress(Protocol):
    """Anything with an AE title and a port on 127.0.0.1 (every DICOM peer here)."""

    @property
    def ae_title(self) -> str: ...

    @property
    def port(self) -> int: ...


def dcmtk_program(name: str) -> str:
    """Absolute path of a DCMTK program (never pynetdicom's app of the same name)."""
    directories = [os.environ["DCMTK_BIN"]] if os.environ.get("DCMTK_BIN") else []
    for directory in [*directories, *_SYSTEM_DIRS]:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    raise ToolMissing(name, "Debian package dcmtk")


@dataclass(frozen=True)
class ToolResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def log_lines(self) -> list[str]:
        return self.output.splitlines()

    def errors(self) -> list[str]:
        """DCMTK's error and fatal log lines (prefixes E: and F:)."""
        return [line for line in self.log_lines() if line.startswith(("E: ", "F: "))]

    def describe(self) -> str:
        return f"$ {' '.join(self.argv)}\n(exit status {self.returncode})\n{self.output}"

    def check(self) -> ToolResult:
        if self.returncode != 0:
            raise PeerError(f"DCMTK tool failed:\n{self.describe()}")
        return self


async def run_dcmtk(
    tool: str,
    *args: str | os.PathLike[str],
    timeout: float = 120.0,
    cwd: Path | None = None,
) -> ToolResult:
    """Run a DCMTK tool with TCP_NODELAY=1, bounded by `timeout` seconds."""
    argv = [dcmtk_program(tool), *(os.fspath(arg) for arg in args)]
    env = {**os.environ, "TCP_NODELAY": "1"}
    with trio.fail_after(timeout):
        completed = await trio.run_process(
            argv,
            stdin=subprocess.DEVNULL,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=cwd,
            env=env,
        )
    return ToolResult(
        argv,
        completed.returncode,
        completed.stdout.decode(errors="replace"),
        completed.stderr.decode(errors="replace"),
    )


def _network_args(peer: PeerAddress, calling_ae: str) -> list[str]:
    return ["-aet", calling_ae, "-aec", peer.ae_title]


def _address(peer: PeerAddress) -> list[str]:
    return [LOOPBACK, str(peer.port)]


# ---------------------------------------------------------------- echo, store


async def echoscu(
    peer: PeerAddress, *, calling_ae: str = "ECHOSCU", timeout: float = 30.0
) -> ToolResult:
    """C-ECHO; check the result with `.check()` (echoscu's exit status is honest)."""
    return await run_dcmtk(
        "echoscu", "-v", *_network_args(peer, calling_ae), *_address(peer), timeout=timeout
    )


_STORE_RESPONSE = re.compile(r"^I: Received Store Response \((?P<status>[^)]*)\)")
_SENDING_FILE = re.compile(r"^I: Sending file: (?P<path>.*)$")


@dataclass(frozen=True)
class StoreResult:
    tool: ToolResult
    # status text per file sent, in order: "Success", "Warning", "Error: ..."
    responses: list[tuple[str, str]] = field(default_factory=list)

    @property
    def succeeded(self) -> list[str]:
        return [path for path, status in self.responses if status == "Success"]

    @property
    def failed(self) -> list[tuple[str, str]]:
        return [(path, status) for path, status in self.responses if status != "Success"]

    def check(self, expected: int | None = None) -> StoreResult:
        """Raise unless every store succeeded (and, if given, `expected` files went)."""
        problems = self.failed or self.tool.errors()
        if problems or self.tool.returncode != 0 or (
            expected is not None and len(self.succeeded) != expected
        ):
            raise PeerError(
                f"storescu: {len(self.succeeded)} stored"
                + (f" of {expected} expected" if expected is not None else "")
                + f", problems: {problems}\n{self.tool.describe()}"
            )
        return self


def parse_storescu_output(tool: ToolResult) -> StoreResult:
    """One (path, status) per file storescu tried to send.

    Status is the store response's ("Success", "Warning", ...), or "Failed: <first
    error line>" when no response came (no presentation context, send failure).
    """
    responses: list[tuple[str, str]] = []
    current: str | None = None
    problem = ""

    def close_file() -> None:
        if current is not None:
            responses.append((current, f"Failed: {problem or 'no response'}"))

    for line in tool.log_lines():
        if sending := _SENDING_FILE.match(line):
            close_file()
            current, problem = sending["path"], ""
        elif (response := _STORE_RESPONSE.match(line)) and current is not None:
            responses.append((current, response["status"]))
            current = None
        elif line.startswith(("E: ", "F: ")) and current is not None and not problem:
            problem = line[3:]
    close_file()
    return StoreResult(tool, responses)


_UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2")


def _sop_class_and_syntax(path: Path) -> tuple[str, str] | None:
    from pydicom.filereader import read_file_meta_info

    try:
        meta = read_file_meta_info(path)
        return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)
    except Exception:  # not a Part 10 file: storescu will report it
        return None


def _files_under(paths: Iterable[Path]) -> list[Path]:
    files = []
    for path in paths:
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files


def association_config_for(files: Iterable[Path]) -> str:
    """A DCMTK association config (storescu -xf FILE Default) proposing, for each
    SOP class found, each file's own transfer syntax in a context of its own (so an
    SCP that accepts it gets the file unconverted), plus one context offering the
    uncompressed syntaxes as a fallback.

    storescu's built-in proposal covers 64 SOP classes and no compressed syntax; this
    lets it send any mix of classes and encodings as they are.
    """
    found: dict[str, set[str]] = {}
    for file in files:
        if pair := _sop_class_and_syntax(file):
            found.setdefault(pair[0], set()).add(pair[1])
    syntax_lists: dict[tuple[str, ...], str] = {}
    contexts: list[str] = []
    for sop_class, syntaxes in sorted(found.items()):
        for syntax_list in [*((syntax,) for syntax in sorted(syntaxes)), _UNCOMPRESSED]:
            key = syntax_lists.setdefault(syntax_list, f"Syntaxes{len(syntax_lists) + 1}")
            contexts.append(f"{sop_class}\\{key}")
    if len(contexts) > 128:
        raise ValueError(f"{len(contexts)} presentation contexts needed, at most 128 fit")
    lines = ["[[TransferSyntaxes]]"]
    for syntax_list, key in syntax_lists.items():
        lines.append(f"[{key}]")
        lines += [f"TransferSyntax{n} = {uid}" for n, uid in enumerate(syntax_list, 1)]
    lines += ["", "[[PresentationContexts]]", "[Contexts]"]
    lines += [f"PresentationContext{n} = {context}" for n, context in enumerate(contexts, 1)]
    lines += ["", "[[Profiles]]", "[Default]", "PresentationContexts = Contexts", ""]
    return "\n".join(lines)


async def storescu(
    peer: PeerAddress,
    paths: Iterable[str | os.PathLike[str]],
    *,
    calling_ae: str = "STORESCU",
    keep_going: bool = True,
    propose_from_files: bool = True,
    extra_args: Sequence[str] = (),
    timeout: float = 300.0,
) -> StoreResult:
    """C-STORE files (directories are scanned recursively) over one association.

    propose_from_files: propose exactly the SOP classes and transfer syntaxes of the
    files (see association_config_for); otherwise storescu's built-in proposal.
    keep_going (-nh) sends every file even after a failure; the failures are in the
    result (storescu then still exits 0, so call `.check()`).
    """
    paths = [Path(path) for path in paths]
    args = ["-v", *_network_args(peer, calling_ae), "+sd", "+r"]
    if keep_going:
        args.append("-nh")
    with tempfile.TemporaryDirectory(prefix="storescu-") as scratch:
        if propose_from_files:
            config = Path(scratch) / "association.cfg"
            config.write_text(association_config_for(_files_under(paths)))
            args += ["-xf", str(config), "Default"]
        args += [*extra_args, *_address(peer), *(os.fspath(path) for path in paths)]
        return parse_storescu_output(await run_dcmtk("storescu", *args, timeout=timeout))


# ---------------------------------------------------------------- find


@dataclass(frozen=True)
class FindResult:
    tool: ToolResult
    responses: list[dict[str, str]]  # one per pending response: keyword -> value
    final_status: str | None  # "Success", "Cancel", ... or None when none came

    @property
    def ok(self) -> bool:
        return self.final_status == "Success" and not self.tool.errors()

    def check(self) -> FindResult:
        if not self.ok or self.tool.returncode != 0:
            raise PeerError(f"C-FIND did not succeed:\n{self.tool.describe()}")
        return self

    def values(self, keyword: str) -> list[str]:
        return [response.get(keyword, "") for response in self.responses]


# One printed element of a dataset dump: "(0010,0010) PN [DOE^JOHN ]   #  10, 1 PatientName".
# Nested (sequence item) lines are indented after the "I: " prefix and are skipped.
_ELEMENT = re.compile(
    r"^(?P<tag>\([0-9a-fA-F]{4},[0-9a-fA-F]{4}\)) (?P<vr>[A-Za-z]{2}) "
    r"(?:\[(?P<value>.*)\]|(?P<other>\S.*?))\s+#\s*\d+,\s*\d+\s+(?P<keyword>\S+)\s*$"
)
_RESPONSE_START = re.compile(r"^(?:Find|Get|Move) Response: \d+ \((?P<status>[^)]*)\)")
_FINAL = re.compile(r"^Received Final (?:Find|Move|Get) Response \((?P<status>[^)]*)\)")


def parse_dataset_dump(lines: Iterable[str]) -> dict[str, str]:
    """Top-level elements of a DCMTK dataset dump: keyword -> value.

    Values lose their padding; an empty or "(no value available)" element maps to "";
    a sequence maps to "(Sequence)". Tags DCMTK cannot name are keyed by "(gggg,eeee)".
    """
    dataset: dict[str, str] = {}
    for line in lines:
        if not (element := _ELEMENT.match(line)):
            continue
        keyword = element["keyword"]
        if keyword.startswith("Unknown"):
            keyword = element["tag"].lower()
        if element["vr"] == "SQ":
            dataset[keyword] = "(Sequence)"
        elif element["value"] is not None:
            dataset[keyword] = element["value"].rstrip(" \0")
        else:
            dataset[keyword] = ""
    return dataset


def parse_findscu_output(tool: ToolResult) -> FindResult:
    """Responses printed by `findscu -v` (also works for movescu/getscu -v)."""
    responses: list[dict[str, str]] = []
    final_status = None
    block: list[str] | None = None
    for raw in tool.log_lines():
        if not raw.startswith("I: "):
            continue
        line = raw[3:]
        if _RESPONSE_START.match(line):
            if block is not None:
                responses.append(parse_dataset_dump(block))
            block = []
        elif final := _FINAL.match(line):
            final_status = final["status"]
        elif block is not None:
            if line.startswith(("Received", "Releasing", "Aborting", "Sending", "----")):
                responses.append(parse_dataset_dump(block))
                block = None
            else:
                block.append(line)
    if block is not None:
        responses.append(parse_dataset_dump(block))
    return FindResult(tool, [response for response in responses if response], final_status)


_MODEL_FLAGS = {"patient": "-P", "study": "-S", "worklist": "-W"}


def _key_args(level: str | None, keys: Mapping[str, str] | Iterable[str]) -> list[str]:
    pairs = dict(keys) if isinstance(keys, Mapping) else {key: "" for key in keys}
    if level is not None:
        pairs = {"QueryRetrieveLevel": level, **pairs}
    args = []
    for key, value in pairs.items():
        args += ["-k", f"{key}={value}" if value else key]
    return args


async def findscu(
    peer: PeerAddress,
    keys: Mapping[str, str] | Iterable[str],
    *,
    level: str | None = "STUDY",
    model: str = "study",
    calling_ae: str = "FINDSCU",
    timeout: float = 60.0,
) -> FindResult:
    """C-FIND. `keys`: keyword -> match value ("" = return key), or keywords only."""
    args = ["-v", _MODEL_FLAGS[model], *_network_args(peer, calling_ae), *_key_args(level, keys)]
    return parse_findscu_output(
        await run_dcmtk("findscu", *args, *_address(peer), timeout=timeout)
    )


async def findscu_worklist(
    peer: PeerAddress,
    keys: Mapping[str, str] | Iterable[str] = (),
    *,
    query_file: Path | None = None,
    out_dir: Path,
    calling_ae: str = "FINDSCU",
    timeout: float = 60.0,
) -> tuple[FindResult, list[Path]]:
    """`findscu -W` with -k keys (sequence items as `Seq[0].Key=value`) and/or a query
    file; each response is extracted (-X) into `out_dir` as rsp0001.dcm, rsp0002.dcm..."""
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["-v", "-W", "-X", "-od", out_dir, *_network_args(peer, calling_ae), *_key_args(None, keys)]
    tool = await run_dcmtk("findscu", *args, *_address(peer), *([query_file] if query_file else []), timeout=timeout)
    return parse_findscu_output(tool), sorted(out_dir.glob("rsp*.dcm"))


# ---------------------------------------------------------------- move, get


_RETRIEVE_STATUS = re.compile(
    r"^I: Received (?:Final Move Response|C-GET Response) \((?P<status>[^)]*)\)"
)
_SUB_OPERATIONS = re.compile(r"^I:\s+Number of (?P<kind>\w+) Suboperations\s*:\s*(?P<count>\d+)")


@dataclass(frozen=True)
class RetrieveResult:
    tool: ToolResult
    final_status: str | None
    # From getscu's final report: {"Remaining": 0, "Completed": 3, "Failed": 0, "Warning": 0}.
    sub_operations: dict[str, int]
    received_dir: Path | None  # where getscu / movescu +P wrote what it received

    @property
    def ok(self) -> bool:
        return (
            self.final_status == "Success"
            and not self.tool.errors()
            and self.sub_operations.get("Failed", 0) == 0
        )

    def check(self) -> RetrieveResult:
        if not self.ok or self.tool.returncode != 0:
            raise PeerError(f"retrieve did not succeed:\n{self.tool.describe()}")
        return self

    def received_files(self) -> list[Path]:
        if self.received_dir is None:
            return []
        return sorted(path for path in self.received_dir.rglob("*") if path.is_file())


def parse_retrieve_output(tool: ToolResult, received_dir: Path | None = None) -> RetrieveResult:
    """The final status (and sub-operation counts) printed by `movescu -v` / `getscu -v`."""
    final_status = None
    counts: dict[str, int] = {}
    for line in tool.log_lines():
        if (status := _RETRIEVE_STATUS.match(line)) and status["status"] != "Pending":
            final_status = status["status"]
        elif count := _SUB_OPERATIONS.match(line):
            counts[count["kind"]] = int(count["count"])
    return RetrieveResult(tool, final_status, counts, received_dir)


async def movescu(
    peer: PeerAddress,
    keys: Mapping[str, str] | Iterable[str],
    *,
    destination_ae: str,
    level: str = "STUDY",
    model: str = "study",
    calling_ae: str = "MOVESCU",
    receive_port: int | None = None,
    received_dir: Path | None = None,
    timeout: float = 120.0,
) -> RetrieveResult:
    """C-MOVE to `destination_ae` (which the peer must know).

    With receive_port, movescu itself listens there as the destination and writes
    into received_dir (then destination_ae is usually the calling AE).
    """
    args = ["-v", _MODEL_FLAGS[model], *_network_args(peer, calling_ae), "-aem", destination_ae]
    if receive_port is not None:
        if received_dir is None:
            raise ValueError("receive_port needs received_dir")
        received_dir.mkdir(parents=True, exist_ok=True)
        args += ["+P", str(receive_port), "+xa", "-od", os.fspath(received_dir)]
    args += _key_args(level, keys)
    tool = await run_dcmtk("movescu", *args, *_address(peer), timeout=timeout)
    return parse_retrieve_output(tool, received_dir)


async def getscu(
    peer: PeerAddress,
    keys: Mapping[str, str] | Iterable[str],
    *,
    received_dir: Path,
    level: str = "STUDY",
    model: str = "study",
    calling_ae: str = "GETSCU",
    timeout: float = 120.0,
) -> RetrieveResult:
    """C-GET into received_dir."""
    received_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "-v", _MODEL_FLAGS[model], *_network_args(peer, calling_ae),
        "-od", os.fspath(received_dir), *_key_args(level, keys),
    ]
    tool = await run_dcmtk("getscu", *args, *_address(peer), timeout=timeout)
    return parse_retrieve_output(tool, received_dir)
