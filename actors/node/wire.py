"""How the node's DICOM values travel in messages and traces (the runtime's codec knows
no DICOM; importing this module teaches it):

- a pydicom Dataset in the DICOM JSON model (PS3.18 F.2), binary values inline as
  base64, so a trace stays readable and rebuilds an equal Dataset;
- a DIMSE command and an A-ASSOCIATE-RQ as their encoded bytes (base64), so what a trace
  shows is exactly what came over the wire;
- a received dataset as a description: the bytes of an identifier, what became of a
  C-STORE's (size, temp file, refusal). A replay gets a `RecordedDataset` back: enough
  for the association's own decisions, never the data of an image.
"""

import base64
from typing import Any

import attrs
from pydicom import Dataset

from ...client.link import DatasetSink, MemorySink
from ...protocol.commands import DimseMessage, decode
from ...protocol.decoder import decode_pdus
from ...protocol.pdu import AAssociateRQ
from ...storage.object_writer import ObjectWriter
from ..runtime.codec import converter

_INLINE_EVERYTHING = 2**62  # large enough that no value is moved out to a bulk data URI
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


def _dataset_to_json(dataset: Dataset) -> dict[str, Any]:
    return dataset.to_json_dict(bulk_data_threshold=_INLINE_EVERYTHING)


def _dataset_from_json(value: dict[str, Any], _: type) -> Dataset:
    dataset = Dataset.from_json(value)
    _restore_empty_binary(dataset)
    return dataset


def _restore_empty_binary(dataset: Dataset) -> None:
    """The JSON model has no value for an empty binary element; a file read has b""."""
    for element in dataset:
        if element.VR in _BINARY_VRS and element.value is None:
            element.value = b""
        elif element.VR == "SQ":
            for item in element.value:
                _restore_empty_binary(item)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _associate_rq(value: str, _: type) -> AAssociateRQ:
    (pdu,) = decode_pdus(base64.b64decode(value))
    assert isinstance(pdu, AAssociateRQ)
    return pdu


@attrs.frozen
class RecordedDataset:
    """A received dataset as a trace describes it (see the module docstring)."""

    description: dict[str, Any]

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.description.get("memory", ""))

    async def write(self, data: memoryview) -> None:
        raise RuntimeError("a recorded dataset takes no more data")

    async def finish(self) -> None:
        pass

    async def discard(self) -> None:
        pass  # nothing of it exists here


def describe_dataset(sink: Any) -> dict[str, Any]:
    if isinstance(sink, RecordedDataset):
        return sink.description
    if isinstance(sink, MemorySink):
        return {"memory": _b64(sink.data)}
    describe = getattr(sink, "describe", None)
    return describe() if describe is not None else {"kind": type(sink).__name__}


converter.register_unstructure_hook(Dataset, _dataset_to_json)
converter.register_structure_hook(Dataset, _dataset_from_json)
converter.register_unstructure_hook_func(lambda cls: isinstance(cls, type) and issubclass(cls, DimseMessage), lambda m: _b64(m.encode()))
converter.register_structure_hook_func(
    lambda cls: isinstance(cls, type) and issubclass(cls, DimseMessage), lambda value, _: decode(base64.b64decode(value))
)
converter.register_unstructure_hook(AAssociateRQ, lambda rq: _b64(rq.encode()))
converter.register_structure_hook(AAssociateRQ, _associate_rq)
converter.register_unstructure_hook_func(
    lambda cls: cls in (MemorySink, RecordedDataset) or hasattr(cls, "describe"), describe_dataset
)
converter.register_structure_hook(DatasetSink, lambda value, _: RecordedDataset(value))
# A hot tier's writer in a trace (tiers' OpenWriter/Place) is its description too.
converter.register_structure_hook(ObjectWriter, lambda value, _: RecordedDataset(value))
