"""The security database `<data>/security.sqlite`: users (name, role, scrypt hash) and
AE rules. Plain functions of a sqlite3 connection; the security actor owns the file
while a node runs, the CLI changes it while none does (under the data directory lock).
"""

from __future__ import annotations

import sqlite3
import time

import attrs

from .access import AERule, hash_password, hosts_error, password_error, role_error, username_error

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    changed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ae_rules (
    ae_title TEXT PRIMARY KEY,
    allow INTEGER NOT NULL,
    hosts TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL DEFAULT '',
    changed_at REAL NOT NULL
);
"""


class SecurityInputError(ValueError):
    """A user or rule that cannot be stored (bad name, unknown role, short password)."""


@attrs.frozen(kw_only=True)
class UserRecord:
    username: str
    role: str
    password_hash: str


def open_security_db(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.executescript(SCHEMA)
    return connection


def _check(*errors: str | None) -> None:
    for error in errors:
        if error is not None:
            raise SecurityInputError(error)


def add_user(db: sqlite3.Connection, username: str, role: str, password: str, *, replace: bool = False) -> UserRecord:
    _check(username_error(username), role_error(role), password_error(password))
    record = UserRecord(username=username, role=role, password_hash=hash_password(password))
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    try:
        db.execute(
            f"{verb} INTO users (username, role, password_hash, changed_at) VALUES (?, ?, ?, ?)",
            (username, role, record.password_hash, time.time()),
        )
    except sqlite3.IntegrityError:
        raise SecurityInputError(f"user {username!r} exists already") from None
    return record


def set_password(db: sqlite3.Connection, username: str, password: str) -> None:
    _check(password_error(password))
    changed = db.execute(
        "UPDATE users SET password_hash = ?, changed_at = ? WHERE username = ?", (hash_password(password), time.time(), username)
    ).rowcount
    if not changed:
        raise SecurityInputError(f"no user {username!r}")


def set_role(db: sqlite3.Connection, username: str, role: str) -> None:
    _check(role_error(role))
    if not db.execute("UPDATE users SET role = ?, changed_at = ? WHERE username = ?", (role, time.time(), username)).rowcount:
        raise SecurityInputError(f"no user {username!r}")


def remove_user(db: sqlite3.Connection, username: str) -> bool:
    return db.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount > 0


def list_users(db: sqlite3.Connection) -> list[UserRecord]:
    rows = db.execute("SELECT username, role, password_hash FROM users ORDER BY username").fetchall()
    return [UserRecord(username=u, role=r, password_hash=h) for u, r, h in rows]


def put_ae_rule(db: sqlite3.Connection, rule: AERule) -> None:
    _check(hosts_error(rule.hosts), role_error(rule.role) if rule.role else None)
    db.execute(
        "INSERT OR REPLACE INTO ae_rules (ae_title, allow, hosts, role, changed_at) VALUES (?, ?, ?, ?, ?)",
        (rule.ae_title, int(rule.allow), ",".join(rule.hosts), rule.role, time.time()),
    )


def remove_ae_rule(db: sqlite3.Connection, ae_title: str) -> bool:
    return db.execute("DELETE FROM ae_rules WHERE ae_title = ?", (ae_title,)).rowcount > 0


def list_ae_rules(db: sqlite3.Connection) -> list[AERule]:
    rows = db.execute("SELECT ae_title, allow, hosts, role FROM ae_rules ORDER BY ae_title").fetchall()
    return [AERule(ae_title=a, allow=bool(allow), hosts=tuple(filter(None, hosts.split(","))), role=role) for a, allow, hosts, role in rows]
