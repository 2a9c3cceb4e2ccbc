"""Real peers for the test suite: DICOM servers, S3 and Azure endpoints, DCMTK clients.

Everything runs on 127.0.0.1 under the test's Trio loop and is stopped and reaped when
its `async with` block (or pytest fixture) ends. A missing program raises ToolMissing,
whose message says to run the suite through tests/run.sh.
"""

from .dcmtk import (
    FindResult,
    RetrieveResult,
    StoreResult,
    ToolResult,
    dcmtk_program,
    echoscu,
    findscu,
    findscu_worklist,
    getscu,
    movescu,
    parse_dataset_dump,
    parse_findscu_output,
    parse_retrieve_output,
    parse_storescu_output,
    run_dcmtk,
    storescu,
)
from .dicom_servers import (
    DicomPeer,
    OrthancPeer,
    RemoteAE,
    dcmqrscp,
    orthanc,
    pynetdicom_scp,
    pynetdicom_storescp_app,
    storescp,
    wlmscpfs,
    write_worklist_file,
)
from .object_stores import AzuriteEndpoint, S3Endpoint, azurite_blob, moto_s3
from .process import (
    LOOPBACK,
    PeerError,
    ServerProcess,
    ToolMissing,
    cpu_seconds,
    free_port,
    ports_listened_by,
    serve,
)

__all__ = [
    "LOOPBACK", "AzuriteEndpoint", "DicomPeer", "FindResult", "OrthancPeer", "PeerError",
    "RemoteAE", "RetrieveResult", "S3Endpoint", "ServerProcess", "StoreResult", "ToolMissing",
    "ToolResult", "azurite_blob", "cpu_seconds", "dcmqrscp", "dcmtk_program", "echoscu",
    "findscu", "findscu_worklist", "free_port", "getscu", "moto_s3", "movescu", "orthanc", "parse_dataset_dump",
    "parse_findscu_output", "parse_retrieve_output", "parse_storescu_output", "ports_listened_by", "pynetdicom_scp",
    "pynetdicom_storescp_app", "run_dcmtk", "serve", "storescp", "storescu", "wlmscpfs", "write_worklist_file",
]
