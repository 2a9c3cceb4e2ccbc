"""The messages of the storage commitment actor (actors/node/commitment.py)."""

from ...storage.commitment import CommitmentResult, ReferencedInstance
from ..runtime.messages import message


@message("commitment.request")
class RequestCommitment:
    """An N-ACTION asking to commit these instances; answered once it is recorded."""

    transaction_uid: str
    requestor_ae_title: str
    referenced: tuple[ReferencedInstance, ...]
    association: str = ""  # the path of the association to report on while it is open
    context_id: int = 0


@message("commitment.accepted")
class CommitmentAccepted:
    new: bool  # False: a request with this Transaction UID is under way already


@message("commitment.checked")
class Checked:
    """The instances of a request have been checked (the result is recorded)."""

    transaction_uid: str
    result: CommitmentResult


@message("commitment.delivery-due")
class DeliveryDue:
    """Time to try a report again."""

    transaction_uid: str
