"""Who may do what: roles and their permissions, password hashing, AE rules. Pure
functions and values; the database that keeps users and rules is security_db.py.

Permissions name operations, not DIMSE messages: `store` (C-STORE), `query` (C-FIND of
the query/retrieve models), `retrieve` (C-MOVE, C-GET), `delete` (removing studies
through the admin API), `worklist` (Modality Worklist C-FIND), `mpps` (N-CREATE/N-SET
of performed procedure steps), `commitment` (storage commitment), `system` (the node's
configuration, tasks, users and AE rules) and `audit` (reading the audit trail).
C-ECHO needs none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable

import attrs

PERMISSIONS = ("store", "query", "retrieve", "delete", "worklist", "mpps", "commitment", "system", "audit")

ROLES: dict[str, frozenset[str]] = {
    # Looks at images: finds and fetches them.
    "viewer": frozenset({"query", "retrieve"}),
    # Runs a modality: stores, takes the worklist, reports steps, asks for commitment.
    "technologist": frozenset({"store", "query", "retrieve", "worklist", "mpps", "commitment"}),
    # Reads studies and adds to them (reports, presentation states, key images).
    "radiologist": frozenset({"store", "query", "retrieve", "worklist", "commitment"}),
    "administrator": frozenset(PERMISSIONS),
}

# Every DICOM operation, for the flat calling_ae_titles allow-list and "security off".
ALL_DICOM = frozenset({"store", "query", "retrieve", "worklist", "mpps", "commitment"})


def role_error(role: str) -> str | None:
    return None if role in ROLES else f"unknown role {role!r}; roles are {', '.join(ROLES)}"


# --- passwords -------------------------------------------------------------------------------------

# scrypt with 16 MiB of memory per check (N=2^14, r=8): slow for a guesser, ~50 ms here.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # a passcode longer than this is refused before it is hashed


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """`scrypt$N$r$p$salt$hash` (salt and hash base64): the parameters travel with the
    hash, so that a stronger setting later still checks the old ones."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password.encode("utf-8"), salt, n, r, p)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password.encode("utf-8"), base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def password_error(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"a password may have at most {MAX_PASSWORD_LENGTH} characters"
    return None


def _scrypt(secret: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def username_error(username: str) -> str | None:
    if _USERNAME.fullmatch(username):
        return None
    return "a user name has 1 to 64 letters, digits, '.', '_', '@' or '-'"


# --- AE rules --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AERule:
    """What one calling AE title may do. `hosts`: addresses or networks (CIDR) it may
    call from (empty: any). `role`: what it may do without a user identity (empty: it
    must send one). `allow` false refuses the AE outright."""

    ae_title: str
    allow: bool = True
    hosts: tuple[str, ...] = ()
    role: str = ""

    def admits_host(self, host: str) -> bool:
        if not self.hosts:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(entry, strict=False) for entry in self.hosts)


def hosts_error(hosts: Iterable[str]) -> str | None:
    for entry in hosts:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f"{entry!r} is not an address or a network (10.0.0.0/8)"
    return None
