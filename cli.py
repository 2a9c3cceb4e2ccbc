"""The `triopacs` command.

Exit status: 0 success, 1 failure at run time (including a replay mismatch), 2 bad usage
or configuration (one line on stderr saying which key is wrong and what it may be).
"""

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
import trio

from .version import __version__
from .cli_scu import SCU_COMMANDS, add_scu_commands
from .cli_nservices import NSERVICE_COMMANDS, add_nservice_commands
from .cli_worklist import add_worklist_commands, worklist
from .cli_prefetch import add_prefetch_commands, prefetch
from .cli_tiers import TIER_COMMANDS, add_tier_commands
from .cli_status import STATUS_COMMANDS, add_status_command
from .cli_security import SECURITY_COMMANDS, add_security_commands
from .cli_audit import AUDIT_COMMANDS, add_audit_commands
from .config import ConfigError, load_config
from .config_toml import default_toml
from .log import configure_logging
from .actors.runtime.errors import first_of
from .client.tls import TlsSetupError
from .storage.data_lock import DataDirectoryInUse

EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triopacs", description="A DICOM archive node on Trio.")
    parser.add_argument("--version", action="version", version=f"triopacs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the node until SIGINT/SIGTERM")
    serve.add_argument("--config", type=Path, help="TOML configuration file")
    serve.add_argument("--ae-title", help="our AE title")
    serve.add_argument("--port", type=int, help="DICOM port (0: pick a free one)")
    serve.add_argument("--bind", help="address to listen on")
    serve.add_argument("--data", help="data directory")
    serve.add_argument("--trace", help="record every message to this JSON-lines file")
    serve.add_argument(
        "--workers", type=int, metavar="N",
        help="association worker processes (default: [node] workers if set, else one per core; 0: none)",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error", "critical"])
    serve.add_argument("--log-format", choices=["auto", "console", "json"])
    serve.add_argument("--http-port", type=int, help="admin API port (0: pick a free one)")
    serve.add_argument("--events-port", type=int, help="event stream (WebSocket) port (0: pick a free one)")
    serve.add_argument("--no-http", action="store_true", help="no admin API, metrics, event stream or status page")
    add_status_command(commands)

    config = commands.add_parser("config", help="show or check configuration")
    config.add_argument("--print-default", action="store_true", help="print the complete default config as TOML")
    config.add_argument("--check", type=Path, metavar="FILE", help="load FILE (and TRIOPACS_* variables) and report")

    replay = commands.add_parser("replay", help="replay a recorded trace and compare behaviour")
    replay.add_argument("trace", type=Path, help="trace file written by serve --trace")
    replay.add_argument("--actor", action="append", dest="actors", metavar="PATH", help="replay only this actor (repeatable)")
    replay.add_argument(
        "--scratch", type=Path, metavar="DIR",
        help="make the copies of files and directories the actors use in DIR (new or empty) and keep them;"
        " default: a temporary directory, removed afterwards",
    )
    replay.add_argument(
        "--start-empty", action="store_true",
        help="start the actors on empty files and directories instead of copies of the live ones",
    )
    add_scu_commands(commands)
    add_nservice_commands(commands)
    add_worklist_commands(commands)
    add_prefetch_commands(commands)
    add_tier_commands(commands)
    add_security_commands(commands)
    add_audit_commands(commands)
    return parser


def _serve_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    node = {key: value for key, value in {
        "ae_title": args.ae_title, "port": args.port, "bind": args.bind, "data_dir": args.data, "workers": args.workers,
    }.items() if value is not None}
    overrides: dict[str, dict[str, Any]] = {"node": node}
    if args.trace is not None:
        overrides["trace"] = {"file": args.trace}
    http = {key: value for key, value in {"port": args.http_port, "events_port": args.events_port}.items() if value is not None}
    if args.no_http:
        http["enabled"] = False
    if http:
        overrides["http"] = http
    logs = {key: value for key, value in {"level": args.log_level, "format": args.log_format}.items() if value}
    if logs:
        overrides["log"] = logs
    return overrides


def _serve(args: argparse.Namespace) -> int:
    from .supervisor import Node, TierUnavailable
    from .web.node import run_node

    # A standalone node uses every core unless told otherwise; an embedded one stays in
    # its program's process (the setting's own default, 0).
    config = load_config(args.config, overrides=_serve_overrides(args), defaults={"node": {"workers": os.cpu_count() or 1}})
    configure_logging(config.log.level, config.log.format)
    log = structlog.get_logger()

    def announce(node: Node) -> None:
        print(f"ready {node.describe()}", flush=True)

    async def main() -> int:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for signum in signals:
                        log.info("stopping on signal", signal=signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(stop_on_signal)
                await run_node(config, on_ready=announce)
        return 0

    try:
        return trio.run(main)
    except BaseException as error:  # a refusal at start-up is one line, exit 2
        refused = first_of(error, TierUnavailable) or first_of(error, TlsSetupError)
        if refused is None:
            raise
        raise UsageError(str(refused)) from None


def _config(args: argparse.Namespace) -> int:
    if args.print_default:
        sys.stdout.write(default_toml())
        return 0
    if args.check is not None:
        config = load_config(args.check)
        print(f"ok: {args.check} is valid ({config.node.ae_title} on {config.node.bind}:{config.node.port})")
        return 0
    raise UsageError("config needs --print-default or --check FILE")


def _replay(args: argparse.Namespace) -> int:
    import trio.testing

    from .actors import ReplayError, replay

    configure_logging("warning", "console")
    if not args.trace.is_file():
        raise UsageError(f"no trace file at {args.trace}")

    async def main() -> int:
        try:
            result = await replay(args.trace, actors=args.actors, scratch=args.scratch, start_empty=args.start_empty)
        except ReplayError as error:
            raise UsageError(str(error)) from None
        print(result.report())
        return 0 if result.ok else EXIT_FAILURE

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


COMMANDS = {
    "serve": _serve, "config": _config, "replay": _replay, "worklist": worklist, "prefetch": prefetch,
    **SCU_COMMANDS, **NSERVICE_COMMANDS, **TIER_COMMANDS, **STATUS_COMMANDS, **SECURITY_COMMANDS, **AUDIT_COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, UsageError) as error:
        print(f"triopacs {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BaseException as error:  # a node of its own refused: another runs on the data
        refused = first_of(error, DataDirectoryInUse)
        if refused is None:
            raise
        print(f"triopacs {args.command}: {refused}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
