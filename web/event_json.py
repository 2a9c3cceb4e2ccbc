"""A runtime event as the live stream sends it: one JSON object with its type tag, the
time it was sent and its fields ({"type": "activity.instance-stored", "time": ...,
"payload": {...}})."""

from __future__ import annotations

import json
import re
import time

from ..actors import converter, is_message, tag_of


def event_type(event: object) -> str:
    if is_message(event):
        return tag_of(event)
    # A plain attrs event (TierHealthChanged): its module's area and its class name.
    area = type(event).__module__.rsplit(".", 2)[-2] if "." in type(event).__module__ else "node"
    words = re.sub(r"(?<!^)(?=[A-Z])", "-", type(event).__name__).lower()
    return f"{area}.{words}"


def event_json(event: object) -> str:
    return json.dumps(
        {"type": event_type(event), "time": time.time(), "payload": converter.unstructure(event)},
        separators=(",", ":"),
        default=str,
    )


def wanted(types: tuple[str, ...], tag: str) -> bool:
    """Whether a client asking for `types` (tags, or areas such as `activity`) wants `tag`;
    no types: everything."""
    return not types or any(tag == t or tag.startswith(t + ".") for t in types)
