"""Typed errors of the storage layer, each carrying what the DIMSE reply needs.

The association actor turns these into a response status and an Error Comment
(0000,0902), which is an LO: at most 64 characters, hence ``comment``.
"""

from __future__ import annotations

# DIMSE status codes the storage layer can justify (PS3.4 Annex B and C, PS3.7 Annex C).
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900  # C-STORE; for C-FIND/MOVE/GET: identifier
STATUS_CANNOT_UNDERSTAND = 0xC000  # C-STORE "cannot understand"; C-FIND "unable to process"

ERROR_COMMENT_MAX = 64


class StorageError(Exception):
    """Base of every error raised on purpose by triopacs.storage."""

    status: int = STATUS_CANNOT_UNDERSTAND

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status

    @property
    def comment(self) -> str:
        """The reason cut to fit an Error Comment (LO, 64 characters)."""
        text = self.reason.replace("\\", "/")  # a backslash would split the LO into values
        return text if len(text) <= ERROR_COMMENT_MAX else text[: ERROR_COMMENT_MAX - 3] + "..."


class InvalidUID(StorageError):
    """A UID that must become part of a path is not a well-formed DICOM UID."""

    def __init__(self, attribute: str, value: object) -> None:
        super().__init__(f"invalid {attribute}: {value!r}", status=STATUS_CANNOT_UNDERSTAND)
        self.attribute = attribute
        self.value = value


class UnsafePath(StorageError):
    """A computed path would leave the storage root (a bug or an attack; never written)."""


class InvalidDataset(StorageError):
    """A received dataset the archive will not index (missing UIDs, wrong SOP class, garbage)."""


class InvalidPart10File(StorageError):
    """A stored file whose Part 10 header cannot be read back."""


class QueryError(StorageError):
    """A C-FIND/C-MOVE/C-GET identifier this SCP cannot process as asked."""

    status = STATUS_DATASET_DOES_NOT_MATCH_SOP_CLASS
