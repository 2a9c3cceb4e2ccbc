"""Looking at stored files the way verification does: finding them, hashing them,
parsing them. Blocking functions for a worker thread; no index access here.

What counts as a stored file: a regular file under `<data>/files`, except the temp
files a store in progress writes beside its destination (hidden, `.part`). Files under
`<data>/incoming` are never stored files: the walk does not go there.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
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


def walk_stored_files(root: Path) -> Iterator[str]:
    """Paths, relative to the data directory `root` and with '/' separators, of the
    stored files under root/files; symbolic links are not followed."""
    top = root / "files"
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except FileNotFoundError:  # removed while we walked (a cleanup emptied it)
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False) and not is_temp_name(entry.name):
                yield Path(entry.path).relative_to(root).as_posix()


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
