"""What a storage tier actor (tiers/actor.py) accepts and answers, and the event it
publishes when its health changes. Keys are the tier's own (see storage/tier_settings.py);
paths are local files, as text."""

import attrs

from ...runtime.errors import ReplyError
from ...runtime.messages import message
from ....storage.attributes import InstanceRecord
from ....storage.object_checks import ExpectedObject, ObjectCheck
from ....storage.object_writer import ObjectWriter
from ....storage.objects import StoredObject


@message("tier.put-file")
class PutFile:
    """Copy the local file `path` into the tier as `key`; its size and SHA-256 (from the
    index) go along and are checked."""

    key: str
    path: str
    size: int
    sha256: str


@message("tier.fetch-file")
class FetchFile:
    """Copy `key` into a new local file `dest`, streaming, checked against `expected_sha256`
    (else the checksum stored with the object)."""

    key: str
    dest: str
    expected_sha256: str | None = None
    size: int | None = None  # when known: bounds how long the download may take


@message("tier.stage")
class Stage:
    """A local file holding `key` that a retrieve may read: the object itself for a
    local tier, else a checked copy under the staging directory (removed by the caller)."""

    key: str
    expected_sha256: str | None = None
    size: int | None = None  # when known: bounds how long the download may take


@message("tier.staged")
class Staged:
    path: str
    temporary: bool  # a copy: the caller removes it when done


@message("tier.stage-many")
class StageMany:
    """Stage several objects in one message (a WADO-RS batch): one answer per Stage,
    in order, a failed one as its reason instead of failing the others."""

    stages: tuple[Stage, ...]


@message("tier.staged-many")
class StagedMany:
    staged: tuple[Staged | None, ...]  # None where it failed
    problems: tuple[str, ...]  # why, "" where it was staged


@message("tier.head")
class Head:
    key: str


@message("tier.delete")
class DeleteObject:
    """Remove `key`; an object already gone is no error."""

    key: str


@message("tier.list")
class ListObjects:
    """One page of the objects under `prefix`, after `cursor`."""

    prefix: str = ""
    cursor: str | None = None
    limit: int = 1000


# -- what only a local tier does --------------------------------------------------------


@message("tier.open-writer")
class OpenWriter:
    """A writer for a new object, to stream its bytes into on the caller's worker threads
    while they arrive (a C-STORE). `key` None: not known yet (the temp file goes to the
    tier's incoming area). Nothing is under any key until `Place`."""

    key: str | None = None


@message("tier.writer-opened")
class WriterOpened:
    writer: ObjectWriter


@message("tier.place")
class Place:
    """Write the writer's tail, make it durable and put it under `key`. Placed.placed is
    False when `key` exists and `overwrite` is False (the writer may be placed again)."""

    writer: ObjectWriter
    key: str
    overwrite: bool


@message("tier.placed")
class Placed:
    placed: bool
    size: int
    sha256: str


@message("tier.remove")
class RemoveObjects:
    """Remove these objects durably (a deletion journal's step 2); gone already is done."""

    keys: tuple[str, ...]


@message("tier.removed")
class Removed:
    done: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]  # (key, why): still there


@message("tier.check")
class CheckObjects:
    """Are these objects what the index says (storage/object_checks.py)?"""

    expected: tuple[ExpectedObject, ...]


@message("tier.checked")
class ObjectsChecked:
    checks: tuple[ObjectCheck, ...]


@message("tier.read-record")
class ReadRecord:
    """Parse an object the index does not know, for re-indexing it."""

    key: str


@message("tier.record-read")
class RecordRead:
    record: InstanceRecord


@message("tier.stored")
class Stored:
    object: StoredObject


@message("tier.deleted")
class Deleted:
    key: str


@message("tier.page")
class ObjectPage:
    objects: tuple[StoredObject, ...]
    cursor: str | None


@message("tier.get-statistics")
class GetTierStatistics:
    pass


@message("tier.statistics")
class TierStatistics:
    name: str
    kind: str
    prefix: str
    healthy: bool
    problem: str = ""  # why it is unhealthy
    puts: int = 0
    fetches: int = 0
    deletes: int = 0
    failures: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


@attrs.frozen(kw_only=True)
class TierHealthChanged:
    """Published when a tier starts failing (transient errors: unreachable, 5xx) or works again."""

    tier: str
    healthy: bool
    problem: str = ""


class TierFailure(ReplyError):
    """The tier could not do what was asked; `missing` when the object is not there."""

    def __init__(self, message: str, *, missing: bool = False, transient: bool = False) -> None:
        super().__init__(message)
        self.missing = missing
        self.transient = transient
