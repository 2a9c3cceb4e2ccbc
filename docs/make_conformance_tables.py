"""Write the generated tables of docs/conformance.md from the code's own catalogs.

    python docs/make_conformance_tables.py          # regenerate the tables in place
    python docs/make_conformance_tables.py --check  # exit 1 if the committed file is stale

The statement's prose is written by hand; the tables between its
`<!-- generated:NAME begin ... -->` and `<!-- generated:NAME end -->` markers come from
here: SOP classes (protocol/catalog.py), transfer syntaxes and what a C-GET does with each
(catalog, protocol/sending_syntaxes.py, pydicom's decoders), query keys and matching
(storage/query.py, storage/levels.py, storage/matching.py), association settings
(config.py). tests/test_conformance_doc.py checks that the committed file is what this
script makes of it.
"""

import re
import sys
from collections.abc import Callable
from pathlib import Path

import attrs
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from triopacs.client.contexts import COMMON_STORAGE_CLASSES
from triopacs.config import NetworkSettings, QuerySettings
from triopacs.protocol.catalog import (
    EXPLICIT_VR_BIG_ENDIAN,
    FIND_MODELS,
    GET_MODELS,
    MODALITY_PERFORMED_PROCEDURE_STEP,
    MODALITY_WORKLIST_FIND,
    MOVE_MODELS,
    STORAGE_COMMITMENT_PUSH_MODEL,
    VERIFICATION,
    name_of,
    storage_sop_classes,
    transfer_syntaxes,
)
from triopacs.protocol.sending_syntaxes import WRITABLE
from triopacs.storage.levels import COMPUTED_KEYS, key_level
from triopacs.storage.matching import NUMERIC_VRS, SINGLE_VALUE_VRS, UNMATCHABLE_VRS, WILDCARD_VRS
from triopacs.storage.query import COLUMNS

OUTPUT = Path(__file__).with_name("conformance.md")
_BLOCK = re.compile(r"(<!-- generated:(?P<name>[\w-]+) begin[^>]*-->\n)(?P<body>.*?)(<!-- generated:(?P=name) end -->)", re.S)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _sop(uid: str) -> list[str]:
    return [name_of(uid), f"`{uid}`"]


def overview() -> str:
    rows = [[*_sop(VERIFICATION), "yes", "yes"]]
    rows.append([f"Storage: {len(storage_sop_classes())} SOP classes (4.2.1.1)", "", "yes (C-MOVE/C-GET sub-operations, `triopacs store`)", "yes"])
    for uid in (*FIND_MODELS, *MOVE_MODELS, *GET_MODELS):
        rows.append([*_sop(uid), "yes (`triopacs find/move/get`)", "yes"])
    rows.append([*_sop(MODALITY_WORKLIST_FIND), "library (`find_worklist`)", "yes (docs/dimse-n.md)"])
    rows.append([*_sop(MODALITY_PERFORMED_PROCEDURE_STEP), "library (`n_create`, `n_set`)", "yes: N-CREATE, N-SET"])
    rows.append([*_sop(STORAGE_COMMITMENT_PUSH_MODEL), "library (`request_commitment`)", "yes: N-ACTION, N-EVENT-REPORT"])
    return _table(["SOP class", "UID", "SCU", "SCP"], rows)


def storage_classes() -> str:
    rows = [[*_sop(uid), "yes" if uid in COMMON_STORAGE_CLASSES else ""] for uid in storage_sop_classes()]
    return _table(["SOP class", "UID", "proposed by `triopacs get`"], rows)


def _as_cget_sender(uid: str) -> str:
    if uid in WRITABLE:
        return "as stored; anything held is converted into it when the requestor takes nothing better"
    if uid == EXPLICIT_VR_BIG_ENDIAN:
        return "as stored; never written: converted (byte order swapped) into a little endian syntax"
    try:
        get_decoder(UID(uid))
    except NotImplementedError:
        return "as stored only"
    return "as stored; decompressed into a little endian syntax for a requestor that does not take it (`codecs` extra)"


def syntaxes() -> str:
    rows = [[name_of(uid), f"`{uid}`", _as_cget_sender(uid)] for uid in transfer_syntaxes()]
    return _table(["transfer syntax (in the node's order of preference)", "UID", "sent on a C-GET"], rows)


def _keyword(tag: int) -> str:
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def query_keys() -> str:
    rows = []
    for tag in COLUMNS:
        computed = "computed from the index; matched and returned" if tag in COMPUTED_KEYS else "indexed"
        patient_root, study_root = key_level(tag, study_root=False), key_level(tag, study_root=True)
        levels = patient_root.name if patient_root == study_root else f"{patient_root.name} (Study Root: {study_root.name})"
        rows.append([_keyword(tag), f"`{tag >> 16:04X},{tag & 0xFFFF:04X}`", dictionary_VR(tag), levels, computed])
    for tag, level in COMPUTED_KEYS.items():
        if tag not in COLUMNS:
            rows.append([_keyword(tag), f"`{tag >> 16:04X},{tag & 0xFFFF:04X}`", dictionary_VR(tag), level.name, "computed, return key only"])
    return _table(["key", "tag", "VR", "level", "how"], rows)


_VRS = sorted({"AE", "AS", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC",
               "UI", "UL", "UR", "US", "UT", "UV", *UNMATCHABLE_VRS})


def matching_by_vr() -> str:
    rows = []
    for vr in _VRS:
        if vr in UNMATCHABLE_VRS:
            rows.append([vr, "universal and empty-value matching only; any other value is refused (A900)"])
            continue
        kinds = ["universal", "empty value (`\"\"`)"]
        if vr == "SQ":
            kinds.append("sequence matching (one item of keys, any stored item)")
        elif vr == "DA":
            kinds += ["single value", "range", "list"]
        elif vr in ("TM", "DT"):
            kinds += ["single value (the moment written)", "range (moments, inclusive)", "list"]
        elif vr == "UI":
            kinds += ["single value", "list of UIDs"]
        elif vr in NUMERIC_VRS:
            kinds += ["single value (as a number)", "list"]
        else:
            kinds.append("single value" + (", case-insensitive" if vr == "PN" else ""))
            if vr in WILDCARD_VRS:
                kinds.append("wild card `*` `?`")
            if vr not in SINGLE_VALUE_VRS:
                kinds.append("list")
        rows.append([vr, ", ".join(kinds)])
    return _table(["VR", "matching"], rows)


def _settings(section: str, cls: type) -> str:
    rows = [[f"`[{section}] {field.name}`", f"`{field.default!r}`", field.metadata["help"]] for field in attrs.fields(cls)]
    return _table(["setting", "default", "meaning"], rows)


BLOCKS: dict[str, Callable[[], str]] = {
    "overview": overview,
    "storage-sop-classes": storage_classes,
    "transfer-syntaxes": syntaxes,
    "query-keys": query_keys,
    "matching-by-vr": matching_by_vr,
    "network-settings": lambda: _settings("network", NetworkSettings),
    "query-settings": lambda: _settings("query", QuerySettings),
}


def render(text: str) -> str:
    """`text` with every generated block rebuilt; an unknown block name is an error."""

    def rebuild(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise KeyError(f"docs/conformance.md names a generated block {name!r} this script does not make")
        return f"{match[1]}{BLOCKS[name]()}\n{match[4]}"

    return _BLOCK.sub(rebuild, text)


def blocks_in(text: str) -> list[str]:
    return [match["name"] for match in _BLOCK.finditer(text)]


def main() -> int:
    committed = OUTPUT.read_text()
    fresh = render(committed)
    if "--check" in sys.argv[1:]:
        if fresh != committed:
            print(f"{OUTPUT} is stale: run python docs/make_conformance_tables.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
