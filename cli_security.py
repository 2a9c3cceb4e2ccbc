"""`triopacs user add|passwd|role|remove|list` and `triopacs ae allow|deny|remove|list`:
the users and AE rules of <data>/security.sqlite ([access], docs/security.md).

The security actor is the file's one writer: these commands run one of their own on the
data directory, under the node's data directory lock, so they refuse while a node serves
there (one line, exit 2); a running node takes the same changes through its admin API
(/api/users, /api/ae-rules) or its embedding API (`node.security.ask(AddUser(...))`).
`list` reads the file as a second reader.

A password comes from --password-stdin (one line), else TRIOPACS_PASSWORD, else a
prompt: never from the command line, where other users could read it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sqlite3
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from .config import Config, load_config

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
ROLE_NAMES = ("viewer", "technologist", "radiologist", "administrator")


def add_security_commands(commands) -> None:
    user = commands.add_parser("user", help="add, change, remove or list users ([access])")
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a user (node stopped)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLE_NAMES)
    passwd = actions.add_parser("passwd", help="set a user's password (node stopped)")
    passwd.add_argument("username")
    role = actions.add_parser("role", help="change a user's role (node stopped)")
    role.add_argument("username")
    role.add_argument("role", choices=ROLE_NAMES)
    remove = actions.add_parser("remove", help="remove a user (node stopped)")
    remove.add_argument("username")
    listing = actions.add_parser("list", help="list the users and their roles")
    for action in (add, passwd):
        action.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    for action in (add, passwd, role, remove, listing):
        action.add_argument("--config", type=Path, help="TOML configuration file")

    ae = commands.add_parser("ae", help="allow, deny or list calling AE titles ([access])")
    actions = ae.add_subparsers(dest="action", required=True, metavar="ACTION")
    allow = actions.add_parser("allow", help="let a calling AE title associate (node stopped)")
    allow.add_argument("ae_title")
    allow.add_argument(
        "--host", action="append", default=[], metavar="ADDRESS",
        help="only from this address or network, e.g. 10.1.2.0/24 (repeatable; default: any)",
    )
    allow.add_argument(
        "--role", default="", choices=("", *ROLE_NAMES),
        help="what it may do without a user identity (default: nothing; it must send one)",
    )
    deny = actions.add_parser("deny", help="refuse a calling AE title (node stopped)")
    deny.add_argument("ae_title")
    forget = actions.add_parser("remove", help="remove the rule of a calling AE title (node stopped)")
    forget.add_argument("ae_title")
    listing = actions.add_parser("list", help="list the AE rules")
    for action in (allow, deny, forget, listing):
        action.add_argument("--config", type=Path, help="TOML configuration file")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if os.environ.get("TRIOPACS_PASSWORD"):
        return os.environ["TRIOPACS_PASSWORD"]
    first = getpass.getpass(f"password for {args.username}: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the passwords differ")
    return first


@asynccontextmanager
async def own_security(config: Config):
    """The security actor alone on the data directory, under the node's lock."""
    from .actors import ActorSystem, RestartPolicy, open_supervisor
    from .actors.runtime.supervision import ActorSpec
    from .actors.node.security import SecurityActor
    from .storage.data_lock import DataDirectoryLock
    from .supervisor import security_database

    config.data_dir.mkdir(parents=True, exist_ok=True)
    with DataDirectoryLock(config.data_dir):
        system = ActorSystem()
        spec = ActorSpec(name="security", actor=SecurityActor, args={"database": security_database(config)})
        async with open_supervisor(system, "/cli", RestartPolicy(max_restarts=0), [spec]):
            yield system.lookup("/cli/security")


def _change(config: Config, message, done: str) -> int:
    async def main():
        async with own_security(config) as security:
            return await security.ask(message, timeout=None)

    trio.run(main)
    print(done)
    return EXIT_OK


def _read(config: Config, fn):
    """`fn(connection)` on the security database read-only ([] when there is none)."""
    from .supervisor import security_database

    database = Path(security_database(config))
    if not database.exists():
        return []
    connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return fn(connection)
    finally:
        connection.close()


def _user(config: Config, args: argparse.Namespace) -> int:
    from .actors.node.security import AddUser, RemoveUser, SetPassword
    from .actors.node.security import SetRole
    from .storage.security_db import list_users

    match args.action:
        case "list":
            print(f"{'user':<24} role")
            for user in _read(config, list_users):
                print(f"{user.username:<24} {user.role}")
            return EXIT_OK
        case "add":
            return _change(config, AddUser(username=args.username, role=args.role, password=_password(args)), f"added {args.username} ({args.role})")
        case "passwd":
            return _change(config, SetPassword(username=args.username, password=_password(args)), f"password of {args.username} changed")
        case "role":
            return _change(config, SetRole(username=args.username, role=args.role), f"{args.username} is now {args.role}")
        case "remove":
            return _change(config, RemoveUser(username=args.username), f"removed {args.username}")
    raise AssertionError(args.action)


def _ae(config: Config, args: argparse.Namespace) -> int:
    from .actors.node.security import PutAERule, RemoveAERule
    from .storage.access import AERule
    from .storage.security_db import list_ae_rules

    match args.action:
        case "list":
            print(f"{'calling AE':<18} {'rule':<6} {'role without identity':<22} hosts")
            for rule in _read(config, list_ae_rules):
                print(f"{rule.ae_title:<18} {'allow' if rule.allow else 'deny':<6} {rule.role or '-':<22} {', '.join(rule.hosts) or 'any'}")
            return EXIT_OK
        case "allow":
            rule = AERule(ae_title=args.ae_title, allow=True, hosts=tuple(args.host), role=args.role)
            return _change(config, PutAERule(rule=rule), f"allowed {args.ae_title}")
        case "deny":
            return _change(config, PutAERule(rule=AERule(ae_title=args.ae_title, allow=False)), f"denied {args.ae_title}")
        case "remove":
            return _change(config, RemoveAERule(ae_title=args.ae_title), f"removed the rule of {args.ae_title}")
    raise AssertionError(args.action)


def security_command(args: argparse.Namespace) -> int:
    from .actors.node.security import SecurityRefused
    from .actors.runtime.errors import first_of
    from .config import ae_title
    from .storage.data_lock import DataDirectoryInUse

    config = load_config(args.config)
    if getattr(args, "ae_title", None) is not None and ae_title(args.ae_title) is not None:
        print(f"triopacs ae: {args.ae_title!r}: {ae_title(args.ae_title)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return (_user if args.command == "user" else _ae)(config, args)
    except ValueError as error:  # the passwords typed differ
        print(f"triopacs {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BaseException as error:
        refused = first_of(error, SecurityRefused)
        if refused is not None:
            print(f"triopacs {args.command}: {refused}", file=sys.stderr)
            return EXIT_FAILURE
        in_use = first_of(error, DataDirectoryInUse)
        if in_use is None:
            raise
        print(f"triopacs {args.command}: {in_use}; stop it first, or change it through the running node's admin API", file=sys.stderr)
        return EXIT_USAGE


SECURITY_COMMANDS = {"user": security_command, "ae": security_command}
