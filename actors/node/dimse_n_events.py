"""Events of the DIMSE-N services, published on the node's event bus.

    with node.subscribe(WorklistQueried) as events:   # what the prefetcher listens to
        async for event in events: ...
"""

from ...storage.worklist import WorklistItem
from ...storage.worklist_db import WorklistMatch
from ..runtime.messages import message


@message("event.worklist-queried")
class WorklistQueried:
    """A Modality Worklist query was answered: who asked, and each item returned - the
    response sent and the whole item (patient, procedure, scheduled step)."""

    calling_ae_title: str
    association_id: str
    items: tuple[WorklistMatch, ...]
    status: int  # the final status: 0000, or FE00 when cancelled part way


@message("event.worklist-changed")
class WorklistChanged:
    """Worklist items were added or replaced (an update from the RIS)."""

    items: tuple[WorklistItem, ...]


@message("event.mpps-started")
class MPPSStarted:
    sop_instance_uid: str
    calling_ae_title: str
    attributes: dict
    worklist_items: tuple[str, ...] = ()  # put in progress by this step


@message("event.mpps-completed")
class MPPSCompleted:
    sop_instance_uid: str
    calling_ae_title: str
    attributes: dict
    worklist_items: tuple[str, ...] = ()  # marked done


@message("event.mpps-discontinued")
class MPPSDiscontinued:
    sop_instance_uid: str
    calling_ae_title: str
    attributes: dict
    worklist_items: tuple[str, ...] = ()  # scheduled again


@message("event.storage-commitment-reported")
class StorageCommitmentReported:
    """A storage commitment report reached its requestor."""

    transaction_uid: str
    requestor_ae_title: str
    committed: int
    failed: int
    same_association: bool


@message("event.storage-commitment-retrying")
class StorageCommitmentRetrying:
    """A storage commitment report could not be delivered; it is tried again later."""

    transaction_uid: str
    requestor_ae_title: str
    attempts: int
    retry_in: float  # seconds
    error: str


@message("event.storage-commitment-abandoned")
class StorageCommitmentAbandoned:
    """A storage commitment report could not be delivered after every retry."""

    transaction_uid: str
    requestor_ae_title: str
    attempts: int
    error: str
