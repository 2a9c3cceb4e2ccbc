"""pynetdicom as the storage commitment requestor's listener: it accepts the association
a commitment SCP opens to report (taking the SCP role the SCP proposes, PS3.4 J.3.3)
and prints each N-EVENT-REPORT it gets.

    python pynetdicom_commit_scu_listener.py AE_TITLE REPORTS

Prints {"port": N} once listening (port 0 bound, read back), then one JSON line per
report: {"event_type", "dataset", "calling_ae"}; exits after REPORTS reports.
"""

from __future__ import annotations

import json
import logging
import sys
import threading

from pynetdicom import AE, evt
from pynetdicom.sop_class import StorageCommitmentPushModel


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    ae_title, wanted = sys.argv[1], int(sys.argv[2])
    got = []
    done = threading.Event()

    def on_report(event) -> int:
        print(json.dumps({
            "event_type": event.request.EventTypeID,
            "dataset": event.event_information.to_json_dict(),
            "calling_ae": event.assoc.requestor.ae_title,
        }), flush=True)
        got.append(event)
        if len(got) >= wanted:
            done.set()
        return 0x0000, None  # (status, Event Reply)

    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    # The requestor of this association is the commitment SCP: it takes the SCP role.
    ae.add_supported_context(StorageCommitmentPushModel, scu_role=False, scp_role=True)
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
    print(json.dumps({"port": server.socket.getsockname()[1]}), flush=True)
    done.wait(120)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
