"""Reading what WADO-RS answers from one stored Part 10 file: its metadata as DICOM
JSON with bulk data by reference, one bulk data value, its frames.

Blocking: call from a worker thread. Values larger than the bulk data threshold are
never read for the metadata (pydicom defers them), and frames of uncompressed pixel
data are read by offset, one frame at a time, so a large multi-frame instance is not
loaded whole for them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID

BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
PIXEL_DATA = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF


class NotInFile(LookupError):
    """The file has no such attribute or frame (answered 404)."""


def read_header(path: str | os.PathLike[str], threshold: int) -> Dataset:
    # defer_size: values above the threshold stay on disk (their length is known).
    return dcmread(path, defer_size=threshold + 1, force=True)


def _vr(raw: RawDataElement) -> str:
    if raw.VR:
        return raw.VR
    try:
        return dictionary_VR(raw.tag).split(" or ")[0]
    except KeyError:
        return "UN"


def metadata(ds: Dataset, bulk_url: str, threshold: int, path: str = "") -> dict:
    """DICOM JSON of every attribute (private ones too); binary values above the
    threshold, and every deferred value, as BulkDataURI `{bulk_url}/{path}` where the
    path is tags and item indexes (00540016/0/00181072)."""
    out: dict = {}
    for tag, elem in ds.items():
        key = int(tag)
        if key >> 16 == 0x0002 or not key & 0xFFFF:
            continue
        name = f"{key:08X}"
        here = f"{path}/{name}" if path else name
        if isinstance(elem, RawDataElement):
            vr = _vr(elem)
            deferred = elem.value is None and elem.length not in (0, UNDEFINED_LENGTH)
            if deferred or key == PIXEL_DATA or (vr in BULK_VRS and elem.length > threshold):
                out[name] = {"vr": vr if vr != "OB or OW" else "OW", "BulkDataURI": f"{bulk_url}/{here}"}
                continue
        element = ds[key]
        if element.VR == "SQ":
            items = [metadata(item, bulk_url, threshold, f"{here}/{index}") for index, item in enumerate(element.value)]
            out[name] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            continue
        try:
            out[name] = element.to_json_dict(None, 1 << 62)
        except (ValueError, TypeError, OverflowError):
            out[name] = {"vr": element.VR}  # a value with no JSON form (e.g. a non-finite float)
    return out


def bulk_value(path: str | os.PathLike[str], tags: str) -> bytes:
    """The value at a bulk data path of `metadata`."""
    ds = dcmread(path, force=True)
    parts = tags.strip("/").split("/")
    try:
        for step in range(0, len(parts) - 1, 2):
            ds = ds[int(parts[step], 16)].value[int(parts[step + 1])]
        value = ds[int(parts[-1], 16)].value
    except (KeyError, IndexError, ValueError, TypeError):
        raise NotInFile(f"no bulk data at {tags[:80]}") from None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise NotInFile(f"{tags[:80]} is not bulk data")


def frames(path: str | os.PathLike[str], numbers: list[int]) -> tuple[str, list[bytes]]:
    """(the stored transfer syntax, the frames asked for): uncompressed frames as raw
    bytes, encapsulated ones as stored (compressed)."""
    ds = dcmread(path, defer_size=1024, force=True)
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1")))
    raw = ds.get_item(PIXEL_DATA)
    if raw is None:
        raise NotInFile("the instance has no pixel data")
    count = int(ds.get("NumberOfFrames", 1) or 1)
    for number in numbers:
        if not 1 <= number <= count:
            raise NotInFile(f"frame {number} is not in 1..{count}")
    if syntax.is_encapsulated:
        wanted = set(numbers)
        found: dict[int, bytes] = {}
        for index, frame in enumerate(_encapsulated(ds[PIXEL_DATA].value, count), start=1):
            if index in wanted:
                found[index] = frame
            if len(found) == len(wanted):
                break
        return syntax, [found[n] for n in numbers]
    size = _frame_size(ds)
    offset = getattr(raw, "value_tell", None)
    if raw.value is not None or offset is None:  # small enough to have been read
        data = ds[PIXEL_DATA].value
        return syntax, [bytes(data[(n - 1) * size : n * size]) for n in numbers]
    with open(path, "rb") as file:
        out = []
        for number in numbers:
            file.seek(offset + (number - 1) * size)
            out.append(file.read(size))
    return syntax, out


def _frame_size(ds: Dataset) -> int:
    bits = int(ds.get("BitsAllocated", 8) or 8)
    pixels = int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * int(ds.get("SamplesPerPixel", 1) or 1)
    if bits % 8:
        raise NotInFile("frames of 1-bit pixel data are not served")
    return pixels * bits // 8


def _encapsulated(value: bytes, count: int) -> Iterator[bytes]:
    return generate_frames(value, number_of_frames=count)
