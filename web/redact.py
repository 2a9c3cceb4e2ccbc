"""The configuration as the admin API shows it: every value, secrets replaced.

A secret is a field its class keeps out of repr (attrs `repr=False`: the S3 secret key,
the Azure connection string) or one whose name says so; both rules, so that a secret
added later without `repr=False` is still caught by its name."""

from __future__ import annotations

import re
from typing import Any

import attrs

HIDDEN = "***"
_SECRET_NAME = re.compile(r"secret|password|token|connection_string|credential|access_key", re.IGNORECASE)


def redacted(value: Any) -> Any:
    if attrs.has(type(value)):
        shown = {}
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            secret = field.repr is False or _SECRET_NAME.search(field.name) is not None
            shown[field.name] = HIDDEN if secret and item not in (None, "") else redacted(item)
        return shown
    if isinstance(value, (list, tuple)):
        return [redacted(item) for item in value]
    if isinstance(value, dict):
        return {str(k): HIDDEN if _SECRET_NAME.search(str(k)) and v not in (None, "") else redacted(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
