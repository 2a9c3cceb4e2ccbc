"""pynetdicom as a secure client of a DICOM node: DICOM TLS and/or a user identity,
then C-ECHO and C-STOREs; the result as JSON.

    python pynetdicom_secure_scu.py PORT CALLED_AE [--tls CA CERT KEY] [--user NAME [--passcode PW]] [FILE...]

Prints {"associated": bool, "rejected": bool, "identity_response": bool|null,
"echo": status, "stored": [status per file]}. A subprocess of the tests, like
pynetdicom_scu.py: its threads stay out of the test's Trio loop.
"""

from __future__ import annotations

import argparse
import json
import ssl

from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.sop_class import Verification


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("called_ae")
    parser.add_argument("files", nargs="*")
    parser.add_argument("--tls", nargs=3, metavar=("CA", "CERT", "KEY"))
    parser.add_argument("--user")
    parser.add_argument("--passcode")
    parser.add_argument("--calling-ae", default="PYNETDICOM")
    args = parser.parse_intermixed_args()

    ae = AE(ae_title=args.calling_ae)
    ae.add_requested_context(Verification)
    datasets = [dcmread(path) for path in args.files]
    for uid in sorted({(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for ds in datasets}):
        ae.add_requested_context(uid[0], uid[1])
    options = {}
    if args.tls:
        ca, cert, key = args.tls
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        context.load_cert_chain(cert, key)
        options["tls_args"] = (context, "127.0.0.1")
    if args.user:
        identity = UserIdentityNegotiation()
        identity.user_identity_type = 2 if args.passcode is not None else 1
        identity.primary_field = args.user.encode()
        if args.passcode is not None:
            identity.secondary_field = args.passcode.encode()
        identity.positive_response_requested = True
        options["ext_neg"] = [identity]
    association = ae.associate("127.0.0.1", args.port, ae_title=args.called_ae, **options)
    result = {"associated": association.is_established, "rejected": association.is_rejected, "identity_response": None}
    if association.is_established:
        response = association.acceptor.user_identity
        result["identity_response"] = response is not None
        echo = association.send_c_echo()
        result["echo"] = echo.Status if echo else None
        result["stored"] = []
        for ds in datasets:
            status = association.send_c_store(ds)
            result["stored"].append(status.Status if status else None)
        association.release()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
