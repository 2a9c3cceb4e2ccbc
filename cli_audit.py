"""`triopacs audit verify | export`: check the audit trail's chain, or write its records
as DICOM audit messages (XML, PS3.15 A.5.1).

Both only read the files (a running node may keep writing them). `verify` exits 1 and
names the first record changed, removed or inserted; it prints the head (last seq and
hash), which kept elsewhere lets a later `verify --head` see records cut off the end.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

from .config import load_config

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_audit_commands(commands) -> None:
    audit = commands.add_parser("audit", help="verify or export the audit trail ([audit])")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="check the hash chain; name the first record changed, removed or inserted")
    verify.add_argument("--head", metavar="SEQ:HASH", help="the head an earlier verify printed: records cut off the end show")
    export = actions.add_parser("export", help="write records as DICOM audit messages (XML)")
    export.add_argument("--since", required=True, metavar="TIME", help="ISO 8601 date or time (UTC), e.g. 2026-01-31 or 2026-01-31T08:00")
    export.add_argument("--until", metavar="TIME", help="only records before this time")
    export.add_argument("-o", "--output", type=Path, help="the XML file (default: stdout)")
    for action in (verify, export):
        action.add_argument("--config", type=Path, help="TOML configuration file")
        action.add_argument("--file", type=Path, help="the trail's current file (default: from the configuration)")


def _utc_text(value: str) -> str:
    """An ISO 8601 date or time as the trail's UTC text, for comparison."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date or time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def audit_command(args: argparse.Namespace) -> int:
    from .storage.audit_log import since, trail_files, verify
    from .storage.audit_records import to_xml
    from .supervisor import audit_file

    current = args.file or audit_file(load_config(args.config))
    if not trail_files(current):
        print(f"triopacs audit: no audit trail at {current}", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "verify":
        result = verify(current, expected_head=args.head)
        if not result.ok:
            print(f"triopacs audit: TAMPERED: {result.problem}", file=sys.stderr)
            print(f"verified before it: {result.records} records")
            return EXIT_FAILURE
        print(f"ok: {result.records} records in {result.files} file(s); head {result.head_seq}:{result.head}")
        return EXIT_OK
    try:
        start, end = _utc_text(args.since), _utc_text(args.until) if args.until else None
    except ValueError as error:
        print(f"triopacs audit: {error}", file=sys.stderr)
        return EXIT_USAGE
    root = ET.Element("AuditMessages")
    for fields in since(current, start, end):
        root.append(to_xml(fields))
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"exported {len(root)} records to {args.output}")
    return EXIT_OK


AUDIT_COMMANDS = {"audit": audit_command}
