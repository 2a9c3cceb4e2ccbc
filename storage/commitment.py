"""Storage Commitment (PS3.4 Annex J): whether the node holds what a requestor asks it to
commit, instance by instance.

An instance is committed when the index knows it under the SOP class the requestor
names and the tier holding it confirms its object: present with the size and SHA-256
recorded when it was stored (a local tier hashes the file; an object store answers
with the checksum it keeps with the object). Anything else is a failure with the
Failure Reason (0008,1197) PS3.4 J.3.3.1 gives: 0112 no such object instance (not in
the index), 0119 class/instance conflict (another SOP class), 0110 processing failure
(the object is gone, unreadable or altered, or its tier could not be asked).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

import attrs

from .object_checks import OK, ExpectedObject, ObjectCheck


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
    file_path: str  # its key in its tier
    sha256: str
    file_size: int = 0
    tier: str = "local"

    def expected(self) -> ExpectedObject:
        return ExpectedObject(key=self.file_path, size=self.file_size, sha256=self.sha256)


def check_instances(
    referenced: Sequence[ReferencedInstance], copies: Mapping[str, StoredCopy], checks: Mapping[str, ObjectCheck | str]
) -> tuple[CommitmentResult, dict[str, str]]:
    """The outcome for each referenced instance, from what the index knows (`copies`) and
    what the tiers found (`checks`: by SOP Instance UID, an ObjectCheck or why the tier
    could not be asked); and why each failure failed, by SOP Instance UID, for the log."""
    success: list[ReferencedInstance] = []
    failed: list[FailedInstance] = []
    why: dict[str, str] = {}
    for instance in referenced:
        copy = copies.get(instance.sop_instance_uid)
        if copy is None:
            reason, text = FailureReason.NO_SUCH_OBJECT_INSTANCE, "not in the index"
        elif copy.sop_class_uid != instance.sop_class_uid:
            reason, text = FailureReason.CLASS_INSTANCE_CONFLICT, f"stored as SOP class {copy.sop_class_uid}"
        else:
            check = checks.get(instance.sop_instance_uid, "not checked")
            if isinstance(check, ObjectCheck) and check.outcome == OK:
                success.append(instance)
                continue
            reason = FailureReason.PROCESSING_FAILURE
            text = f"{copy.file_path} on tier {copy.tier}: " + (f"{check.outcome} {check.detail}".strip() if isinstance(check, ObjectCheck) else check)
        failed.append(FailedInstance(instance.sop_class_uid, instance.sop_instance_uid, int(reason)))
        why[instance.sop_instance_uid] = text
    return CommitmentResult(success=tuple(success), failed=tuple(failed)), why
