"""Storage Commitment Push Model (PS3.4 J): its data sets, and the requestor's side.

    async with connect(host, port, called_ae_title="PACS", contexts=commitment_contexts()) as association:
        transaction = await request_commitment(association, instances)
        report = await association_report(association, transaction, timeout=60)

N-ACTION (Action Type 1) carries the Transaction UID and the Referenced SOP Sequence;
the SCP answers it at once and reports later with N-EVENT-REPORT: Event Type 1 when
every instance is committed, 2 when some failed (Failed SOP Sequence, each with its
Failure Reason). The report comes on the same association if it is still open, else on
a new one the SCP opens to us (report_listener.py receives those).

The node's SCP reads and writes the same data sets through this module.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ..protocol.catalog import STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE
from ..protocol.negotiation import ProposedContext
from ..protocol.status import Status
from ..protocol.uid import is_valid_uid, new_uid
from ..storage.commitment import CommitmentResult, FailedInstance, ReferencedInstance
from .errors import InvalidInput, OperationFailed

REQUEST_STORAGE_COMMITMENT = 1  # Action Type ID
EVENT_SUCCESSFUL = 1  # Event Type IDs
EVENT_FAILURES_EXIST = 2


class InvalidCommitmentData(ValueError):
    """Action or Event Information that does not say what PS3.4 J requires; `status` is
    what an SCP answers it with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@attrs.frozen(kw_only=True)
class CommitmentReport:
    """What the SCP reported for one transaction."""

    transaction_uid: str
    committed: tuple[ReferencedInstance, ...]
    failed: tuple[FailedInstance, ...]
    event_type_id: int

    @property
    def ok(self) -> bool:
        return not self.failed


def commitment_contexts(*, as_scp: bool = False) -> list[ProposedContext]:
    """The context a requestor proposes (as_scp: the SCP opening an association to
    report, which takes the SCP role by role selection, PS3.4 J.3.3)."""
    if as_scp:
        return [ProposedContext(abstract_syntax=STORAGE_COMMITMENT_PUSH_MODEL, scu_role=False, scp_role=True)]
    return [ProposedContext(abstract_syntax=STORAGE_COMMITMENT_PUSH_MODEL)]


# --- the data sets -------------------------------------------------------------------------


def _reference(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class_uid
    item.ReferencedSOPInstanceUID = sop_instance_uid
    return item


def action_information(transaction_uid: str, instances: Iterable[ReferencedInstance]) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    ds.ReferencedSOPSequence = Sequence([_reference(i.sop_class_uid, i.sop_instance_uid) for i in instances])
    return ds


def read_action_information(ds: Dataset | None) -> tuple[str, tuple[ReferencedInstance, ...]]:
    """(Transaction UID, the instances to commit) of an N-ACTION, or InvalidCommitmentData
    (0115 Invalid argument value, the status PS3.7 gives an N-ACTION for its argument)."""
    if ds is None:
        raise InvalidCommitmentData(Status.INVALID_ARGUMENT_VALUE, "the request has no Action Information")
    transaction_uid = _uid(ds, "TransactionUID")
    if transaction_uid is None:
        raise InvalidCommitmentData(Status.INVALID_ARGUMENT_VALUE, "no valid Transaction UID")
    items = ds.get("ReferencedSOPSequence")
    if not items:
        raise InvalidCommitmentData(Status.INVALID_ARGUMENT_VALUE, "no Referenced SOP Sequence items")
    return transaction_uid, tuple(_referenced(item) for item in items)


def _uid(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    text = str(value).strip() if value is not None else ""
    return text if is_valid_uid(text) and text else None


def _referenced(item: Dataset) -> ReferencedInstance:
    sop_class, sop_instance = _uid(item, "ReferencedSOPClassUID"), _uid(item, "ReferencedSOPInstanceUID")
    if sop_class is None or sop_instance is None:
        raise InvalidCommitmentData(
            Status.INVALID_ARGUMENT_VALUE, "a Referenced SOP Sequence item lacks a valid SOP class or instance UID"
        )
    return ReferencedInstance(sop_class, sop_instance)


def event_information(transaction_uid: str, result: CommitmentResult) -> tuple[int, Dataset]:
    """(Event Type ID, Event Information) reporting `result`."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    if result.success:
        ds.ReferencedSOPSequence = Sequence([_reference(i.sop_class_uid, i.sop_instance_uid) for i in result.success])
    if not result.failed:
        return EVENT_SUCCESSFUL, ds
    failed = []
    for instance in result.failed:
        item = _reference(instance.sop_class_uid, instance.sop_instance_uid)
        item.FailureReason = instance.reason
        failed.append(item)
    ds.FailedSOPSequence = Sequence(failed)
    return EVENT_FAILURES_EXIST, ds


def read_event_information(event_type_id: int, ds: Dataset | None) -> CommitmentReport:
    if ds is None or _uid(ds, "TransactionUID") is None:
        raise InvalidCommitmentData(Status.INVALID_ARGUMENT_VALUE, "the report has no valid Transaction UID")
    committed = tuple(_referenced(item) for item in ds.get("ReferencedSOPSequence") or ())
    failed = tuple(
        FailedInstance(
            str(item.get("ReferencedSOPClassUID", "")), str(item.get("ReferencedSOPInstanceUID", "")),
            int(item.get("FailureReason", Status.PROCESSING_FAILURE)),
        )
        for item in ds.get("FailedSOPSequence") or ()
    )
    return CommitmentReport(
        transaction_uid=_uid(ds, "TransactionUID") or "", committed=committed, failed=failed, event_type_id=event_type_id
    )


# --- the requestor ---------------------------------------------------------------------------


async def request_commitment(association, instances: Iterable[ReferencedInstance], *, transaction_uid: str | None = None) -> str:
    """Send the N-ACTION; the Transaction UID once the SCP accepted it (OperationFailed if not)."""
    instances = tuple(instances)
    if not instances:
        raise InvalidInput("name at least one instance to commit")
    transaction_uid = transaction_uid or new_uid()
    result = await association.n_action(
        STORAGE_COMMITMENT_PUSH_MODEL,
        STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE,
        REQUEST_STORAGE_COMMITMENT,
        action_information(transaction_uid, instances),
    )
    if not result.ok:
        raise OperationFailed("N-ACTION", result.status, error_comment=result.error_comment)
    return transaction_uid


async def association_report(association, transaction_uid: str, *, timeout: float) -> CommitmentReport:
    """Wait on this association for the report of `transaction_uid` (reports of other
    transactions that come meanwhile are answered and skipped)."""
    while True:
        event = await association.receive_event_report(timeout=timeout)
        report = report_of(event.event_type_id, event.information)
        if report is not None and report.transaction_uid == transaction_uid:
            return report


def report_of(event_type_id: int, information: Dataset | None) -> CommitmentReport | None:
    try:
        return read_event_information(event_type_id, information)
    except (InvalidCommitmentData, ValueError, TypeError):
        return None
