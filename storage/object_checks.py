"""Is an object what the index says it is? The checks a tier runs on its own objects
for verification and storage commitment: present, its size and SHA-256, and (local
tiers) a complete parse whose UIDs are the indexed ones.

Blocking functions over a local tier's root, for its worker thread; an object store
answers from the size and checksum it keeps with each object (tiers/backends.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import attrs

from .attributes import InstanceRecord, extract_record
from .errors import UnsafePath
from .file_scan import digest, structure_problem
from .layout import confined

OK, MISSING, CORRUPT, STRUCTURE, UNREADABLE = "ok", "missing", "corrupt", "structure", "unreadable"


@attrs.frozen(kw_only=True)
class ExpectedObject:
    """An object and what it must hold. With `checksum` False only its presence is
    looked at; `uids` (keyword, value) asks for a full parse with those UIDs."""

    key: str
    size: int
    sha256: str
    checksum: bool = True
    uids: tuple[tuple[str, str], ...] = ()


@attrs.frozen(kw_only=True)
class ObjectCheck:
    key: str
    outcome: str  # OK, MISSING, CORRUPT, STRUCTURE, UNREADABLE
    detail: str = ""


def check_local(root: Path, expected: Sequence[ExpectedObject]) -> list[ObjectCheck]:
    return [_check_one(root, item) for item in expected]


def _check_one(root: Path, item: ExpectedObject) -> ObjectCheck:
    try:
        path = local_path(root, item.key)
        if item.checksum:
            found = digest(path)
            problem = mismatch(found.size, found.sha256, item)
            if problem:
                return ObjectCheck(key=item.key, outcome=CORRUPT, detail=problem)
        elif not path.is_file():
            raise FileNotFoundError(path)
        if item.uids:
            problem = structure_problem(path, dict(item.uids))
            if problem is not None:
                return ObjectCheck(key=item.key, outcome=STRUCTURE, detail=problem)
        return ObjectCheck(key=item.key, outcome=OK)
    except FileNotFoundError:
        return ObjectCheck(key=item.key, outcome=MISSING)
    except (OSError, UnsafePath) as error:
        return ObjectCheck(key=item.key, outcome=UNREADABLE, detail=f"{type(error).__name__}: {error}")


def mismatch(size: int, sha256: str | None, item: ExpectedObject) -> str:
    """What differs between an object found and what was expected ("" when nothing)."""
    if (size, sha256) == (item.size, item.sha256):
        return ""
    return f"size {size}, sha256 {sha256}; the index has size {item.size}, sha256 {item.sha256}"


def read_record(root: Path, key: str) -> InstanceRecord:
    """The record to index a local object under, as it lies (StorageError if it is not a
    DICOM file we can index, FileNotFoundError if it is gone)."""
    path = local_path(root, key)
    found = digest(path)
    return extract_record(path, file_size=found.size, sha256=found.sha256, file_path=key)


def local_path(root: Path, key: str) -> Path:
    return confined(root, Path(PurePosixPath(key)))
