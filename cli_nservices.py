"""The DIMSE-N SCU subcommands: storage commitment and MPPS.

    triopacs commit HOST PORT PATH... [-r] [--listen PORT] [--wait S]
    triopacs mpps create HOST PORT FILE [--uid UID]
    triopacs mpps set HOST PORT UID FILE

`commit` asks the peer to commit the instances in the named files (those already sent)
and waits for its report: on the same association, or - with `--listen PORT` - on a new
one the peer opens to us (as our `--aet`, which the peer must know at this host and
port). It prints each committed and failed instance; exit 1 when any failed or no
report came. `mpps create` sends an N-CREATE with the attributes of FILE (DICOM JSON or
a DICOM file) and prints the instance UID; `mpps set` an N-SET with FILE's attributes
(for example PerformedProcedureStepStatus = COMPLETED). A refusal prints the status and
exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli_scu import EXIT_FAILURE, EXIT_OK, _connect, _network_options, _peer, _runner


def add_nservice_commands(commands) -> None:
    network = _network_options()
    commit = commands.add_parser("commit", parents=[network], help="storage commitment for files already sent")
    commit.add_argument("paths", nargs="+", metavar="PATH", help="DICOM file or folder")
    commit.add_argument("-r", "--recursive", action="store_true", help="descend into subfolders")
    commit.add_argument("--listen", type=int, metavar="PORT", help="take the report on a new association to this port (0: a free one, printed)")
    commit.add_argument("--wait", type=float, default=60.0, metavar="S", help="how long to wait for the report (default 60)")

    mpps = commands.add_parser("mpps", help="Modality Performed Procedure Step: N-CREATE or N-SET")
    actions = mpps.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[network], help="N-CREATE a step from FILE's attributes")
    create.add_argument("file", type=Path, metavar="FILE", help="DICOM JSON or DICOM file")
    create.add_argument("--uid", metavar="UID", help="the step's SOP Instance UID (default: the peer makes one)")
    update = actions.add_parser("set", parents=[network], help="N-SET FILE's attributes on step UID")
    update.add_argument("uid", metavar="UID")
    update.add_argument("file", type=Path, metavar="FILE", help="DICOM JSON or DICOM file")


def read_attributes(path: Path):
    """A Dataset from DICOM JSON (.json) or a DICOM file; InvalidInput says why not."""
    from pydicom import Dataset, dcmread

    from .client.errors import InvalidInput

    try:
        if path.suffix.lower() == ".json":
            return Dataset.from_json(json.loads(path.read_text(encoding="utf-8")))
        return dcmread(path, force=True)
    except OSError as error:
        raise InvalidInput(f"{path}: {error.strerror or error}") from None
    except Exception as error:  # malformed JSON or DICOM: pydicom raises many kinds
        raise InvalidInput(f"{path}: not DICOM JSON or a DICOM file ({error})") from None


# --- commit ---------------------------------------------------------------------------------------


def _referenced(args: argparse.Namespace):
    from .cli_store import _iter_files
    from .client.datasets import locate
    from .storage.commitment import ReferencedInstance

    files = [locate(path) for path in _iter_files(args.paths, args.recursive)]
    return [ReferencedInstance(f.sop_class_uid, f.sop_instance_uid) for f in files]


async def _commit(args: argparse.Namespace) -> int:
    from contextlib import AsyncExitStack

    from .client.commitment import association_report, commitment_contexts, request_commitment
    from .client.errors import DimseTimeout
    from .client.report_listener import listen_for_reports

    instances = _referenced(args)  # every file checked before anything is sent
    async with AsyncExitStack() as stack:
        listener = None
        if args.listen is not None:
            listener = await stack.enter_async_context(listen_for_reports(ae_title=args.aet, port=args.listen, host="0.0.0.0"))
            print(f"listening for the report as {args.aet} on port {listener.port}", file=sys.stderr, flush=True)
        async with _connect(args, commitment_contexts()) as association:
            transaction = await request_commitment(association, instances)
            print(f"N-ACTION {_peer(args)}: accepted, transaction {transaction}", file=sys.stderr)
            if listener is None:
                try:
                    report = await association_report(association, transaction, timeout=args.wait)
                except DimseTimeout:
                    report = None
        if listener is not None:
            report = await listener.next_report(transaction, timeout=args.wait)
    if report is None:
        print(f"triopacs commit: no report from {_peer(args)} within {args.wait:g} s", file=sys.stderr)
        return EXIT_FAILURE
    for instance in report.committed:
        print(f"committed {instance.sop_instance_uid}")
    for failed in report.failed:
        print(f"FAILED {failed.sop_instance_uid} reason 0x{failed.reason:04X}")
    print(f"{len(report.committed)} committed, {len(report.failed)} failed", file=sys.stderr)
    return EXIT_OK if not report.failed else EXIT_FAILURE


# --- mpps -----------------------------------------------------------------------------------------


async def _mpps(args: argparse.Namespace) -> int:
    from .protocol.catalog import MODALITY_PERFORMED_PROCEDURE_STEP as MPPS
    from .protocol.negotiation import ProposedContext

    attributes = read_attributes(args.file)
    async with _connect(args, [ProposedContext(abstract_syntax=MPPS)]) as association:
        if args.action == "create":
            result = await association.n_create(MPPS, attributes, sop_instance_uid=args.uid)
        else:
            result = await association.n_set(MPPS, args.uid, attributes)
    verb = "N-CREATE" if args.action == "create" else "N-SET"
    if not result.ok:
        comment = f": {result.error_comment}" if result.error_comment else ""
        print(f"triopacs mpps: {verb} refused by {_peer(args)}: 0x{result.status:04X} {result.meaning}{comment}", file=sys.stderr)
        return EXIT_FAILURE
    print(result.sop_instance_uid or args.uid)
    return EXIT_OK


NSERVICE_COMMANDS = {"commit": _runner("commit", _commit), "mpps": _runner("mpps", _mpps)}
