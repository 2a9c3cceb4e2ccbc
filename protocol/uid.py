"""DICOM UID grammar (PS3.5 section 9.1) and our own implementation identity."""

import re
import uuid

# Components of digits separated by dots; no component has a leading zero unless it is "0".
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
MAX_UID_LENGTH = 64

# A UUID-derived root (PS3.5 B.2): 2.25 followed by a UUID as one decimal integer.
IMPLEMENTATION_CLASS_UID = "2.25.98417735240398612387231716398047729091"
IMPLEMENTATION_VERSION_NAME = "TRIOPACS_010"


def is_valid_uid(value: str) -> bool:
    """True if value is a well-formed UID, safe to use as a file name component."""
    return len(value) <= MAX_UID_LENGTH and _UID.fullmatch(value) is not None


def new_uid() -> str:
    """A fresh UID under the 2.25 root."""
    return f"2.25.{uuid.uuid4().int}"
