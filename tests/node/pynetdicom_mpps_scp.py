"""pynetdicom as an MPPS SCP (N-CREATE / N-SET) for testing triopacs's MPPS SCU.

    python pynetdicom_mpps_scp.py AE_TITLE REQUESTS

Prints {"port": N} once listening (port 0 bound, read back), then one JSON line per
request received: {"op", "instance", "dataset", "status", "calling_ae"}; exits after
REQUESTS requests. It keeps each instance's attributes and applies the few rules a test
needs: N-CREATE must be IN PROGRESS (else 0106) and new (else 0111); N-SET of an unknown
instance is 0112, of a COMPLETED or DISCONTINUED one 0110.
"""

from __future__ import annotations

import json
import logging
import sys
import threading

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep

FINAL = ("COMPLETED", "DISCONTINUED")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    ae_title, wanted = sys.argv[1], int(sys.argv[2])
    instances: dict[str, Dataset] = {}
    seen = []
    done = threading.Event()

    def record(op: str, event, uid: str, dataset: Dataset, status: int) -> None:
        print(json.dumps({
            "op": op, "instance": uid, "dataset": dataset.to_json_dict(), "status": status,
            "calling_ae": event.assoc.requestor.ae_title,
        }), flush=True)
        seen.append(op)
        if len(seen) >= wanted:
            done.set()

    def on_create(event):
        uid, attributes = event.request.AffectedSOPInstanceUID, event.attribute_list
        if uid in instances:
            status = 0x0111
        elif attributes.get("PerformedProcedureStepStatus") != "IN PROGRESS":
            status = 0x0106
        else:
            status, instances[uid] = 0x0000, attributes
        record("create", event, uid, attributes, status)
        return status, attributes if status == 0 else None

    def on_set(event):
        uid, changes = event.request.RequestedSOPInstanceUID, event.modification_list
        current = instances.get(uid)
        if current is None:
            status = 0x0112
        elif current.get("PerformedProcedureStepStatus") in FINAL:
            status = 0x0110
        else:
            status = 0x0000
            current.update(changes)
        record("set", event, uid, changes, status)
        return status, changes if status == 0 else None

    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_supported_context(ModalityPerformedProcedureStep)
    handlers = [(evt.EVT_N_CREATE, on_create), (evt.EVT_N_SET, on_set)]
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    print(json.dumps({"port": server.socket.getsockname()[1]}), flush=True)
    done.wait(120)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
