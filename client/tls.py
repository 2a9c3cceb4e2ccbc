"""TLS for DICOM connections (PS3.15 Annex B, the BCP 195 profile): SSL contexts for
both ends, and what a handshake tells about the peer.

Only TLS 1.2 and 1.3; for 1.2 only suites with forward secrecy and AEAD ciphers (ECDHE
or DHE with AES-GCM or ChaCha20-Poly1305), which is what BCP 195 asks for. TLS 1.3's
suites are all of that kind already. Compression and renegotiation are off.

A certificate problem (file missing, key not matching, bad PEM) is a `TlsSetupError`
naming the file: the node refuses to start with one line rather than a traceback.
"""

from __future__ import annotations

import ssl
from pathlib import Path

# ECDHE/DHE key exchange, AEAD ciphers: the TLS 1.2 suites BCP 195 recommends.
BCP195_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-AES128-GCM-SHA256",
    )
)

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TlsSetupError(ValueError):
    """A certificate, key or CA file cannot be used."""


def _harden(context: ssl.SSLContext, min_version: str) -> ssl.SSLContext:
    context.minimum_version = TLS_VERSIONS[min_version]
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.set_ciphers(BCP195_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return context


def _load_chain(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    for what, path in (("certificate", cert_file), ("private key", key_file)):
        if not Path(path).is_file():
            raise TlsSetupError(f"{what} file {path!r} does not exist")
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as error:
        raise TlsSetupError(f"certificate {cert_file!r} with key {key_file!r}: {error.reason or error}") from None


def _load_ca(context: ssl.SSLContext, ca_file: str) -> None:
    if not Path(ca_file).is_file():
        raise TlsSetupError(f"CA file {ca_file!r} does not exist")
    try:
        context.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as error:
        raise TlsSetupError(f"CA file {ca_file!r}: {error.reason or error}") from None


def server_context(
    *, cert_file: str, key_file: str, ca_file: str = "", require_client_certificate: bool = False, min_version: str = "1.2"
) -> ssl.SSLContext:
    """The acceptor's context. With a CA file, a client certificate is checked against it
    when one is sent (and must be sent with `require_client_certificate`: mutual auth)."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), min_version)
    _load_chain(context, cert_file, key_file)
    if ca_file:
        _load_ca(context, ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL
    elif require_client_certificate:
        raise TlsSetupError("requiring client certificates needs a CA file to check them against")
    return context


def client_context(
    *, ca_file: str = "", cert_file: str = "", key_file: str = "", check_hostname: bool = True, min_version: str = "1.2"
) -> ssl.SSLContext:
    """The requestor's context: the server's certificate is checked against `ca_file` (the
    system's trust store when empty); with cert/key files we present our own (mutual auth)."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), min_version)
    if ca_file:
        _load_ca(context, ca_file)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert_file or key_file:
        _load_chain(context, cert_file, key_file or cert_file)
    context.check_hostname = check_hostname
    return context


def subject_text(certificate: dict | None) -> str:
    """A peer certificate's subject as one line ("CN=modality1,O=Hospital"); "" for none."""
    if not certificate:
        return ""
    parts = []
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            parts.append(f"{_SHORT_NAMES.get(key, key)}={value}")
    return ",".join(parts)


_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "emailAddress": "emailAddress",
}


def handshake_failure(error: BaseException) -> str:
    """Why a handshake failed, in a few words for the log and the audit trail."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate rejected: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    cause = error.__cause__ or error.__context__
    if cause is not None and cause is not error:
        return handshake_failure(cause)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
