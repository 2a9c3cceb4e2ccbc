"""Imports only point down the layers (docs/architecture.md, "Packages"); protocol/ does
no I/O; every module is checked, the package root and the command-line modules too."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Dotted prefixes (after "triopacs.") and their layer; the longest prefix decides. An
# import may point to its own layer or lower ones. The runtime and the client are side
# by side: neither may import the other, and neither knows the node.
LAYERS = {
    "version": 0,
    "protocol": 0,
    "storage": 1,
    "actors.runtime": 2,
    "client": 2,
    "actors": 3,  # the package itself only re-exports the runtime
    "actors.node": 3,
    "workflow": 4,
    "supervisor": 5,
    "worker": 5,
    "config": 5,
    "config_toml": 5,
    "log": 5,
    "cli": 6,
    "cli_scu": 6,
    "cli_store": 6,
    "cli_worklist": 6,
    "cli_nservices": 6,
    "cli_tiers": 6,
    "cli_prefetch": 6,
    "cli_status": 6,
    "cli_security": 6,
    "cli_audit": 6,
    "__main__": 6,
    "web": 6,
    "": 7,  # the package root: the embedding API, importing from anywhere below
}
SIDE_BY_SIDE = {("actors.runtime", "client"), ("client", "actors.runtime")}
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


def area_of(dotted: str) -> str | None:
    """The LAYERS key a triopacs module belongs to ("" for the package root)."""
    parts = dotted.split(".")
    if parts[0] != "triopacs":
        return None
    inner = parts[1:]
    for cut in range(len(inner), -1, -1):
        prefix = ".".join(inner[:cut])
        if prefix in LAYERS:
            return prefix
    raise AssertionError(f"{dotted} is in no layer: add it to LAYERS")


MODULES = list(package_modules())


def test_the_package_is_found():
    names = {str(m) for m in MODULES}
    assert {"supervisor.py", "cli.py", "config.py", "actors/runtime/mailbox.py"} <= names


def test_every_package_is_installed():
    """pyproject lists packages one by one: a folder missing there would be missing from
    a wheel while an editable install hides it."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(module_name(m)) for m in MODULES if m.name == "__init__.py"}
    assert found == listed


@pytest.mark.parametrize("relative", MODULES, ids=str)
def test_imports_point_down(relative):
    own = area_of(".".join(module_name(relative)))
    for line, target in imported_modules(relative):
        other = area_of(target)
        if other is None:
            continue
        assert LAYERS[other] <= LAYERS[own], f"{relative}:{line} imports {target} from a higher layer"
        assert (own, other) not in SIDE_BY_SIDE, f"{relative}:{line}: {own} must not import {other}"


@pytest.mark.parametrize("relative", [m for m in MODULES if m.parts[0] == "protocol"], ids=str)
def test_protocol_is_sans_io(relative):
    for line, target in imported_modules(relative):
        top = target.split(".")[0]
        assert top not in FORBIDDEN_IN_PROTOCOL, f"{relative}:{line} imports {target}"
        assert area_of(target) in (None, "protocol"), f"{relative}:{line} imports {target}"


# The storage tiers own their bytes (DESIGN.md; docs/storage-tiers.md): outside storage/
# and the tier actors, nothing of the node places, removes, walks or checks stored files
# itself - it asks a tier. (The client's own receive folder is not a tier.)
FILE_MODULES = {"triopacs.storage.files", "triopacs.storage.file_scan", "triopacs.storage.deletion.remove_empty_folders"}
NODE_AREAS = ("actors/node/", "workflow/", "supervisor.py", "cli.py", "cli_")


@pytest.mark.parametrize(
    "relative",
    [m for m in MODULES if str(m).startswith(NODE_AREAS) and m.parts[:3] != ("actors", "node", "tiers")],
    ids=str,
)
def test_only_the_tiers_touch_stored_files(relative):
    for line, target in imported_modules(relative):
        assert not any(target == name or target.startswith(name + ".") for name in FILE_MODULES), (
            f"{relative}:{line} imports {target}: ask the tier that owns the bytes"
        )
        assert "LocalStore" not in target, f"{relative}:{line} imports {target}: ask the tier that owns the bytes"
