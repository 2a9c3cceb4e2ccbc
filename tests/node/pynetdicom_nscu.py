"""pynetdicom as a client (SCU) of the DIMSE-N services, one association per run.

    python pynetdicom_nscu.py PORT CALLED_AE STEPS.json

STEPS.json is a list run in order on one association:
    {"op": "create", "class": UID, "instance": UID or null, "dataset": DICOM JSON}
    {"op": "set",    "class": UID, "instance": UID, "dataset": DICOM JSON}
    {"op": "commit", "dataset": DICOM JSON, "wait": seconds}   N-ACTION, then wait for
                                                               the N-EVENT-REPORT here
    {"op": "abort"}                                            abort, not release, at the end
With no "wait" anywhere, N-EVENT-REPORTs on this association are not answered (the
node must then report on a new association).
Prints one JSON object: {"associated": bool, "results": [{"status", "error_id",
"comment", "tags", "instance"}], "reports": [{"event_type", "dataset"}]}. Runs as a
subprocess of the tests, so pynetdicom's threads stay out of the test's Trio loop.
"""

from __future__ import annotations

import json
import logging
import sys
import threading

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep, StorageCommitmentPushModel

COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"


def status_of(status: Dataset, instance: str | None = None) -> dict:
    tags = status.get("AttributeIdentifierList")
    if tags is not None and not isinstance(tags, (list, tuple)) and not hasattr(tags, "__iter__"):
        tags = [tags]
    return {
        "status": int(status.Status) if "Status" in status else None,
        "error_id": status.get("ErrorID"),
        "comment": status.get("ErrorComment"),
        "tags": [int(t) for t in tags] if tags is not None else [],
        "instance": instance,
    }


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # pynetdicom's own account, for a failing test
    port, called, steps_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(steps_file) as source:
        steps = json.load(source)
    reports: list[dict] = []
    arrived = threading.Event()

    def on_report(event) -> int:
        reports.append({
            "event_type": event.request.EventTypeID,
            "dataset": event.event_information.to_json_dict(),
        })
        arrived.set()
        return 0x0000, None  # (status, Event Reply)

    ae = AE(ae_title="PYNETDICOM")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(ModalityPerformedProcedureStep)
    ae.add_requested_context(StorageCommitmentPushModel)
    handlers = [(evt.EVT_N_EVENT_REPORT, on_report)] if any(step.get("wait") for step in steps) else []
    assoc = ae.associate("127.0.0.1", port, ae_title=called, evt_handlers=handlers)
    out: dict = {"associated": assoc.is_established, "results": [], "reports": reports}
    if not assoc.is_established:
        print(json.dumps(out))
        return 0
    abort = False
    for step in steps:
        if step["op"] == "abort":
            abort = True
            continue
        dataset = Dataset.from_json(step["dataset"]) if step.get("dataset") is not None else None
        if step["op"] == "create":
            status, _ = assoc.send_n_create(dataset, step["class"], step.get("instance"))
            instance = status.get("AffectedSOPInstanceUID") if status else None
            out["results"].append(status_of(status, instance) if status else {"status": None})
        elif step["op"] == "set":
            status, _ = assoc.send_n_set(dataset, step["class"], step["instance"])
            out["results"].append(status_of(status) if status else {"status": None})
        elif step["op"] == "commit":
            arrived.clear()
            status, _ = assoc.send_n_action(dataset, 1, StorageCommitmentPushModel, COMMITMENT_INSTANCE)
            out["results"].append(status_of(status) if status else {"status": None})
            if step.get("wait"):
                arrived.wait(step["wait"])
    if abort:
        assoc.abort()
    else:
        assoc.release()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
