"""What GET {prefix}/capabilities (and OPTIONS {prefix}/) answers: the routes served,
with the media types and query parameters each takes - a short conformance
description in JSON (docs/dicomweb.md says it in words)."""

from __future__ import annotations

from ...protocol.catalog import EXPLICIT_VR_LITTLE_ENDIAN
from .media import DICOM, DICOM_JSON, OCTET_STREAM

MEDIA = {
    "search": [DICOM_JSON],
    "retrieve": [f'multipart/related; type="{DICOM}"; transfer-syntax=* (as stored) or {EXPLICIT_VR_LITTLE_ENDIAN} (default)'],
    "metadata": [DICOM_JSON],
    "frames": [f'multipart/related; type="{OCTET_STREAM}" (uncompressed)', 'multipart/related; type="image/jpeg|image/jls|image/jp2|image/dicom-rle" (as stored)'],
    "bulkdata": [f'multipart/related; type="{OCTET_STREAM}"'],
    "store": [f'multipart/related; type="{DICOM}" in, {DICOM_JSON} out'],
}
SEARCH_PARAMETERS = [
    "{attribute}={value} (keyword or tag; wild cards * ?, ranges A-B for DA/TM/DT, UID lists a\\b, as C-FIND)",
    "includefield={attribute}[,...] or all", "limit", "offset",
    "fuzzymatching (person names always match case-insensitively; nothing fuzzier: a Warning says so)",
]


def _kind(name: str) -> str:
    if name.startswith("search"):
        return "search"
    if name.endswith("metadata"):
        return "metadata"
    if name.startswith("store"):
        return "store"
    for kind in ("frames", "bulkdata"):
        if kind in name:
            return kind
    return "retrieve" if name.startswith("retrieve") else ""


def describe(base: str, routes) -> dict:
    return {
        "base": base,
        "services": ["QIDO-RS", "WADO-RS", "STOW-RS"],
        "resources": [
            {
                "method": r.method, "path": r.path, "name": r.name, "permission": r.permission,
                "media_types": MEDIA.get(_kind(r.name), ["application/json"]),
                **({"parameters": SEARCH_PARAMETERS} if _kind(r.name) == "search" else {}),
            }
            for r in routes
        ],
    }
