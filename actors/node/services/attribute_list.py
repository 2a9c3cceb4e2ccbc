"""The data set of an N-request (an Attribute List, a Modification List, Action
Information): decoding it, and turning it into the DICOM JSON the index keeps."""

from typing import TYPE_CHECKING

from pydicom import Dataset

from ....client.link import MemorySink
from ....protocol.datasets import UndecodableDataset, decode_dataset
from ....protocol.status import Status
from ....storage.dicom_json import JsonDataset, character_set_of, dataset_json, python_encodings
from .base import Session

if TYPE_CHECKING:
    from ..peer import PeerMessage


class BadAttributeList(Exception):
    """The request's data set cannot be used; the status and comment to answer."""

    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment[:64]


def read_attribute_list(session: Session, received: "PeerMessage") -> Dataset | None:
    """The request's data set, None when it has none."""
    sink = received.dataset
    if sink is None:
        return None
    if not isinstance(sink, MemorySink):  # no service here takes a data set elsewhere
        raise BadAttributeList(Status.PROCESSING_FAILURE, "the data set could not be kept")
    context = session.context(received.context_id)
    try:
        return decode_dataset(sink.data, context.transfer_syntax, max_depth=session.settings.max_sequence_depth)
    except UndecodableDataset as error:
        session.log.warning("undecodable data set", request=type(received.message).__name__, reason=str(error))
        raise BadAttributeList(Status.PROCESSING_FAILURE, "the data set cannot be decoded") from None


def attributes_of(dataset: Dataset | None) -> tuple[JsonDataset, str]:
    """(the data set as DICOM JSON, its Specific Character Set)."""
    if dataset is None:
        return {}, ""
    charset = character_set_of(dataset)
    try:
        encodings = python_encodings(charset)
    except (LookupError, ValueError):
        raise BadAttributeList(Status.INVALID_ATTRIBUTE_VALUE, f"unknown Specific Character Set {charset[:32]!r}") from None
    return dataset_json(dataset, encodings), charset
