"""Is a Part 10 file's dataset whole? Its element structure checked before it is sent.

pydicom reads a truncated file without a word (it shortens the last value), and a peer
that receives one may abort the association. So before a file goes out, its dataset goes
through the same structure check a received dataset does (protocol/structure.py). The
file is read header by header: values are stepped over with a seek, so a 1 GiB image
costs a few reads, not 1 GiB of them (deflated datasets are read through, inflated).

Blocking file I/O: call it in a worker thread.
"""

from __future__ import annotations

import os

from ..protocol.structure import DatasetTruncated, MalformedDataset, StructureChecker, checker_for
from .errors import InvalidPart10File
from .part10 import StoredDataset

READ_SIZE = 64 * 1024


class Truncated(InvalidPart10File):
    """The file ends inside an element."""


def check_dataset_structure(stored: StoredDataset) -> None:
    """Raise InvalidPart10File (Truncated when the file ends early) unless the dataset's
    elements fit together exactly."""
    checker = checker_for(stored.transfer_syntax_uid)
    left = stored.length
    try:
        with open(stored.path, "rb") as file:
            file.seek(stored.offset)
            while left:
                if isinstance(checker, StructureChecker) and checker.value_bytes_left > READ_SIZE:
                    step = min(checker.value_bytes_left, left)
                    file.seek(step, os.SEEK_CUR)
                    checker.skip(step)
                    left -= step
                    continue
                data = file.read(min(READ_SIZE, left))
                if not data:
                    break
                checker.feed(data)
                left -= len(data)
        checker.finish()
    except DatasetTruncated as error:
        raise Truncated(str(error)) from None
    except MalformedDataset as error:
        raise InvalidPart10File(str(error)) from None
