"""How messages become JSON and back.

A message is written as `{"type": tag, "payload": {...}}` with cattrs. Bytes travel as
base64 text. Layers above teach `converter` their own value kinds (the node's DICOM
values: actors/node/wire.py). Datetimes travel as ISO 8601 text with their offset,
paths as strings, enums by value, tuples as lists (cattrs' defaults).
"""

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import cattrs

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


def to_wire(message: object) -> dict[str, Any]:
    """A registered message as a JSON-ready dict."""
    return {"type": tag_of(message), "payload": converter.unstructure(message)}


def from_wire(wire: dict[str, Any]) -> Any:
    return converter.structure(wire["payload"], message_type(wire["type"]))


def dumps(message: object) -> str:
    return json.dumps(to_wire(message), separators=(",", ":"), sort_keys=True)


def loads(text: str) -> Any:
    return from_wire(json.loads(text))
