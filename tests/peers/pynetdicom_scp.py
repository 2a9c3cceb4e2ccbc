"""A small archive built on pynetdicom, run as a subprocess peer for interop tests.

    python pynetdicom_scp.py --port N --ae-title AE --storage-dir DIR
                             [--move-destination AE=HOST:PORT ...] [--abort-on SOP_INSTANCE_UID ...]

Serves, on 127.0.0.1 only: C-ECHO; C-STORE for every storage SOP class in any transfer
syntax (files land in DIR as <SOPInstanceUID>.dcm); patient- and study-root C-FIND,
C-MOVE and C-GET over what it has stored. Prints "ready <port>" once listening and
exits cleanly on SIGTERM. A C-STORE of an instance named by --abort-on is answered with
an A-ABORT instead (a peer that aborts on one file), every time it comes.

Matching is deliberately simple: an empty key returns the value, a UID key may be a
backslash list, a DA/TM/DT key may be a range "A-B", string keys take * and ?
wildcards, anything else must be equal.
"""

from __future__ import annotations

import argparse
import fnmatch
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import ALL_TRANSFER_SYNTAXES, AE, AllStoragePresentationContexts, build_context, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

SUCCESS, PENDING = 0x0000, 0xFF00
UNABLE_TO_PROCESS, IDENTIFIER_MISMATCH, UNKNOWN_DESTINATION = 0xC000, 0xA900, 0xA801
PROCESSING_FAILURE = 0x0110

# The attribute that identifies one entity at each level.
LEVEL_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
LEVELS = list(LEVEL_KEYS)


class Archive:
    """Instances on disk plus their headers in memory, shared by association threads."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock = threading.Lock()
        self.headers: dict[str, Dataset] = {}
        for path in folder.glob("*.dcm"):
            header = dcmread(path, stop_before_pixels=True)
            self.headers[str(header.SOPInstanceUID)] = header

    def path_of(self, sop_instance_uid: str) -> Path:
        return self.folder / f"{sop_instance_uid}.dcm"

    def add(self, sop_instance_uid: str, part10: bytes) -> None:
        path = self.path_of(sop_instance_uid)
        temporary = path.with_suffix(".partial")
        temporary.write_bytes(part10)
        temporary.replace(path)
        header = dcmread(path, stop_before_pixels=True)
        with self.lock:
            self.headers[sop_instance_uid] = header

    def snapshot(self) -> list[Dataset]:
        with self.lock:
            return list(self.headers.values())


def _value_matches(key_value: str, vr: str, actual: object) -> bool:
    actual_text = "" if actual is None else str(actual).strip()
    if vr == "UI":
        return actual_text in key_value.split("\\")
    if vr in ("DA", "TM", "DT") and "-" in key_value:
        low, _, high = key_value.partition("-")
        return bool(actual_text) and (not low or actual_text >= low) and (not high or actual_text <= high)
    if "*" in key_value or "?" in key_value:
        return fnmatch.fnmatchcase(actual_text, key_value.replace("[", "[[]"))
    return actual_text == key_value.strip()


def _matches(identifier: Dataset, header: Dataset) -> bool:
    for element in identifier:
        if element.keyword in ("QueryRetrieveLevel", "SpecificCharacterSet", ""):
            continue
        if element.VR == "SQ" or element.value in (None, "", b""):
            continue  # return key only
        if not _value_matches(str(element.value), element.VR, header.get(element.keyword)):
            return False
    return True


def _select(identifier: Dataset, archive: Archive) -> tuple[str, list[Dataset]]:
    level = str(identifier.get("QueryRetrieveLevel", "")).strip()
    if level not in LEVEL_KEYS:
        raise ValueError(f"bad QueryRetrieveLevel {level!r}")
    return level, [header for header in archive.snapshot() if _matches(identifier, header)]


def _response(identifier: Dataset, level: str, members: list[Dataset], ae_title: str) -> Dataset:
    first = members[0]
    response = Dataset()
    response.QueryRetrieveLevel = level
    if "SpecificCharacterSet" in first:
        response.SpecificCharacterSet = first.SpecificCharacterSet
    for element in identifier:
        keyword = element.keyword
        if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet", ""):
            continue
        if keyword == "ModalitiesInStudy":
            response.ModalitiesInStudy = sorted({str(m.get("Modality", "")) for m in members})
        elif keyword.startswith("NumberOf") and keyword.endswith("RelatedInstances"):
            setattr(response, keyword, len(members))
        elif keyword in first:
            response[element.tag] = first[element.tag]
        else:
            setattr(response, keyword, element.value)
    response.RetrieveAETitle = ae_title
    return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ae-title", default="PYNETDICOM")
    parser.add_argument("--storage-dir", type=Path, required=True)
    parser.add_argument("--move-destination", action="append", default=[])
    parser.add_argument("--abort-on", action="append", default=[])
    options = parser.parse_args()
    abort_on = set(options.abort_on)

    destinations = {}
    for entry in options.move_destination:
        title, _, address = entry.partition("=")
        host, _, port = address.rpartition(":")
        destinations[title] = (host, int(port))

    options.storage_dir.mkdir(parents=True, exist_ok=True)
    archive = Archive(options.storage_dir)
    ae_title = options.ae_title

    def on_store(event: evt.Event) -> int:
        if str(event.request.AffectedSOPInstanceUID) in abort_on:
            print(f"aborting on {event.request.AffectedSOPInstanceUID}", file=sys.stderr, flush=True)
            event.assoc.abort()
            return PROCESSING_FAILURE  # never sent: the association is gone
        try:
            uid = str(event.request.AffectedSOPInstanceUID)
            archive.add(uid, event.encoded_dataset(include_meta=True))
        except Exception as error:  # report, keep serving
            print(f"store failed: {error!r}", file=sys.stderr, flush=True)
            return PROCESSING_FAILURE
        return SUCCESS

    def on_find(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        identifier = event.identifier
        try:
            level, matches = _select(identifier, archive)
        except ValueError:
            yield IDENTIFIER_MISMATCH, None
            return
        groups: dict[str, list[Dataset]] = {}
        for header in matches:
            groups.setdefault(str(header.get(LEVEL_KEYS[level], "")), []).append(header)
        for members in groups.values():
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield PENDING, _response(identifier, level, members, ae_title)

    def matched_datasets(identifier: Dataset) -> list[Dataset]:
        _, matches = _select(identifier, archive)
        return [dcmread(archive.path_of(str(header.SOPInstanceUID))) for header in matches]

    def on_move(event: evt.Event) -> Iterator[object]:
        destination = destinations.get(str(event.move_destination).strip())
        if destination is None:
            yield None, None  # the SCP answers "move destination unknown"
            return
        try:
            datasets = matched_datasets(event.identifier)
        except ValueError:
            yield (*destination, {})
            yield IDENTIFIER_MISMATCH, None
            return
        # Propose exactly the (SOP class, transfer syntax) pairs we are about to send.
        wanted: dict[str, set[str]] = {}
        for dataset in datasets:
            wanted.setdefault(str(dataset.SOPClassUID), set()).add(
                str(dataset.file_meta.TransferSyntaxUID)
            )
        contexts = [build_context(sop, sorted(syntaxes)) for sop, syntaxes in wanted.items()]
        yield (*destination, {"contexts": contexts[:128]})
        yield len(datasets)
        for dataset in datasets:
            yield PENDING, dataset

    def on_get(event: evt.Event) -> Iterator[object]:
        try:
            datasets = matched_datasets(event.identifier)
        except ValueError:
            yield IDENTIFIER_MISMATCH, None
            return
        yield len(datasets)
        for dataset in datasets:
            yield PENDING, dataset

    ae = AE(ae_title=ae_title)
    ae.add_supported_context(Verification)
    for context in AllStoragePresentationContexts:
        # scp_role lets a C-GET requestor take the storage SCP role on this context.
        ae.add_supported_context(
            context.abstract_syntax, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True
        )
    for model in (
        PatientRootQueryRetrieveInformationModelFind,
        PatientRootQueryRetrieveInformationModelMove,
        PatientRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelGet,
    ):
        ae.add_supported_context(model)

    handlers = [
        (evt.EVT_C_STORE, on_store),
        (evt.EVT_C_FIND, on_find),
        (evt.EVT_C_MOVE, on_move),
        (evt.EVT_C_GET, on_get),
    ]
    server = ae.start_server(("127.0.0.1", options.port), block=False, evt_handlers=handlers)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"ready {options.port}", flush=True)
    while not stop.wait(timeout=3600):
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
