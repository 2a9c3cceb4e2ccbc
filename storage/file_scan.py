"""Looking at stored files the way a local tier checks them: which names are a store's
temp files, hashing, parsing. Blocking functions for a worker thread; no index access.

A temp file (hidden, or ending `.part`) is never an object: a store in progress writes
one beside its destination.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import attrs
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError

from .files import TEMP_SUFFIX

HASH_CHUNK = 1024 * 1024
UNDEFINED_LENGTH = 0xFFFFFFFF


def is_temp_name(name: str) -> bool:
    """A store's temp file (`.<sop>.dcm.<hex>.part`), or anything hidden."""
    return name.startswith(".") or name.endswith(TEMP_SUFFIX)


@attrs.frozen
class Digest:
    size: int
    sha256: str


def digest(path: Path) -> Digest:
    """Size and SHA-256 of a file, read in chunks (FileNotFoundError if it is gone)."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as file:
        while chunk := file.read(HASH_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return Digest(size=size, sha256=hasher.hexdigest())


def structure_problem(path: Path, expected: dict[str, str]) -> str | None:
    """Parse the whole file, every value included; None if it is sound and its UIDs are
    the `expected` ones (keyword -> value, e.g. {"SOPInstanceUID": ...}), else what is wrong."""
    try:
        dataset = pydicom.dcmread(path)
        # pydicom reads a value cut short by the end of the file without complaint:
        # compare what each top-level element got with the length its header declares.
        for raw in list(dataset._dict.values()):  # noqa: SLF001 - the raw elements, before decoding
            if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes) and raw.length != UNDEFINED_LENGTH:
                if len(raw.value) != raw.length:
                    return f"truncated: {raw.tag} declares {raw.length} bytes, the file holds {len(raw.value)}"
        for element in dataset.iterall():
            element.value  # noqa: B018 - decoding every value is the check
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return f"cannot be parsed: {type(error).__name__}: {error}"
    if "TransferSyntaxUID" not in dataset.file_meta:
        return "no transfer syntax in its file meta information"
    for keyword, value in expected.items():
        found = str(dataset.get(keyword, "") or "")
        if found != value:
            return f"{keyword} is {found!r}, the index says {value!r}"
    return None
