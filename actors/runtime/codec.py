"""How messages become JSON and back.

A message is written as `{"type": tag, "payload": {...}}` with cattrs. Two value kinds
need a rule of their own:
- bytes travel as base64 text;
- a pydicom Dataset travels in the DICOM JSON model (PS3.18 F.2), binary values inline
  as base64, so a trace stays readable and rebuilds an equal Dataset.
Datetimes travel as ISO 8601 text with their offset, paths as strings, enums by value,
tuples as lists (cattrs' defaults).
"""

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import cattrs
from pydicom import Dataset

from .messages import message_type, tag_of

converter = cattrs.Converter()

converter.register_unstructure_hook(bytes, lambda value: base64.b64encode(value).decode("ascii"))
converter.register_structure_hook(bytes, lambda value, _: base64.b64decode(value))
converter.register_unstructure_hook(Path, str)
converter.register_structure_hook(Path, lambda value, _: Path(value))
converter.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
converter.register_structure_hook(
    dt.datetime, lambda value, _: value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
)

# Large enough that no value is ever moved out to a bulk data URI.
_INLINE_EVERYTHING = 2**62


def _dataset_to_json(dataset: Dataset) -> dict[str, Any]:
    return dataset.to_json_dict(bulk_data_threshold=_INLINE_EVERYTHING)


_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


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


converter.register_unstructure_hook(Dataset, _dataset_to_json)
converter.register_structure_hook(Dataset, _dataset_from_json)


def to_wire(message: object) -> dict[str, Any]:
    """A registered message as a JSON-ready dict."""
    return {"type": tag_of(message), "payload": converter.unstructure(message)}


def from_wire(wire: dict[str, Any]) -> Any:
    return converter.structure(wire["payload"], message_type(wire["type"]))


def dumps(message: object) -> str:
    return json.dumps(to_wire(message), separators=(",", ":"), sort_keys=True)


def loads(text: str) -> Any:
    return from_wire(json.loads(text))
