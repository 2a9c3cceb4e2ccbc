import pytest
import trio.testing


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


# Real peers (DCMTK, Orthanc, pynetdicom, moto, Azurite) and test data live in
# tests/peers and tests/dicom_samples.py; tests import them as `peers` and
# `dicom_samples` (pytest's importlib mode puts nothing on sys.path for us).
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers.fixtures import (  # noqa: E402,F401
    azurite_endpoint,
    dcmqrscp_peer,
    orthanc_peer,
    pynetdicom_peer,
    s3_endpoint,
    storescp_peer,
)
from peers.certificates import tls_files  # noqa: E402,F401
