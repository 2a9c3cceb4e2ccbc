"""Thin pytest fixtures over the peers' context managers (registered in conftest.py).

Each fixture starts a fresh peer for one test (pytest-trio runs every test in its own
Trio loop, so async fixtures are function-scoped) and stops it after the test,
passed, failed or cancelled. Tests needing non-default settings (known peers, AE
titles) use the context managers directly: `async with orthanc(known_peers=...)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .dicom_servers import (
    DicomPeer,
    OrthancPeer,
    RemoteAE,
    dcmqrscp,
    orthanc,
    pynetdicom_scp,
    storescp,
)
from .object_stores import AzuriteEndpoint, S3Endpoint, azurite_blob, moto_s3

# Calling AE titles the DCMTK helpers use by default. Orthanc must know an AE to
# answer its queries; these never listen, so their port is a placeholder.
DEFAULT_CLIENT_AES = tuple(
    RemoteAE(title, 104) for title in ("ECHOSCU", "STORESCU", "FINDSCU", "MOVESCU", "GETSCU")
)


@pytest.fixture
async def storescp_peer(tmp_path: Path) -> AsyncIterator[DicomPeer]:
    """DCMTK storescp, AE STORESCP, accepting every transfer syntax."""
    async with storescp(parent_dir=tmp_path) as peer:
        yield peer


@pytest.fixture
async def orthanc_peer(tmp_path: Path) -> AsyncIterator[OrthancPeer]:
    """Orthanc, AE ORTHANC, answering queries from the default client AEs."""
    async with orthanc(known_peers=DEFAULT_CLIENT_AES, parent_dir=tmp_path) as peer:
        yield peer


@pytest.fixture
async def dcmqrscp_peer(tmp_path: Path) -> AsyncIterator[DicomPeer]:
    """DCMTK dcmqrscp, AE QRSCP, with no move destinations."""
    async with dcmqrscp(parent_dir=tmp_path) as peer:
        yield peer


@pytest.fixture
async def pynetdicom_peer(tmp_path: Path) -> AsyncIterator[DicomPeer]:
    """Our pynetdicom archive (tests/peers/pynetdicom_scp.py), AE PYNETDICOM."""
    async with pynetdicom_scp(parent_dir=tmp_path) as peer:
        yield peer


@pytest.fixture
async def s3_endpoint(tmp_path: Path) -> AsyncIterator[S3Endpoint]:
    """moto's S3 server; pass `s3_endpoint.client_kwargs()` to a client."""
    async with moto_s3(parent_dir=tmp_path) as endpoint:
        yield endpoint


@pytest.fixture
async def azurite_endpoint(tmp_path: Path) -> AsyncIterator[AzuriteEndpoint]:
    """Azurite's blob service; use `azurite_endpoint.connection_string`."""
    async with azurite_blob(parent_dir=tmp_path) as endpoint:
        yield endpoint
