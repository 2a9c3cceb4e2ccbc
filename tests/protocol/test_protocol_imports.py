"""protocol/ is sans-IO: no I/O, clock or concurrency modules, nothing from the rest of triopacs."""

import ast
from pathlib import Path

import pytest

PROTOCOL = Path(__file__).parents[2] / "protocol"
FORBIDDEN_MODULES = {"trio", "socket", "threading", "time", "asyncio", "selectors", "ssl"}
TRIOPACS_LAYERS_ABOVE = {"actors", "storage", "workflow", "web", "supervisor", "cli", "config"}


def forbidden_imports(source: str) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [node.module or ""]
            elif node.level == 1:
                continue  # a sibling inside protocol/
            else:
                # from .. (the triopacs package) or further up: outside protocol/
                names = ["triopacs." + (node.module or "")]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in FORBIDDEN_MODULES:
                problems.append(f"line {node.lineno}: imports {name}")
            elif top == "triopacs" and name.split(".")[1:2] != ["protocol"]:
                problems.append(f"line {node.lineno}: imports {name} from outside protocol/")
    return problems


@pytest.mark.parametrize("path", sorted(PROTOCOL.glob("*.py")), ids=lambda p: p.name)
def test_protocol_module_imports_nothing_forbidden(path: Path) -> None:
    assert forbidden_imports(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "import trio",
        "import time",
        "from socket import socket",
        "import asyncio.tasks",
        "from ..actors import mailbox",
        "from .. import storage",
        "import triopacs.web",
        "from triopacs.storage.files import x",
        "def f():\n    import threading",
    ],
)
def test_the_checker_catches(source: str) -> None:
    assert forbidden_imports(source)


@pytest.mark.parametrize("source", ["import struct", "from .pdu import PDataTF", "import attrs", "from triopacs.protocol import pdu"])
def test_the_checker_allows(source: str) -> None:
    assert forbidden_imports(source) == []


def test_all_protocol_modules_were_checked() -> None:
    assert {"pdu.py", "decoder.py", "machine.py", "association.py", "negotiation.py"} <= {
        p.name for p in PROTOCOL.glob("*.py")
    }
