"""Storage Commitment (PS3.4 Annex J): whether the node holds what a requestor asks it to
commit, instance by instance.

An instance is committed when the index knows it under the SOP class the requestor
names, its file is on local storage and readable, and the file's SHA-256 is the one
recorded when it was stored. Anything else is a failure with the Failure Reason
(0008,1197) PS3.4 J.3.3.1 gives: 0112 no such object instance (not in the index), 0119
class/instance conflict (another SOP class), 0110 processing failure (the file is gone,
unreadable, altered, or on a tier this check cannot read).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from .file_scan import digest


class FailureReason(enum.IntEnum):
    PROCESSING_FAILURE = 0x0110
    NO_SUCH_OBJECT_INSTANCE = 0x0112
    RESOURCE_LIMITATION = 0x0213
    REFERENCED_SOP_CLASS_NOT_SUPPORTED = 0x0122
    CLASS_INSTANCE_CONFLICT = 0x0119
    DUPLICATE_TRANSACTION_UID = 0x0131


@attrs.frozen
class ReferencedInstance:
    sop_class_uid: str
    sop_instance_uid: str


@attrs.frozen
class FailedInstance:
    sop_class_uid: str
    sop_instance_uid: str
    reason: int


@attrs.frozen(kw_only=True)
class CommitmentResult:
    success: tuple[ReferencedInstance, ...] = ()
    failed: tuple[FailedInstance, ...] = ()


@attrs.frozen(kw_only=True)
class StoredCopy:
    """What the index knows of one instance's copy."""

    sop_class_uid: str
    file_path: str  # relative to the data directory
    sha256: str
    tier: str = "local"


def check_instances(
    root: Path, referenced: Sequence[ReferencedInstance], copies: Mapping[str, StoredCopy]
) -> tuple[CommitmentResult, dict[str, str]]:
    """The outcome for each referenced instance (reads and hashes the files: call it in a
    thread), and why each failure failed, by SOP Instance UID, for the log."""
    success: list[ReferencedInstance] = []
    failed: list[FailedInstance] = []
    why: dict[str, str] = {}
    verdicts: dict[str, tuple[int, str] | None] = {}  # a file is read once, however often it is named
    for instance in referenced:
        copy = copies.get(instance.sop_instance_uid)
        if copy is None:
            reason, text = FailureReason.NO_SUCH_OBJECT_INSTANCE, "not in the index"
        elif copy.sop_class_uid != instance.sop_class_uid:
            reason, text = FailureReason.CLASS_INSTANCE_CONFLICT, f"stored as SOP class {copy.sop_class_uid}"
        else:
            if instance.sop_instance_uid not in verdicts:
                verdicts[instance.sop_instance_uid] = _file_problem(root, copy)
            verdict = verdicts[instance.sop_instance_uid]
            if verdict is None:
                success.append(instance)
                continue
            reason, text = verdict
        failed.append(FailedInstance(instance.sop_class_uid, instance.sop_instance_uid, int(reason)))
        why[instance.sop_instance_uid] = text
    return CommitmentResult(success=tuple(success), failed=tuple(failed)), why


def _file_problem(root: Path, copy: StoredCopy) -> tuple[int, str] | None:
    if copy.tier != "local":
        return FailureReason.PROCESSING_FAILURE, f"on tier {copy.tier}, which this check cannot read"
    try:
        found = digest(root / copy.file_path)
    except OSError as error:
        return FailureReason.PROCESSING_FAILURE, f"file {copy.file_path} unreadable: {error.strerror or error}"
    if found.sha256 != copy.sha256:
        return FailureReason.PROCESSING_FAILURE, f"file {copy.file_path} does not have its recorded SHA-256"
    return None
