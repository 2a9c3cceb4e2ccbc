"""Certificates for the DICOM TLS tests, made once per session with trustme: a CA, the
node's server certificate (for 127.0.0.1 and localhost), a good client certificate, an
expired one, and one from a CA the node does not trust. RSA keys: every DCMTK build
takes them."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA the node and the clients trust
    server_cert: Path
    server_key: Path
    client_cert: Path  # subject CN=modality1, O=Triopacs Tests
    client_key: Path
    expired_cert: Path  # issued by the trusted CA, expired in 2001
    expired_key: Path
    stranger_cert: Path  # issued by another CA
    stranger_key: Path
    stranger_ca: Path


def make_tls_files(folder: Path) -> TlsFiles:
    import trustme

    rsa = trustme.KeyType.RSA
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(key_type=rsa, organization_name="Triopacs Tests")
    other = trustme.CA(key_type=rsa, organization_name="Somebody Else")

    def write(leaf, name: str) -> tuple[Path, Path]:
        cert, key = folder / f"{name}.pem", folder / f"{name}.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        return cert, key

    server = write(ca.issue_cert("127.0.0.1", "localhost", common_name="triopacs-node", key_type=rsa), "server")
    client = write(
        ca.issue_cert("modality1.example.org", common_name="modality1", organization_name="Triopacs Tests", key_type=rsa),
        "client",
    )
    expired = write(
        ca.issue_cert(
            "old.example.org", common_name="old-modality", key_type=rsa,
            not_before=datetime.datetime(2000, 1, 1), not_after=datetime.datetime(2001, 1, 1),
        ),
        "expired",
    )
    stranger = write(other.issue_cert("stranger.example.org", common_name="stranger", key_type=rsa), "stranger")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    other.cert_pem.write_to_path(str(folder / "other-ca.pem"))
    return TlsFiles(
        ca=folder / "ca.pem", server_cert=server[0], server_key=server[1], client_cert=client[0], client_key=client[1],
        expired_cert=expired[0], expired_key=expired[1], stranger_cert=stranger[0], stranger_key=stranger[1],
        stranger_ca=folder / "other-ca.pem",
    )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))
