"""One route of the admin API as data: what the router, the OpenAPI document and the
tests that exercise every documented route all read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class Parameter:
    name: str
    where: str  # path or query
    description: str
    kind: Any = str
    required: bool = False


@attrs.frozen(kw_only=True)
class Endpoint:
    method: str
    path: str  # OpenAPI form: /api/v1/studies/{uid}
    name: str  # the operationId
    summary: str
    tag: str
    handler: Callable[..., Awaitable[Any]]
    response: Any = None  # an attrs class (JSON), or None with media_type for text
    answers: str = "the answer"
    status: int = 200
    media_type: str = "application/json"
    parameters: tuple[Parameter, ...] = ()
    errors: tuple[tuple[int, str], ...] = ()
    # What a caller's role must allow with [access] on (storage/access.py); None: a
    # probe, open while [access] open_probes.
    permission: str | None = "system"
