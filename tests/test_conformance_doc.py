"""docs/conformance.md: its generated tables are what the code's catalogs say today, every
block the script makes is in it, and the README links to it."""

import importlib.util
from pathlib import Path

import pytest

from triopacs.protocol.catalog import storage_sop_classes, transfer_syntaxes

ROOT = Path(__file__).resolve().parents[1]
STATEMENT = ROOT / "docs" / "conformance.md"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("make_conformance_tables", ROOT / "docs" / "make_conformance_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_tables_are_in_step_with_the_code(script):
    committed = STATEMENT.read_text()
    assert committed == script.render(committed), "docs/conformance.md is stale: run python docs/make_conformance_tables.py"


def test_every_table_is_there_once(script):
    assert sorted(script.blocks_in(STATEMENT.read_text())) == sorted(script.BLOCKS)


def test_the_tables_name_every_sop_class_and_transfer_syntax_the_node_accepts():
    text = STATEMENT.read_text()
    missing = [uid for uid in (*storage_sop_classes(), *transfer_syntaxes()) if f"| `{uid}` |" not in text]
    assert missing == []


def test_a_stale_table_is_caught(script):
    committed = STATEMENT.read_text()
    stale = committed.replace("| `1.2.840.10008.1.2.5` |", "| `1.2.840.10008.1.2.5.9` |")
    assert stale != committed and script.render(stale) == committed


def test_the_readme_links_the_statement():
    assert "(docs/conformance.md)" in (ROOT / "README.md").read_text()
