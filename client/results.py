"""What the SCU client's operations give back: frozen values, one per answer."""

from __future__ import annotations

from pathlib import Path

import attrs
from pydicom.dataset import Dataset

from ..protocol.status import Service, StatusClass, describe, status_class


@attrs.frozen(kw_only=True)
class MoveOriginator:
    """Who asked for the C-MOVE this C-STORE is a sub-operation of (PS3.7 9.1.1.1.7-8)."""

    ae_title: str
    message_id: int


@attrs.frozen(kw_only=True)
class StoreResult:
    """The peer's answer to one C-STORE; any status, Failure included, comes back as one."""

    status: int
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str  # what went on the wire
    bytes_sent: int  # dataset bytes
    converted: bool = False  # re-encoded from the file's little endian syntax into the other
    error_comment: str | None = None

    @property
    def status_class(self) -> StatusClass:
        return status_class(self.status)

    @property
    def meaning(self) -> str:
        return describe(self.status, Service.STORAGE).meaning

    @property
    def ok(self) -> bool:
        """Stored: Success or Warning (the peer kept the instance, perhaps coerced)."""
        return self.status_class in (StatusClass.SUCCESS, StatusClass.WARNING)


@attrs.frozen(kw_only=True)
class RetrieveProgress:
    """One C-MOVE / C-GET response: the sub-operation counts the peer reported.

    Counts are None when the peer left them out (allowed in the final response).
    `received` counts the instances this client took in (C-GET only).
    """

    operation: str  # "C-MOVE" or "C-GET"
    status: int
    final: bool
    remaining: int | None = None
    completed: int | None = None
    failed: int | None = None
    warning: int | None = None
    failed_sop_instance_uids: tuple[str, ...] = ()
    error_comment: str | None = None
    received: int = 0

    @property
    def status_class(self) -> StatusClass:
        return status_class(self.status)

    @property
    def meaning(self) -> str:
        return describe(self.status, Service.MOVE if self.operation == "C-MOVE" else Service.GET).meaning

    @property
    def ok(self) -> bool:
        """The retrieve finished and every sub-operation succeeded."""
        return self.final and self.status_class is StatusClass.SUCCESS and not self.failed and not self.warning


@attrs.frozen(kw_only=True)
class ReceivedInstance:
    """An instance a C-GET brought in: written to `path` (folder mode) or held in `data`
    (callback mode: the dataset bytes, in `transfer_syntax_uid`)."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    path: Path | None = None
    data: bytes | None = attrs.field(default=None, repr=False)

    def dataset(self) -> Dataset:
        """Decode it with pydicom (blocking; the whole dataset in memory)."""
        from .datasets import decode_dataset, read_part10

        if self.path is not None:
            return read_part10(self.path)
        assert self.data is not None
        return decode_dataset(self.data, self.transfer_syntax_uid)
