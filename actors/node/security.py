"""/node/services/security: users, roles and AE rules - who may associate, and do what.

The only writer of `<data>/security.sqlite` while the node runs; it keeps the (small)
tables in memory and answers from there. Associations ask it `CheckAssociation` when
[access] is on; the admin API asks `Authenticate` (HTTP basic) and `CheckToken`.

Password checks are scrypt (storage/access.py), ~50 ms each on a thread. A modality
opens an association per study, so a passcode once checked is remembered for a few
minutes under a keyed hash of name and passcode (never the passcode itself); any change
to a user forgets it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path

import attrs

from ...protocol.codes import UserIdentityType
from ...storage.access import ALL_DICOM, ROLES, AERule, check_password
from ...storage import security_db
from ..runtime.actor import Actor
from ..runtime.database_thread import DatabaseThread
from ..runtime.errors import ReplyError
from ..runtime.messages import message
from ..runtime.resources import FileResource
from ..runtime.threads import run_sync_in_thread

SECURITY_PATH = "/node/services/security"
REMEMBER_CHECKED = 300.0  # seconds a checked passcode is remembered
TOKEN_LIFETIME = 8 * 3600.0

# A-ASSOCIATE-RJ reasons (service-user) for our refusals: PS3.8 9.3.4.
REJECT_NO_REASON = 1
REJECT_CALLING_AE = 3


@attrs.frozen(kw_only=True)
class AccessPolicy:
    """[access] as the security actor applies it."""

    enabled: bool = False
    unknown_ae: str = "reject"  # a calling AE with no rule: reject, or admit with a user identity ("identity")
    accept_username_only: bool = False  # a user identity without passcode (type 1) is trusted


@message("security.check-association")
class CheckAssociation:
    calling_ae_title: str
    host: str
    identity_type: int | None = None  # None: no user identity sub-item
    username: str = ""
    passcode: str = attrs.field(default="", repr=False)


@message("security.authenticate")
class Authenticate:
    username: str
    password: str = attrs.field(repr=False)


@message("security.issue-token")
class IssueToken:
    username: str
    password: str = attrs.field(repr=False)


@message("security.check-token")
class CheckToken:
    token: str = attrs.field(repr=False)


@message("security.verdict")
class AccessVerdict:
    allowed: bool
    permissions: tuple[str, ...] = ()  # sorted (a tuple: traces carry it as JSON)
    username: str = ""
    role: str = ""
    reason: str = ""  # why not (for the log and the audit trail)
    reject_reason: int = REJECT_NO_REASON  # the A-ASSOCIATE-RJ reason, when not allowed
    identity_accepted: bool = False  # a user identity was checked and good: answer it positively


@message("security.token")
class IssuedToken:
    token: str = attrs.field(repr=False)
    username: str
    expires_in: float


@message("security.add-user")
class AddUser:
    username: str
    role: str
    password: str = attrs.field(repr=False)
    replace: bool = False


@message("security.set-password")
class SetPassword:
    username: str
    password: str = attrs.field(repr=False)


@message("security.set-role")
class SetRole:
    username: str
    role: str


@message("security.remove-user")
class RemoveUser:
    username: str


@message("security.list-users")
class ListUsers:
    pass


@message("security.users")
class Users:
    entries: tuple[tuple[str, str], ...]  # (username, role)


@message("security.put-ae-rule")
class PutAERule:
    rule: AERule


@message("security.remove-ae-rule")
class RemoveAERule:
    ae_title: str


@message("security.list-ae-rules")
class ListAERules:
    pass


@message("security.ae-rules")
class AERules:
    rules: tuple[AERule, ...]


class SecurityRefused(ReplyError):
    """A change the security actor would not make (bad name, unknown role, ...)."""


def _refused(reason: str, code: int = REJECT_NO_REASON) -> AccessVerdict:
    return AccessVerdict(allowed=False, reason=reason, reject_reason=code)


class SecurityActor(Actor):
    accepts = (
        CheckAssociation, Authenticate, IssueToken, CheckToken,
        AddUser, SetPassword, SetRole, RemoveUser, ListUsers, PutAERule, RemoveAERule, ListAERules,
    )
    resources = {"database": FileResource(companions=("-wal", "-journal"))}

    def __init__(self, database: str, policy: AccessPolicy = AccessPolicy()) -> None:
        self.database = database
        self.policy = policy
        self._users: dict[str, security_db.UserRecord] = {}
        self._rules: dict[str, AERule] = {}
        self._remembered: dict[bytes, tuple[str, float]] = {}  # keyed hash -> (username, until)
        self._tokens: dict[bytes, tuple[str, float]] = {}  # sha256(token) -> (username, until)
        self._key = secrets.token_bytes(32)

    async def on_start(self) -> None:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        self.db = DatabaseThread(lambda: security_db.open_security_db(self.database), name="security")
        await self.db.start()
        await self._reload()

    async def on_stop(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            await db.aclose()

    async def _reload(self) -> None:
        users = await self.db.run(security_db.list_users)
        rules = await self.db.run(security_db.list_ae_rules)
        self._users = {u.username: u for u in users}
        self._rules = {r.ae_title: r for r in rules}
        self._remembered.clear()

    async def handle(self, message):
        match message:
            case CheckAssociation():
                return await self._check_association(message)
            case Authenticate(username=username, password=password):
                return await self._login(username, password)
            case IssueToken(username=username, password=password):
                verdict = await self._login(username, password)
                if not verdict.allowed:
                    raise SecurityRefused(verdict.reason)
                token = secrets.token_urlsafe(32)
                now = time.monotonic()
                # Expired tokens go when a new one is issued: the table stays as small as the live ones.
                self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
                self._tokens[hashlib.sha256(token.encode()).digest()] = (username, now + TOKEN_LIFETIME)
                return IssuedToken(token=token, username=username, expires_in=TOKEN_LIFETIME)
            case CheckToken(token=token):
                return self._check_token(token)
            case AddUser(username=username, role=role, password=password, replace=replace):
                await self._change(security_db.add_user, username, role, password, replace=replace)
            case SetPassword(username=username, password=password):
                await self._change(security_db.set_password, username, password)
            case SetRole(username=username, role=role):
                await self._change(security_db.set_role, username, role)
            case RemoveUser(username=username):
                if not await self._change(security_db.remove_user, username):
                    raise SecurityRefused(f"no user {username!r}")
                self._tokens = {k: v for k, v in self._tokens.items() if v[0] != username}
            case ListUsers():
                return Users(entries=tuple((u.username, u.role) for u in sorted(self._users.values(), key=lambda u: u.username)))
            case PutAERule(rule=rule):
                await self._change(security_db.put_ae_rule, rule)
            case RemoveAERule(ae_title=ae_title):
                if not await self._change(security_db.remove_ae_rule, ae_title):
                    raise SecurityRefused(f"no rule for calling AE {ae_title!r}")
            case ListAERules():
                return AERules(rules=tuple(sorted(self._rules.values(), key=lambda r: r.ae_title)))

    async def _change(self, fn, *args, **kwargs):
        try:
            result = await self.db.run(lambda db: fn(db, *args, **kwargs))
        except security_db.SecurityInputError as error:
            raise SecurityRefused(str(error)) from None
        await self._reload()
        return result

    # --- decisions -------------------------------------------------------------------------

    async def _check_association(self, request: CheckAssociation) -> AccessVerdict:
        if not self.policy.enabled:
            return AccessVerdict(allowed=True, permissions=tuple(sorted(ALL_DICOM)))
        title = request.calling_ae_title
        rule = self._rules.get(title)
        if rule is None and self.policy.unknown_ae != "identity":
            return _refused(f"calling AE {title!r} has no rule", REJECT_CALLING_AE)
        if rule is not None and not rule.allow:
            return _refused(f"calling AE {title!r} is denied", REJECT_CALLING_AE)
        if rule is not None and not rule.admits_host(request.host):
            return _refused(f"calling AE {title!r} may not call from {request.host}", REJECT_CALLING_AE)
        if request.identity_type is None:
            if rule is not None and rule.role:
                return AccessVerdict(allowed=True, permissions=tuple(sorted(ROLES[rule.role])), role=rule.role)
            return _refused(f"calling AE {title!r} must send a user identity")
        if request.identity_type == UserIdentityType.USERNAME_AND_PASSCODE:
            verdict = await self._login(request.username, request.passcode)
        elif request.identity_type == UserIdentityType.USERNAME and self.policy.accept_username_only:
            user = self._users.get(request.username)
            verdict = self._granted(user) if user is not None else _refused(f"no user {request.username!r}")
        else:
            verdict = _refused(f"user identity type {request.identity_type} is not accepted")
        return attrs.evolve(verdict, identity_accepted=verdict.allowed)

    async def _login(self, username: str, password: str) -> AccessVerdict:
        user = self._users.get(username)
        if user is None:
            # Spend the time a check would, so that a guesser cannot tell names apart.
            await run_sync_in_thread(check_password, password, _DUMMY_HASH)
            return _refused(f"no user {username!r}")
        key = hmac.new(self._key, f"{username}\0{password}".encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        remembered = self._remembered.get(key)
        now = time.monotonic()
        if remembered is not None and remembered[0] == username and remembered[1] > now:
            return self._granted(user)
        if not await run_sync_in_thread(check_password, password, user.password_hash):
            return _refused(f"wrong passcode for user {username!r}")
        if len(self._remembered) > 10_000:
            self._remembered.clear()
        self._remembered[key] = (username, now + REMEMBER_CHECKED)
        return self._granted(user)

    def _check_token(self, token: str) -> AccessVerdict:
        entry = self._tokens.get(hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest())
        if entry is None or entry[1] < time.monotonic():
            return _refused("unknown or expired token")
        user = self._users.get(entry[0])
        return self._granted(user) if user is not None else _refused("the token's user is gone")

    @staticmethod
    def _granted(user: security_db.UserRecord) -> AccessVerdict:
        return AccessVerdict(allowed=True, permissions=tuple(sorted(ROLES[user.role])), username=user.username, role=user.role)


_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
