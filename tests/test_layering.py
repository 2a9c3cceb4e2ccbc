"""Imports only point down the layers of DESIGN.md section 1; protocol/ does no I/O."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS = {
    "protocol": 0,
    "storage": 1,
    "actors": 2,
    "workflow": 3,
    "supervisor": 4,
    "config": 4,
    "log": 4,
    "cli": 5,
    "web": 5,
}
FORBIDDEN_IN_PROTOCOL = {"trio", "socket", "threading", "time", "asyncio", "selectors", "ssl"}


def package_modules():
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in {"tests", "bench", "docs", ".venv", "build", "node_modules"} or relative.parts[0].startswith("."):
            continue
        yield relative


def module_name(relative: Path) -> list[str]:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ["triopacs", *parts]


def imported_modules(relative: Path):
    """Absolute names of everything a module imports, relative imports resolved."""
    name = module_name(relative)
    package = name if relative.name == "__init__.py" else name[:-1]
    tree = ast.parse((ROOT / relative).read_text(), str(relative))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            if not node.module or node.level:
                for alias in node.names:  # `from . import x` may name a module
                    yield node.lineno, f"{target}.{alias.name}"


def layer_of(dotted: str) -> int | None:
    parts = dotted.split(".")
    if parts[0] != "triopacs" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


MODULES = list(package_modules())


def test_the_package_is_found():
    names = {str(m) for m in MODULES}
    assert {"supervisor.py", "cli.py", "config.py", "actors/mailbox.py"} <= names


@pytest.mark.parametrize("relative", MODULES, ids=str)
def test_imports_point_down(relative):
    own = layer_of(".".join(module_name(relative)))
    if own is None:
        return  # the package root may re-export anything
    for line, target in imported_modules(relative):
        other = layer_of(target)
        assert other is None or other <= own, f"{relative}:{line} imports {target} from a higher layer"


@pytest.mark.parametrize("relative", [m for m in MODULES if m.parts[0] == "protocol"], ids=str)
def test_protocol_is_sans_io(relative):
    for line, target in imported_modules(relative):
        top = target.split(".")[0]
        assert top not in FORBIDDEN_IN_PROTOCOL, f"{relative}:{line} imports {target}"
        layer = layer_of(target)
        assert layer in (None, 0), f"{relative}:{line} imports {target}"
