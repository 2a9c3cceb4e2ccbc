"""What the index actor serves for the DIMSE-N services: worklist items, performed
procedure steps, storage commitment requests.

The messages, and `dimse_n_reply`, which runs each one as one call of a storage
function: a read on the index's reader, a write as one transaction on its writer (the
index stays the one writer of its database). The index actor passes its own two runners
in, so this module knows nothing of how the database is reached.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydicom import Dataset

from ...storage import commitment_db, mpps_db, worklist_db
from ...storage.commitment import CommitmentResult, StoredCopy
from ...storage.mpps import Refusal
from ...storage.mpps_db import PerformedStep, StepRefused
from ...storage.worklist import WorklistItem
from ...storage.worklist_db import ItemAdded, ScheduledItem, WorklistEntry, WorklistMatch
from ...storage.worklist_query import plan_worklist
from ..runtime.errors import ReplyError
from ..runtime.messages import message

DEFAULT_EXPIRE_AFTER = 24 * 3600.0

# -- worklist ---------------------------------------------------------------------------------


@message("index.worklist-add")
class AddWorklistItems:
    """Add items, or replace the ones whose Scheduled Procedure Step ID is known."""

    items: tuple[WorklistItem, ...]


@message("index.worklist-added")
class WorklistItemsAdded:
    added: tuple[ItemAdded, ...]


@message("index.worklist-remove")
class RemoveWorklistItem:
    item_id: str


@message("index.worklist-removed")
class WorklistItemRemoved:
    removed: bool


@message("index.worklist-expire")
class ExpireWorklistItems:
    """Delete the items past their time (the worklist-expiry task sends it). `now`: the
    moment to judge by, for tests; None is the index's clock."""

    now: float | None = None


@message("index.worklist-expired")
class WorklistItemsExpired:
    item_ids: tuple[str, ...]


@message("index.worklist-list")
class ListWorklistItems:
    include_expired: bool = False


@message("index.worklist-listing")
class WorklistListing:
    entries: tuple[WorklistEntry, ...]


@message("index.worklist-scheduled")
class ListScheduledWorklist:
    """The items scheduled to start between `start` and `end` (epoch seconds), soonest first."""

    start: float
    end: float
    limit: int = 1000


@message("index.worklist-scheduled-items")
class ScheduledWorklist:
    items: tuple[ScheduledItem, ...]


@message("index.worklist-find")
class FindWorklist:
    """One page of a Modality Worklist C-FIND; start with cursor 0, go on with the one returned."""

    identifier: Dataset
    cursor: int = 0
    size: int = 50


@message("index.worklist-matches")
class WorklistMatchPage:
    matches: tuple[WorklistMatch, ...]
    cursor: int | None  # None: there are no more


# -- performed procedure steps ----------------------------------------------------------------


@message("index.mpps-create")
class CreatePerformedStep:
    sop_instance_uid: str
    attributes: dict[str, Any]
    specific_character_set: str = ""
    creator_ae_title: str = ""


@message("index.mpps-set")
class SetPerformedStep:
    sop_instance_uid: str
    changes: dict[str, Any]
    specific_character_set: str = ""


@message("index.mpps-get")
class GetPerformedStep:
    sop_instance_uid: str


@message("index.mpps-step")
class PerformedStepReply:
    step: PerformedStep | None


class PerformedStepRefused(ReplyError):
    """The MPPS rules refuse the N-CREATE/N-SET; `refusal` has the status to answer."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.comment)
        self.refusal = refusal


# -- storage commitment -----------------------------------------------------------------------


@message("index.commitment-save")
class SaveCommitmentRequest:
    request: commitment_db.CommitmentRequest


@message("index.commitment-saved")
class CommitmentRequestSaved:
    new: bool  # False: an unfinished request has this Transaction UID already


@message("index.commitment-copies")
class LookupStoredCopies:
    sop_instance_uids: tuple[str, ...]


@message("index.commitment-stored-copies")
class StoredCopies:
    copies: dict[str, StoredCopy]


@message("index.commitment-result")
class RecordCommitmentResult:
    transaction_uid: str
    result: CommitmentResult


@message("index.commitment-attempt")
class RecordReportAttempt:
    """A report could not be delivered; next_attempt_at None gives the request up."""

    transaction_uid: str
    attempts: int
    next_attempt_at: float | None
    error: str


@message("index.commitment-reported")
class RecordReported:
    transaction_uid: str


@message("index.commitment-unfinished")
class ListUnfinishedCommitments:
    pass


@message("index.commitment-get")
class GetCommitment:
    transaction_uid: str


@message("index.commitment-requests")
class CommitmentRequests:
    requests: tuple[commitment_db.CommitmentRequest, ...]


DIMSE_N_READS = (
    ListWorklistItems, ListScheduledWorklist, FindWorklist, GetPerformedStep, LookupStoredCopies, ListUnfinishedCommitments,
    GetCommitment,
)
DIMSE_N_WRITES = (
    AddWorklistItems, RemoveWorklistItem, ExpireWorklistItems, CreatePerformedStep, SetPerformedStep, SaveCommitmentRequest,
    RecordCommitmentResult, RecordReportAttempt, RecordReported,
)
DIMSE_N_REQUESTS = DIMSE_N_READS + DIMSE_N_WRITES

Runner = Callable[..., Awaitable[Any]]


async def dimse_n_reply(message: object, *, read: Runner, write: Runner, expire_after: float) -> object:
    """Serve one DIMSE-N request: `read(fn, *args)` runs fn(connection, *args) on the
    reader, `write(fn, *args)` in one transaction on the writer. A storage QueryError
    goes through (the caller makes it a QueryRefused); a refused step becomes
    PerformedStepRefused."""
    now = time.time()
    try:
        return await _reply(message, read, write, now, expire_after)
    except StepRefused as refused:
        raise PerformedStepRefused(refused.refusal) from None


async def _reply(message: object, read: Runner, write: Runner, now: float, expire_after: float) -> object:
    match message:
        case AddWorklistItems(items=items):
            return WorklistItemsAdded(added=tuple(await write(worklist_db.add_items, items, now, expire_after)))
        case RemoveWorklistItem(item_id=item_id):
            return WorklistItemRemoved(removed=await write(worklist_db.remove_item, item_id))
        case ExpireWorklistItems(now=at):
            expired = await write(worklist_db.expire_items, now if at is None else at, expire_after)
            return WorklistItemsExpired(item_ids=tuple(expired))
        case ListWorklistItems(include_expired=include_expired):
            entries = await read(_list_items, now, expire_after, include_expired)
            return WorklistListing(entries=tuple(entries))
        case ListScheduledWorklist(start=start, end=end, limit=limit):
            return ScheduledWorklist(items=tuple(await read(worklist_db.scheduled_between, start, end, limit)))
        case FindWorklist(identifier=identifier, cursor=cursor, size=size):
            plan = plan_worklist(identifier)
            page = await read(_find_page, plan, now, expire_after, cursor, size)
            return WorklistMatchPage(matches=page.matches, cursor=page.cursor)
        case CreatePerformedStep(sop_instance_uid=uid, attributes=attributes, specific_character_set=charset, creator_ae_title=creator):
            step = await write(_create_step, uid, attributes, charset, creator, now)
            return PerformedStepReply(step=step)
        case SetPerformedStep(sop_instance_uid=uid, changes=changes, specific_character_set=charset):
            return PerformedStepReply(step=await write(_update_step, uid, changes, charset, now))
        case GetPerformedStep(sop_instance_uid=uid):
            return PerformedStepReply(step=await read(mpps_db.get_step, uid))
        case SaveCommitmentRequest(request=request):
            return CommitmentRequestSaved(new=await write(commitment_db.save_request, request))
        case LookupStoredCopies(sop_instance_uids=uids):
            return StoredCopies(copies=await read(commitment_db.stored_copies, uids))
        case RecordCommitmentResult(transaction_uid=uid, result=result):
            await write(commitment_db.record_result, uid, result)
        case RecordReportAttempt(transaction_uid=uid, attempts=attempts, next_attempt_at=next_at, error=error):
            await write(commitment_db.record_attempt, uid, attempts, next_at, error)
        case RecordReported(transaction_uid=uid):
            await write(commitment_db.record_reported, uid, now)
        case ListUnfinishedCommitments():
            return CommitmentRequests(requests=tuple(await read(commitment_db.unfinished_requests)))
        case GetCommitment(transaction_uid=uid):
            request = await read(commitment_db.get_request, uid)
            return CommitmentRequests(requests=() if request is None else (request,))
    return None


# Keyword arguments spelled out here, so the runners need only pass positional ones.


def _list_items(connection, now, expire_after, include_expired):
    return worklist_db.list_items(connection, now, expire_after, include_expired=include_expired)


def _find_page(connection, plan, now, expire_after, cursor, size):
    return worklist_db.find_page(connection, plan, now=now, expire_after=expire_after, cursor=cursor, size=size)


def _create_step(connection, uid, attributes, charset, creator, now) -> PerformedStep:
    return mpps_db.create_step(connection, uid, attributes, specific_character_set=charset, creator_ae_title=creator, now=now)


def _update_step(connection, uid, changes, charset, now) -> PerformedStep:
    return mpps_db.update_step(connection, uid, changes, specific_character_set=charset, now=now)
