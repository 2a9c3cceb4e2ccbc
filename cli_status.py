"""`triopacs status`: what /health says, for a node on this machine (its [http] address
from the same configuration `serve` reads, or --url)."""

import argparse
import json
import urllib.error
import urllib.request
from pathlib import Path

from .config import load_config

EXIT_UNHEALTHY = 1
TIMEOUT = 10.0


def add_status_command(commands) -> None:
    status = commands.add_parser("status", help="show a running node's health (its /health)")
    status.add_argument("--config", type=Path, help="the node's TOML configuration (for its [http] address)")
    status.add_argument("--url", help="the node's HTTP base URL (default: from the configuration)")
    status.add_argument("--json", action="store_true", help="print /health's JSON as it is")


def status(args: argparse.Namespace) -> int:
    if args.url:
        base = args.url.rstrip("/")
    else:
        http = load_config(args.config).http
        host = "127.0.0.1" if http.bind in ("0.0.0.0", "") else http.bind
        base = f"http://{host}:{http.port}"
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=TIMEOUT) as response:
            body = response.read()
    except urllib.error.HTTPError as error:  # 503: degraded, with the same body
        body = error.read()
    except (urllib.error.URLError, OSError) as error:
        print(f"triopacs status: no node answers at {base}: {getattr(error, 'reason', error)}")
        return EXIT_UNHEALTHY
    health = json.loads(body)
    if args.json:
        print(json.dumps(health, indent=2))
    else:
        print(f"{health['status']} ({health['phase']}) at {base}")
        for component in health["components"]:
            print(f"  {component['name']:<16} {component['status']:<5} {component['detail']}")
    return 0 if health["status"] == "ok" else EXIT_UNHEALTHY


STATUS_COMMANDS = {"status": status}
