"""The identifier of a C-FIND/C-MOVE/C-GET request: decoding it, and refusing it properly."""

from typing import TYPE_CHECKING

from pydicom import Dataset

from ....protocol.datasets import UndecodableDataset, decode_dataset
from ....protocol.status import QueryRetrieveStatus
from ....storage.query import InformationModel
from ....client.link import MemorySink
from .base import Session

if TYPE_CHECKING:
    from ..peer import PeerMessage


class BadIdentifier(Exception):
    """The request cannot be answered; its final status and error comment."""

    def __init__(self, status: int, comment: str, reason: str | None = None) -> None:
        super().__init__(comment)
        self.status = status
        self.reason = reason or comment  # whole, for the log
        self.comment = comment[:64]  # LO: error comments are at most 64 characters


def read_identifier(session: Session, received: "PeerMessage") -> tuple[Dataset, InformationModel, str]:
    """The identifier, the information model of the context it came on, and that
    context's transfer syntax (for the responses)."""
    context = session.context(received.context_id)
    sink = received.dataset
    if not isinstance(sink, MemorySink):
        raise BadIdentifier(QueryRetrieveStatus.UNABLE_TO_PROCESS, "the request carries no identifier")
    try:
        identifier = decode_dataset(sink.data, context.transfer_syntax, max_depth=session.settings.max_sequence_depth)
    except UndecodableDataset as error:
        raise BadIdentifier(QueryRetrieveStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(error)) from None
    return identifier, InformationModel.for_sop_class(context.abstract_syntax), context.transfer_syntax


# The keys of an identifier the audit trail keeps: what was asked for, at which level.
AUDITED_KEYS = ("QueryRetrieveLevel", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "AccessionNumber", "Modality", "StudyDate")


def audited_keys(identifier: Dataset | None) -> dict[str, str]:
    if identifier is None:
        return {}
    keys = {}
    for keyword in AUDITED_KEYS:
        value = identifier.get(keyword)
        if value not in (None, ""):
            keys[keyword] = "\\".join(map(str, value)) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else str(value)
    return {k: v[:256] for k, v in keys.items()}
