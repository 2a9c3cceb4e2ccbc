"""`triopacs worklist add FILE... | list | remove ID`: the node's Modality Worklist items.

`list` reads the index as a second reader (WAL lets it beside a running node). `add` and
`remove` change the index, which has one writer: they run the index actor of their own
on the data directory, under the node's data directory lock, so they refuse while a
node serves there (one line, exit 2) - add items to a running node through its
embedding API (`node.index.ask(AddWorklistItems(...))`).

An item file is a DICOM file or DICOM JSON (one object, or a list of them).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from .config import Config, load_config

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_worklist_commands(commands) -> None:
    worklist = commands.add_parser("worklist", help="add, list or remove Modality Worklist items")
    actions = worklist.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add items from DICOM or DICOM JSON files (node stopped)")
    add.add_argument("files", nargs="+", type=Path, metavar="FILE")
    listing = actions.add_parser("list", help="list the items")
    listing.add_argument("--all", action="store_true", help="expired items too")
    remove = actions.add_parser("remove", help="remove an item by its Scheduled Procedure Step ID (node stopped)")
    remove.add_argument("item_id", metavar="ID")
    for action in (add, listing, remove):
        action.add_argument("--config", type=Path, help="TOML configuration file")


class BadItemFile(ValueError):
    pass


def read_items(path: Path) -> list:
    """The worklist items in one file; BadItemFile says why there are none."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    from .storage.errors import StorageError
    from .storage.worklist import item_from_dataset, item_from_json

    try:
        if path.suffix.lower() == ".json":
            model = json.loads(path.read_text(encoding="utf-8"))
            return [item_from_json(entry) for entry in (model if isinstance(model, list) else [model])]
        return [item_from_dataset(dcmread(path))]
    except OSError as error:
        raise BadItemFile(f"{path}: {error.strerror or error}") from None
    except (ValueError, InvalidDicomError, StorageError) as error:  # JSON errors are ValueErrors
        raise BadItemFile(f"{path}: {error}") from None


@asynccontextmanager
async def own_index(config: Config):
    """The index actor alone on the data directory, under the node's lock."""
    from .actors import ActorSystem, RestartPolicy, open_supervisor
    from .storage.data_lock import DataDirectoryLock
    from .supervisor import index_spec

    config.data_dir.mkdir(parents=True, exist_ok=True)
    with DataDirectoryLock(config.data_dir):
        system = ActorSystem()
        async with open_supervisor(system, "/worklist", RestartPolicy(max_restarts=0), [index_spec(config)]):
            yield system.lookup("/worklist/index")


def _add(config: Config, items: list) -> int:
    from .actors.node.index_dimse_n import AddWorklistItems

    async def main():
        async with own_index(config) as index:
            return await index.ask(AddWorklistItems(items=tuple(items)), timeout=None)

    answer = trio.run(main)
    for added in answer.added:
        print(f"{'replaced' if added.replaced else 'added'} {added.item_id}")
    return EXIT_OK


def _remove(config: Config, item_id: str) -> int:
    from .actors.node.index_dimse_n import RemoveWorklistItem

    async def main():
        async with own_index(config) as index:
            return await index.ask(RemoveWorklistItem(item_id=item_id), timeout=None)

    if not trio.run(main).removed:
        print(f"triopacs worklist: no item {item_id}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"removed {item_id}")
    return EXIT_OK


def _list(config: Config, include_expired: bool) -> int:
    from .storage.worklist_db import list_items

    database = config.data_dir / "index.sqlite"
    entries = []
    if database.exists():
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
        try:
            entries = list_items(connection, time.time(), config.worklist.expire_after_hours * 3600.0,
                                 include_expired=include_expired)
        finally:
            connection.close()
    print(f"{'id':<16} {'status':<12} {'start':<14} {'modality':<8} {'station':<16} {'patient id':<16} patient name")
    for e in entries:
        status = e.status + (" (expired)" if e.expired else "")
        print(f"{e.item_id:<16} {status:<12} {e.start:<14} {e.modality:<8} {e.station_ae_title:<16} {e.patient_id:<16} {e.patient_name}")
    return EXIT_OK


def worklist(args: argparse.Namespace) -> int:
    from .actors.runtime.errors import first_of
    from .storage.data_lock import DataDirectoryInUse

    config = load_config(args.config)
    if args.action == "list":
        return _list(config, args.all)
    try:
        items = [item for path in args.files for item in read_items(path)] if args.action == "add" else []
    except BadItemFile as error:  # every file is read before anything is added
        print(f"triopacs worklist: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _add(config, items) if args.action == "add" else _remove(config, args.item_id)
    except BaseException as error:
        refused = first_of(error, DataDirectoryInUse)
        if refused is None:
            raise
    print(f"triopacs worklist: {refused}; stop it first, or add items through the running node", file=sys.stderr)
    return EXIT_USAGE
