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

from ..actors.node.audit import audit
from ..actors.node.security import SECURITY_PATH, AccessVerdict, Authenticate, CheckToken
from ..storage import audit_records
from .problems import ApiProblem

# Longest Authorization header value looked at; a longer one is refused unread.
MAX_CREDENTIALS = 2048


class Unauthorized(ApiProblem):
    """401, answered with a WWW-Authenticate challenge."""

    headers = {"WWW-Authenticate": 'Basic realm="triopacs", charset="UTF-8"'}

    def __init__(self, detail: str) -> None:
        super().__init__(401, "unauthorized", "credentials needed", detail)


class Guard:
    def __init__(self, admin, *, enabled: bool, open_probes: bool, audit_path: str | None = None) -> None:
        self.admin = admin
        self.enabled = enabled
        self.open_probes = open_probes
        self.audit_path = audit_path  # the audit actor, when [audit] is on

    async def record(self, request: Request, verdict: AccessVerdict | None, make) -> None:
        """Record an audit record made by `make(ae_title, peer)`, if a trail is kept."""
        if self.audit_path is None:
            return
        peer = audit_records.Peer(
            host=request.client.host if request.client else "", username=verdict.username if verdict is not None else "",
        )
        await audit(self.admin.ctx, make(self.admin.config.node.ae_title, peer), self.audit_path)

    async def guarded(self, request: Request, endpoint, handler, data: bool):
        """Run `handler` behind the check; record logins refused and, for `data` routes
        (those that read or change studies), the access and its status."""
        try:
            verdict = await self.check(request, endpoint.permission)
        except Unauthorized as refused:
            await self.record(request, None, lambda ae, peer: audit_records.web_login(ae, peer, ok=False, reason=refused.problem.detail))
            raise
        if not data:
            return await handler(request)
        status = 500
        try:
            response = await handler(request)
            status = response.status_code
            return response
        except ApiProblem as problem:
            status = problem.problem.status
            raise
        finally:
            await self.record(request, verdict, lambda ae, peer: audit_records.web_access(
                ae, peer, method=request.method, path=request.url.path, status=status,
                study_uid=request.path_params.get("uid") or request.path_params.get("study", ""),
            ))

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
