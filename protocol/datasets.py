"""A dataset as it travels in P-DATA: bytes in a transfer syntax, without file meta.

Identifiers (C-FIND, C-MOVE, C-GET) and their responses are small: flat ones are written
directly (flat_datasets.py), the rest and every decode go through pydicom; image datasets
never come here (they stream to files untouched).
"""

import io
import zlib

from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from .catalog import DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN
from .errors import LocalProtocolError, RemoteProtocolError
from .flat_datasets import encode_flat
from .structure import DEFAULT_MAX_DEPTH, MalformedDataset, check_dataset


class UndecodableDataset(RemoteProtocolError):
    """The peer sent a dataset that does not parse in the transfer syntax agreed."""


class UnencodableDataset(LocalProtocolError):
    """We were asked to encode a dataset in a way that would corrupt it."""


def _encoding(transfer_syntax: str) -> tuple[bool, bool]:
    """(implicit VR, little endian) of a transfer syntax; compressed ones are explicit LE."""
    return transfer_syntax == IMPLICIT_VR_LITTLE_ENDIAN, transfer_syntax != EXPLICIT_VR_BIG_ENDIAN


def encode_dataset(dataset: Dataset, transfer_syntax: str) -> bytes:
    """The dataset (group 0002 left out) in a little endian syntax, deflated explicit VR
    little endian, or the encapsulated syntax its pixel data is already in."""
    if transfer_syntax == EXPLICIT_VR_BIG_ENDIAN:
        raise UnencodableDataset("datasets are not encoded in explicit VR big endian (retired)")
    if getattr(dataset, "original_encoding", (None, None))[1] is False:
        # pydicom would leave big endian pixel data unswapped: the image would be garbage.
        raise UnencodableDataset("a dataset read as big endian can only be sent as the file it came from")
    implicit, little = _encoding(transfer_syntax)
    dataset = _without_file_meta(dataset)
    data = encode_flat(dataset, implicit=implicit)
    if data is None:  # not flat (sequences, binary values, ISO 2022 text): pydicom writes it
        buffer = DicomBytesIO()
        buffer.is_implicit_VR = implicit
        buffer.is_little_endian = little
        write_dataset(buffer, dataset)
        data = buffer.getvalue()
    if transfer_syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # raw deflate, PS3.5 A.5
        data = compressor.compress(data) + compressor.flush()
        if len(data) % 2:
            data += b"\x00"
    return data


def _without_file_meta(dataset: Dataset) -> Dataset:
    if not any(tag.group == 2 for tag in dataset.keys()):
        return dataset
    copy = Dataset()
    for element in dataset:
        if element.tag.group != 2:
            copy.add(element)
    return copy


# An identifier or attribute list is small; deflated, it may not inflate past this.
MAX_INFLATED_IDENTIFIER = 64 * 1024 * 1024


def decode_dataset(
    data: bytes | bytearray | memoryview, transfer_syntax: str, *, max_depth: int = DEFAULT_MAX_DEPTH
) -> Dataset:
    """Parse a small dataset (identifier, response). Its structure is checked first, so
    pydicom (which recurses into sequences) never sees one nested past `max_depth`."""
    try:
        check_dataset(data, transfer_syntax, max_depth=max_depth, max_inflated=MAX_INFLATED_IDENTIFIER)
    except MalformedDataset as error:
        raise UndecodableDataset(f"cannot decode the dataset: {error}") from None
    implicit, little = _encoding(transfer_syntax)
    try:
        if transfer_syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
            data = zlib.decompressobj(wbits=-zlib.MAX_WBITS).decompress(data, MAX_INFLATED_IDENTIFIER)
        stream = io.BytesIO(bytes(data))
        dataset = read_dataset(stream, implicit, little)
        if stream.tell() != len(data):  # pydicom stops quietly at what it cannot read
            raise ValueError(f"only {stream.tell()} of {len(data)} bytes form elements")
        for element in dataset.iterall():
            element.value  # noqa: B018 - convert every raw value now: fail here, not later
        return dataset
    except Exception as error:  # pydicom raises many kinds on garbage; all mean the same here
        raise UndecodableDataset(f"cannot decode the dataset: {type(error).__name__}: {error}") from None
