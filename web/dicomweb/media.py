"""Media types of DICOMweb requests: reading Accept and Content-Type headers, and
choosing what a retrieve answers with (PS3.18 8.7: acceptable media types)."""

from __future__ import annotations

import attrs

from ...protocol.catalog import EXPLICIT_VR_LITTLE_ENDIAN

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTET_STREAM = "application/octet-stream"
MULTIPART = "multipart/related"
AS_STORED = "*"


@attrs.frozen
class MediaRange:
    type: str  # lower case, e.g. multipart/related or application/dicom+json
    params: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.params.get(name)


def parse_media_type(text: str) -> MediaRange:
    """One media type with its parameters; quoted values lose their quotes."""
    kind, *rest = _split(text, ";")
    params: dict[str, str] = {}
    for item in rest:
        name, _, value = item.partition("=")
        if name.strip():
            params[name.strip().lower()] = value.strip().strip('"')
    return MediaRange(type=kind.strip().lower(), params=params)


def parse_accept(header: str | None) -> list[MediaRange]:
    """The media ranges of an Accept header in order of preference (q), */* when absent."""
    if not header or not header.strip():
        return [MediaRange(type="*/*", params={})]
    ranges = [parse_media_type(item) for item in _split(header, ",") if item.strip()]
    ranked = sorted(enumerate(ranges), key=lambda pair: (-_quality(pair[1]), pair[0]))
    return [r for _, r in ranked if _quality(r) > 0]


def _quality(media: MediaRange) -> float:
    try:
        return float(media.params.get("q", "1"))
    except ValueError:
        return 1.0


def _split(text: str, separator: str) -> list[str]:
    """Split on separator outside double quotes (type="application/dicom" holds a /)."""
    parts, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def accepts_json(header: str | None) -> bool:
    """Whether a search or metadata answer in DICOM JSON is acceptable."""
    return any(r.type in (DICOM_JSON, "application/json", "application/*", "*/*") for r in parse_accept(header))


@attrs.frozen
class Wanted:
    """What a multipart retrieve answers with: the parts' media type and the transfer
    syntax (AS_STORED: as each instance is stored)."""

    media_type: str
    transfer_syntax: str


def wanted_multipart(header: str | None, part_type: str, default_syntax: str | None) -> Wanted | None:
    """The first acceptable multipart/related choice with parts of `part_type`, or None.
    A range naming no transfer syntax gets `default_syntax` (PS3.18 8.7.3.5: explicit VR
    little endian for application/dicom; None: as stored)."""
    for media in parse_accept(header):
        kind = media.get("type")
        if media.type in (MULTIPART, "multipart/*", "*/*") and (kind is None or kind.lower() == part_type):
            syntax = media.get("transfer-syntax") or default_syntax or AS_STORED
            return Wanted(media_type=part_type, transfer_syntax=syntax)
        if media.type == part_type:  # single-part types are answered as multipart of them
            return Wanted(media_type=part_type, transfer_syntax=media.get("transfer-syntax") or default_syntax or AS_STORED)
    return None


def wanted_instances(header: str | None) -> Wanted | None:
    return wanted_multipart(header, DICOM, EXPLICIT_VR_LITTLE_ENDIAN)
