"""Who is asking the admin API, and may they: HTTP basic or a bearer token checked by
the security actor (the users and roles of the DICOM side, storage/access.py), then
the endpoint's permission.

With [access] off everything is open, as before. With it on, every route needs a user
whose role has the route's permission; the probes (/live, /ready, /health, /metrics)
stay open while [access] open_probes is true, so that monitoring needs no password.
A bearer token comes from POST /api/v1/auth/token (basic credentials in, token out):
a script then sends one scrypt check, not one per request.
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request

from ..actors.node.security import SECURITY_PATH, AccessVerdict, Authenticate, CheckToken
from .problems import ApiProblem

# Longest Authorization header value looked at; a longer one is refused unread.
MAX_CREDENTIALS = 2048


class Unauthorized(ApiProblem):
    """401, answered with a WWW-Authenticate challenge."""

    def __init__(self, detail: str) -> None:
        super().__init__(401, "unauthorized", "credentials needed", detail)


class Guard:
    def __init__(self, admin, *, enabled: bool, open_probes: bool) -> None:
        self.admin = admin
        self.enabled = enabled
        self.open_probes = open_probes

    def is_open(self, permission: str | None) -> bool:
        """Routes anyone may call: all of them with [access] off; probes (permission None)
        while open_probes."""
        return not self.enabled or (permission is None and self.open_probes)

    async def check(self, request: Request, permission: str | None) -> AccessVerdict | None:
        """The caller's verdict (None: the route is open); raises 401 or 403."""
        if self.is_open(permission):
            return None
        verdict = await self.identify(request)
        needed = permission or "system"  # a closed probe needs what the system pages need
        if needed not in verdict.permissions:
            raise ApiProblem(403, "forbidden", "not allowed", f"user {verdict.username!r} ({verdict.role}) may not {needed}")
        return verdict

    async def identify(self, request: Request) -> AccessVerdict:
        header = request.headers.get("authorization", "")
        if not header:
            raise Unauthorized("send HTTP basic credentials or a bearer token")
        if len(header) > MAX_CREDENTIALS:
            raise Unauthorized("the Authorization header is too long")
        scheme, _, value = header.partition(" ")
        match scheme.lower():
            case "basic":
                username, password = basic_credentials(value)
                verdict = await self.admin.ask(SECURITY_PATH, Authenticate(username=username, password=password))
            case "bearer":
                verdict = await self.admin.ask(SECURITY_PATH, CheckToken(token=value.strip()))
            case _:
                raise Unauthorized(f"unknown authorization scheme {scheme[:20]!r}")
        if not verdict.allowed:
            raise Unauthorized("wrong credentials")
        return verdict


def basic_credentials(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed basic credentials") from None
    username, colon, password = decoded.partition(":")
    if not colon:
        raise Unauthorized("malformed basic credentials")
    return username, password
