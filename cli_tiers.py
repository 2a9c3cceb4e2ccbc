"""`triopacs tiers`, `triopacs migrate --now [--dry-run]` and `triopacs restore STUDY_UID`.

`tiers` reads the index as a second reader (WAL lets it beside a running node) for
per-tier instance counts and bytes, and runs each tier's start-up check for its health.
`migrate --now` runs one migration cycle in a node of its own on the data directory,
for when the node is stopped (one writer per database: while a node serves, trigger its
`builtin-migration` task through the scheduler instead). `restore` likewise runs a node
of its own: it fetches the study's archive package (workflow/archive.py) from the
`[archive] destination` tier, each file checked against the manifest, and stores the
files into that node over a loopback association, as any C-STORE arrives.
"""

import argparse
import sqlite3
import sys
import time
from pathlib import Path

import trio

from .config import Config, load_config


def add_tier_commands(commands) -> None:
    tiers = commands.add_parser("tiers", help="per storage tier: instances, bytes and health")
    tiers.add_argument("--config", type=Path, help="TOML configuration file")
    migrate = commands.add_parser("migrate", help="run one HSM migration cycle now (node stopped)")
    migrate.add_argument("--config", type=Path, help="TOML configuration file")
    migrate.add_argument("--now", action="store_true", required=True, help="run a cycle now")
    migrate.add_argument("--dry-run", action="store_true", help="only list what would move")
    restore = commands.add_parser("restore", help="bring an archived study back (node stopped)")
    restore.add_argument("--config", type=Path, help="TOML configuration file")
    restore.add_argument("study", metavar="STUDY_UID", help="Study Instance UID of the package")


def _own_node_config(config: Config) -> Config:
    """The configuration of a node run by a command: no scheduler (no other task runs),
    listening on a free loopback port."""
    import attrs

    return attrs.evolve(
        config,
        node=attrs.evolve(config.node, port=0, bind="127.0.0.1"),
        scheduler=attrs.evolve(config.scheduler, enabled=False),
    )


def _usage(config: Config) -> dict[str, tuple[int, int]]:
    database = config.data_dir / "index.sqlite"
    if not database.exists():
        return {}
    from .storage.hsm_db import tier_usage

    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return {u.tier: (u.instances, u.bytes) for u in tier_usage(db)}


def tiers(args: argparse.Namespace) -> int:
    from .actors import AsyncioPortal
    from .actors.node.tiers import check_tier
    from .supervisor import tier_definitions

    config = load_config(args.config)
    usage = _usage(config)

    async def health() -> dict[str, str]:
        found = {}
        async with AsyncioPortal() as portal:
            for definition in tier_definitions(config):
                try:
                    with trio.fail_after(60):
                        await check_tier(definition, portal)
                    found[definition.name] = "ok"
                except Exception as error:  # whatever it is, it is the tier's health
                    found[definition.name] = "FAILING: " + (str(error).strip().splitlines() or [type(error).__name__])[0]
        return found

    healths = trio.run(health)
    print(f"{'tier':<12} {'kind':<6} {'instances':>10} {'bytes':>16}  health")
    for definition in tier_definitions(config):
        count, size = usage.get(definition.name, (0, 0))
        print(f"{definition.name:<12} {definition.kind:<6} {count:>10} {size:>16}  {healths[definition.name]}")
    return 0 if all(h == "ok" for h in healths.values()) else 1


def migrate(args: argparse.Namespace) -> int:
    from .log import configure_logging
    from .supervisor import open_node
    from .workflow.migration import MigrationProgress, RunMigration

    config = _own_node_config(load_config(args.config))
    configure_logging("warning", "console")

    async def main():
        async with open_node(config) as node, trio.open_nursery() as nursery:
            with node.subscribe(MigrationProgress) as progress:
                started = time.perf_counter()
                nursery.start_soon(_show_progress, progress, started)
                report = await node.migration.ask(RunMigration(dry_run=args.dry_run), timeout=None)
                nursery.cancel_scope.cancel()
                while True:  # what came in after the last the task showed
                    try:
                        _show(progress.receive_nowait(), started)
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        return report

    report = trio.run(main)
    for uid, source, target in report.planned:
        print(f"would move {uid}: {source} -> {target}")
    for uid, why in report.failed:
        print(f"failed {uid}: {why}")
    print(report.summary())
    return 0 if report.failures == 0 else 1


async def _show_progress(events, started: float) -> None:
    async for event in events:
        _show(event, started)


def _show(event, started: float) -> None:
    """A cycle's progress on stderr: one self-rewriting line on a terminal, a line per
    batch otherwise."""
    done = event.migrated + event.skipped + event.failures
    rate = event.bytes / max(time.perf_counter() - started, 1e-9) / 1e6
    width = 30
    filled = width * done // max(event.chosen, 1)
    line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{event.chosen} instances  {event.bytes / 1e6:.1f} MB  {rate:.1f} MB/s"
    if event.failures:
        line += f"  {event.failures} failed"
    sys.stderr.write(f"\r{line} " if sys.stderr.isatty() else f"{line}\n")
    sys.stderr.flush()


def _show_fetched(done: int, total: int) -> None:
    sys.stderr.write(f"\rfetched {done}/{total} files of the package " if sys.stderr.isatty() else f"fetched {done}/{total}\n")
    if sys.stderr.isatty() and done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def restore(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from .cli_store import Progress
    from .client import connect
    from .client.contexts import storage_contexts_for
    from .log import configure_logging
    from .supervisor import open_node
    from .workflow.archive import restore_study

    config = _own_node_config(load_config(args.config))
    configure_logging("warning", "console")
    if not config.archive.destination:
        from .cli import UsageError

        raise UsageError("restore needs [archive] destination (the tier the packages are in)")

    async def main() -> int:
        staging = Path(tempfile.mkdtemp(prefix="restore-", dir=config.data_dir))
        try:
            async with open_node(config) as node:
                paths = await restore_study(
                    node.system.lookup, config.archive.destination, args.study, staging, on_fetched=_show_fetched
                )
                progress = Progress(len(paths))  # then each instance stored again, as `triopacs store` shows it
                stored = 0
                async with connect("127.0.0.1", node.address.port, called_ae_title=config.node.ae_title, contexts=storage_contexts_for(paths)) as association:
                    for path in paths:
                        result = await association.store(path)
                        stored += result.ok
                        progress.file_done(path, path.stat().st_size, None if result.ok else f"status 0x{result.status:04X}")
                progress.close()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        print(f"restored {stored} of {len(paths)} instances of study {args.study}")
        return 0 if stored == len(paths) else 1

    return trio.run(main)


TIER_COMMANDS = {"tiers": tiers, "migrate": migrate, "restore": restore}
