"""The SCU subcommands of `triopacs`: echo, store, find, move, get (after DCMTK's tools).

    triopacs echo  HOST PORT [--aec AE] [--aet AE]
    triopacs store HOST PORT PATH... [-r]
    triopacs find  HOST PORT --level L [--model study|patient] [-k Key[=Value] ...] [--json]
    triopacs move  HOST PORT --dest AE --level L [-k ...]
    triopacs get   HOST PORT -o DIR --level L [-k ...]

Results go to stdout, progress and errors to stderr. Exit status: 0 when everything
succeeded; 1 when the peer or the network failed us (one line on stderr says how);
2 for bad input (a key that is no attribute, no DICOM file to send).

cli.py registers these with `add_scu_commands(subparsers)` and `SCU_COMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

# Return keys of a C-FIND given no -k: enough to tell the matches apart.
DEFAULT_KEYS = {
    "PATIENT": ("PatientID", "PatientName", "PatientBirthDate", "PatientSex"),
    "STUDY": ("PatientID", "PatientName", "StudyDate", "AccessionNumber", "StudyDescription", "StudyInstanceUID"),
    "SERIES": ("Modality", "SeriesNumber", "SeriesDescription", "SeriesInstanceUID"),
    "IMAGE": ("InstanceNumber", "SOPClassUID", "SOPInstanceUID"),
}


# --- the parser ---------------------------------------------------------------------------


def _network_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("host", help="peer host name or address")
    common.add_argument("port", type=int, help="peer DICOM port")
    common.add_argument("--aec", default="TRIOPACS", metavar="AE", help="called AE title (default TRIOPACS)")
    common.add_argument("--aet", default="TRIOPACS", metavar="AE", help="our calling AE title (default TRIOPACS)")
    common.add_argument("--timeout", type=float, default=60.0, metavar="S", help="DIMSE timeout in seconds (default 60)")
    common.add_argument("--connect-timeout", type=float, default=10.0, metavar="S", help="TCP connect timeout (default 10)")
    common.add_argument("--max-pdu", type=int, default=65536, metavar="N", help="our maximum PDU length (default 65536)")
    common.add_argument("-v", "--verbose", action="store_true", help="log the association's progress on stderr")
    tls = common.add_argument_group("DICOM TLS and user identity")
    tls.add_argument("--tls", action="store_true", help="connect with DICOM TLS (TLS 1.2/1.3, BCP 195)")
    tls.add_argument("--tls-ca", metavar="FILE", default="", help="PEM CAs to check the peer's certificate against (default: the system's)")
    tls.add_argument("--tls-cert", metavar="FILE", default="", help="our client certificate (PEM), for peers that want one")
    tls.add_argument("--tls-key", metavar="FILE", default="", help="the private key of --tls-cert")
    tls.add_argument("--tls-no-hostname-check", action="store_true", help="accept a certificate that does not name the host")
    tls.add_argument("--user", metavar="NAME", help="send a user identity (PS3.7 D.3.3.7)")
    tls.add_argument(
        "--password", metavar="PASSCODE",
        help="its passcode (default: the TRIOPACS_PASSWORD environment variable, if set; else username only)",
    )
    return common


def _query_options() -> argparse.ArgumentParser:
    query = argparse.ArgumentParser(add_help=False)
    query.add_argument("--level", required=True, type=str.upper, choices=LEVELS, help="query/retrieve level")
    query.add_argument("--model", default="study", choices=("study", "patient"), help="information model (default study)")
    query.add_argument(
        "-k", "--key", action="append", default=[], dest="keys", metavar="KEY[=VALUE]",
        help="a matching key (KEY=VALUE) or return key (KEY): keyword or gggg,eeee; repeatable",
    )
    return query


def add_scu_commands(commands: argparse._SubParsersAction) -> None:
    network, query = _network_options(), _query_options()
    commands.add_parser("echo", parents=[network], help="C-ECHO a peer")

    store = commands.add_parser("store", parents=[network], help="C-STORE files and folders")
    store.add_argument("paths", nargs="+", metavar="PATH", help="DICOM file or folder")
    store.add_argument("-r", "--recursive", action="store_true", help="descend into subfolders")

    find = commands.add_parser("find", parents=[network, query], help="C-FIND and print the matches")
    find.add_argument("--json", action="store_true", help="print the matches as DICOM JSON")

    move = commands.add_parser("move", parents=[network, query], help="C-MOVE matches to another AE")
    move.add_argument("--dest", required=True, metavar="AE", help="move destination AE title (the peer must know it)")

    get = commands.add_parser("get", parents=[network, query], help="C-GET matches into a folder")
    get.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="folder for the received files")


# --- running a command ---------------------------------------------------------------------------


def _runner(name: str, main: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import trio

        from .client.errors import ClientError, InvalidInput
        from .log import configure_logging

        configure_logging("info" if args.verbose else "warning", "console")
        try:
            return trio.run(main, args)
        except InvalidInput as error:
            _error(name, error)
            return EXIT_USAGE
        except ClientError as error:
            _error(name, error)
            return EXIT_FAILURE
        except KeyboardInterrupt:
            _error(name, "interrupted")
            return EXIT_FAILURE

    return run


def _error(name: str, message: object) -> None:
    print(f"triopacs {name}: {message}", file=sys.stderr, flush=True)


def _tls_context(args: argparse.Namespace):
    if not args.tls:
        return None
    from .client.tls import TlsSetupError, client_context

    try:
        return client_context(
            ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key, check_hostname=not args.tls_no_hostname_check
        )
    except TlsSetupError as error:
        from .client.errors import InvalidInput

        raise InvalidInput(str(error)) from None


def _connect(args: argparse.Namespace, contexts=None):
    import os

    from .client.connection import connect

    password = args.password if args.password is not None else os.environ.get("TRIOPACS_PASSWORD")
    return connect(
        args.host,
        args.port,
        called_ae_title=args.aec,
        calling_ae_title=args.aet,
        contexts=contexts,
        max_pdu_length=args.max_pdu,
        connect_timeout=args.connect_timeout,
        dimse_timeout=args.timeout,
        ssl_context=_tls_context(args),
        username=args.user,
        passcode=password if args.user is not None else None,
    )


def _peer(args: argparse.Namespace) -> str:
    return f"{args.aec}@{args.host}:{args.port}"


# --- echo ----------------------------------------------------------------------------------------


async def _echo(args: argparse.Namespace) -> int:
    from .client.connection import connect  # noqa: F401  (imported before the clock starts)
    from .client.contexts import verification_contexts

    started = time.perf_counter()
    async with _connect(args, verification_contexts()) as association:
        await association.echo()
    print(f"C-ECHO {_peer(args)}: Success ({(time.perf_counter() - started) * 1000:.1f} ms)")
    return EXIT_OK


# --- store ---------------------------------------------------------------------------------------


async def _store(args: argparse.Namespace) -> int:
    from .cli_store import store  # checks every file, reconnects after an abort

    return await store(args, lambda contexts: _connect(args, contexts), _peer(args))


# --- query keys --------------------------------------------------------------------------------


def _tag_of(key: str):
    from pydicom.datadict import tag_for_keyword
    from pydicom.tag import Tag

    from .client.errors import InvalidInput

    text = key.strip().strip("()")
    if "," in text or (len(text) == 8 and all(c in "0123456789abcdefABCDEF" for c in text)):
        group, _, element = text.partition(",") if "," in text else (text[:4], "", text[4:])
        try:
            return Tag(int(group, 16), int(element, 16))
        except ValueError:
            raise InvalidInput(f"-k {key}: not a tag (gggg,eeee)") from None
    tag = tag_for_keyword(text)
    if tag is None:
        raise InvalidInput(f"-k {key}: no DICOM attribute has that keyword")
    return Tag(tag)


def _value_for(vr: str, text: str, key: str) -> Any:
    from .client.errors import InvalidInput

    if vr == "SQ":
        if text:
            raise InvalidInput(f"-k {key}: a sequence can only be a return key")
        return []
    if vr in ("US", "SS", "UL", "SL", "UV", "SV", "AT"):
        try:
            return [int(part, 0) for part in text.split("\\")] if text else None
        except ValueError:
            raise InvalidInput(f"-k {key}: {vr} wants integers") from None
    if vr in ("FL", "FD"):
        try:
            return [float(part) for part in text.split("\\")] if text else None
        except ValueError:
            raise InvalidInput(f"-k {key}: {vr} wants numbers") from None
    return text


def build_query(keys: Sequence[str], level: str):
    """A query Dataset from -k arguments; (dataset, the keywords/tags in order, for columns)."""
    from pydicom.datadict import dictionary_VR, keyword_for_tag
    from pydicom.dataset import Dataset

    from .client.errors import InvalidInput

    query = Dataset()
    columns = []
    for key in keys or DEFAULT_KEYS[level]:
        name, _, value = key.partition("=")
        tag = _tag_of(name)
        if tag == 0x00080052:
            raise InvalidInput("-k QueryRetrieveLevel: use --level")
        try:
            vr = dictionary_VR(tag).split(" or ")[0]  # "US or SS": either will do for a key
        except KeyError:
            vr = "LO"  # a private or unknown tag: matched as text
        query.add_new(tag, vr, _value_for(vr, value, key))
        columns.append((tag, keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})"))
    return query, columns


def _text(element) -> str:
    from pydicom.multival import MultiValue

    if element is None or element.value is None:
        return ""
    value = element.value
    if element.VR == "SQ":
        return f"({len(value)} items)"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(part) for part in value)
    return str(value)


def format_table(columns: list, matches: list) -> str:
    header = [name for _tag, name in columns]
    rows = [[_text(match.get(tag)) for tag, _name in columns] for match in matches]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *rows]]
    return "\n".join(lines)


# --- find, move, get ------------------------------------------------------------------------------


async def _find(args: argparse.Namespace) -> int:
    from .client.contexts import query_retrieve_contexts

    query, columns = build_query(args.keys, args.level)
    contexts = query_retrieve_contexts(args.model, move=False, get=False)
    async with _connect(args, contexts) as association:
        matches = [match async for match in association.find(query, level=args.level, model=args.model)]
    if args.json:
        print(json.dumps([match.to_json_dict() for match in matches], indent=2))
    else:
        print(format_table(columns, matches))
    print(f"{len(matches)} match{'es' if len(matches) != 1 else ''}", file=sys.stderr)
    return EXIT_OK


def _report(progress, *, failed_lines: bool = True) -> int:
    """Print the final counts; the exit status they call for."""
    counts = f"completed {progress.completed or 0}, failed {progress.failed or 0}, warning {progress.warning or 0}"
    print(f"{progress.operation}: {counts}; status 0x{progress.status:04X} {progress.meaning}")
    if failed_lines and progress.failed_sop_instance_uids:
        print("failed SOP instances:")
        for uid in progress.failed_sop_instance_uids:
            print(f"  {uid}")
    return EXIT_OK if progress.ok else EXIT_FAILURE


def _show(progress) -> None:
    if not progress.final:
        print(
            f"{progress.operation}: remaining {progress.remaining}, completed {progress.completed},"
            f" failed {progress.failed}, warning {progress.warning}",
            file=sys.stderr,
            flush=True,
        )


async def _move(args: argparse.Namespace) -> int:
    from .client.contexts import query_retrieve_contexts

    query, _columns = build_query(args.keys, args.level) if args.keys else (_empty(), [])
    contexts = query_retrieve_contexts(args.model, find=False, get=False)
    last = None
    async with _connect(args, contexts) as association:
        async for progress in association.move(query, args.dest, level=args.level, model=args.model):
            _show(progress)
            last = progress
    return _report(last)


async def _get(args: argparse.Namespace) -> int:
    from .client.contexts import query_retrieve_contexts, retrieve_storage_contexts

    query, _columns = build_query(args.keys, args.level) if args.keys else (_empty(), [])
    # One C-GET context leaves room for two compressed contexts per class: more of what
    # the peer holds can come as it is stored.
    contexts = [*query_retrieve_contexts(args.model, find=False, move=False), *retrieve_storage_contexts(compressed_contexts=2)]
    last = None
    async with _connect(args, contexts) as association:
        async for progress in association.get(query, args.output, level=args.level, model=args.model):
            _show(progress)
            last = progress
    status = _report(last)
    print(f"received {last.received} instance{'s' if last.received != 1 else ''} into {args.output}")
    return status


def _empty():
    from pydicom.dataset import Dataset

    return Dataset()


SCU_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "echo": _runner("echo", _echo),
    "store": _runner("store", _store),
    "find": _runner("find", _find),
    "move": _runner("move", _move),
    "get": _runner("get", _get),
}
