"""A stored Part 10 file re-encoded for a peer that did not accept its own transfer syntax.

What the node sends is normally the stored bytes. When the peer took only other
syntaxes, the dataset can still go in one the node can write (explicit or implicit VR
little endian, deflated): from another uncompressed syntax losslessly, from big endian
by swapping the byte order of the word-sized binary values, from an encapsulated
(compressed) syntax by decompressing the pixel data with pydicom's pixel data plugins
(numpy and pylibjpeg with its libjpeg and openjpeg plugins: the `codecs` extra). The
node never compresses.

Blocking (reads the whole file): call it in a worker thread.
"""

from __future__ import annotations

import os

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from ..protocol.catalog import EXPLICIT_VR_BIG_ENDIAN, name_of
from ..protocol.datasets import UnencodableDataset, encode_dataset
from ..protocol.sending_syntaxes import WRITABLE

# Binary VRs whose values are words of this many bytes, swapped between byte orders.
_WORD_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


class TranscodeError(Exception):
    """The file cannot be sent in the syntax asked for; the message says why."""


def can_transcode(source: str, target: str) -> bool:
    """Whether `transcode` may turn a dataset stored in `source` into `target`
    (decompression may still fail for want of a plugin, which it reports)."""
    return target in WRITABLE and source != target


def transcode(path: str | os.PathLike[str], target: str) -> bytes:
    """The file's dataset encoded in `target` (one of WRITABLE)."""
    if target not in WRITABLE:
        raise TranscodeError(f"the node does not write {name_of(target)}")
    try:
        dataset = dcmread(path)
    except Exception as error:
        raise TranscodeError(f"cannot read the stored file: {error}") from None
    source = UID(str(dataset.file_meta.get("TransferSyntaxUID", "")))
    if source.is_encapsulated:
        _decompress(dataset, source)
    elif source == EXPLICIT_VR_BIG_ENDIAN:
        _to_little_endian(dataset)
    try:
        return encode_dataset(dataset, target)
    except UnencodableDataset as error:
        raise TranscodeError(str(error)) from None
    except Exception as error:  # pydicom: a value it cannot write
        raise TranscodeError(f"cannot encode the dataset in {name_of(target)}: {error}") from None


def _decompress(dataset: Dataset, source: UID) -> None:
    try:
        # The same instance in another transfer syntax: it keeps its SOP Instance UID
        # (pydicom would make a new one), the C-STORE names it.
        dataset.decompress(generate_instance_uid=False)
    except Exception as error:  # no plugin for the syntax, numpy missing, or bad pixel data
        raise TranscodeError(f"cannot decompress {name_of(source)}: {error}") from None


def _to_little_endian(dataset: Dataset) -> None:
    """Swap word-sized binary values (pixel data among them) to little endian; pydicom
    re-encodes numbers and text itself."""
    for element in dataset.iterall():
        size = _WORD_SIZE.get(element.VR)
        if size and isinstance(element.value, bytes) and len(element.value) % size == 0:
            element.value = _swapped(element.value, size)
    dataset.set_original_encoding(False, True, dataset.original_character_set)


def _swapped(data: bytes, size: int) -> bytes:
    swapped = bytearray(len(data))
    for offset in range(size):
        swapped[offset::size] = data[size - 1 - offset :: size]
    return bytes(swapped)
