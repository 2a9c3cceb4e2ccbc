"""pynetdicom as a client (SCU) of a DICOM node, one operation per run, result as JSON.

    python pynetdicom_scu.py PORT CALLED_AE echo
    python pynetdicom_scu.py PORT CALLED_AE store FILE...
    python pynetdicom_scu.py PORT CALLED_AE find  --level STUDY [--model study|patient|worklist] Keyword=value ...
    python pynetdicom_scu.py PORT CALLED_AE move  --level STUDY --destination AE Keyword=value ...
    python pynetdicom_scu.py PORT CALLED_AE get   --level STUDY --into DIR Keyword=value ...
                             [--context SOP_CLASS=TRANSFER_SYNTAX ...]

A get proposes CT and MR storage with pynetdicom's default syntaxes, or with --context
one presentation context per SOP class and transfer syntax given (several for a class
are allowed); what arrives is written as received, bytes untouched.

Prints one JSON object: {"associated": bool, "statuses": [final status per request or
per response], "matches": [...], "counts": {...}, "received": [...]}. Runs as a
subprocess of the tests: pynetdicom's threads and sockets stay out of the test's Trio
loop, and a hung run is killed by the test's deadline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

CALLING_AE = "PYNETDICOM"


def identifier(level: str, keys: list[str]) -> Dataset:
    """Keyword=value keys; Sequence.Keyword=value puts the key into the sequence's one item
    (worklist queries match inside the Scheduled Procedure Step Sequence). A worklist
    query has no level."""
    ds = Dataset()
    if level:
        ds.QueryRetrieveLevel = level
    for key in keys:
        keyword, _, value = key.partition("=")
        target = ds
        if "." in keyword:
            sequence, keyword = keyword.split(".", 1)
            if sequence not in ds:
                setattr(ds, sequence, [Dataset()])
            target = ds[sequence].value[0]
        setattr(target, keyword, value)
    return ds


def flat(element) -> object:
    """A response element as JSON: text, or a sequence's items as objects of text."""
    if element.VR == "SQ":
        return [{e.keyword: str(e.value) for e in item} for item in element.value]
    return str(element.value)


def counts(status: Dataset) -> dict[str, int | None]:
    return {
        name: status.get(f"NumberOf{name}Suboperations")
        for name in ("Remaining", "Completed", "Failed", "Warning")
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("called_ae")
    parser.add_argument("operation", choices=["echo", "store", "find", "move", "get"])
    parser.add_argument("--level", default="STUDY")
    parser.add_argument("--model", default="study")
    parser.add_argument("--destination")
    parser.add_argument("--into", type=Path)
    parser.add_argument("--context", action="append", default=[])
    parser.add_argument("args", nargs="*")
    options = parser.parse_intermixed_args()

    ae = AE(ae_title=CALLING_AE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    roles = []
    handlers = []
    received: list[str] = []
    if options.operation == "echo":
        ae.add_requested_context(Verification)
    elif options.operation == "store":
        datasets = [dcmread(path) for path in options.args]
        for pair in sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets}):
            ae.add_requested_context(pair[0], pair[1])
    elif options.operation == "find":
        model = {
            "study": StudyRootQueryRetrieveInformationModelFind,
            "patient": PatientRootQueryRetrieveInformationModelFind,
            "worklist": ModalityWorklistInformationFind,
        }[options.model]
        ae.add_requested_context(model)
    elif options.operation == "move":
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    else:  # get: we take the instances back on this association, as storage SCP
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        pairs = [context.split("=") for context in options.context]
        for sop_class, syntax in pairs:
            ae.add_requested_context(sop_class, syntax)
        if not pairs:
            for sop_class in ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"):
                ae.add_requested_context(sop_class)
        for sop_class in sorted({pair[0] for pair in pairs} or {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"}):
            roles.append(build_role(sop_class, scp_role=True))

        def on_store(event):
            instance = event.request.AffectedSOPInstanceUID
            (options.into / f"{instance}.dcm").write_bytes(event.encoded_dataset())
            received.append(str(instance))
            return 0x0000

        handlers.append((evt.EVT_C_STORE, on_store))

    association = ae.associate("127.0.0.1", options.port, ae_title=options.called_ae, ext_neg=roles, evt_handlers=handlers)
    result: dict = {"associated": association.is_established, "statuses": [], "matches": [], "counts": {}, "received": received}
    if association.is_established:
        try:
            if options.operation == "echo":
                result["statuses"].append(association.send_c_echo().Status)
            elif options.operation == "store":
                result["statuses"] = [association.send_c_store(ds).Status for ds in datasets]
            elif options.operation == "find":
                query = identifier("" if options.model == "worklist" else options.level, options.args)
                for status, match in association.send_c_find(query, model):
                    result["statuses"].append(status.Status)
                    if match is not None and status.Status in (0xFF00, 0xFF01):
                        result["matches"].append({element.keyword: flat(element) for element in match})
            else:
                query = identifier(options.level, options.args)
                responses = (
                    association.send_c_move(query, options.destination, StudyRootQueryRetrieveInformationModelMove)
                    if options.operation == "move"
                    else association.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)
                )
                for status, _ in responses:
                    result["statuses"].append(status.Status)
                    result["counts"] = counts(status)
        finally:
            association.release()
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
