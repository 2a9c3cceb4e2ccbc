"""Storage tiers as actors: /node/services/tiers/<name>, one per tier (the hot tier
`local` and each `[[tier]]`), each the owner of its bytes. See docs/storage-tiers.md."""

from .actor import TierActor, discard_staged
from .backends import check_tier
from .messages import (
    CheckObjects,
    DeleteObject,
    Deleted,
    FetchFile,
    GetTierStatistics,
    Head,
    ListObjects,
    ObjectPage,
    ObjectsChecked,
    OpenWriter,
    Place,
    Placed,
    PutFile,
    ReadRecord,
    RecordRead,
    RemoveObjects,
    Removed,
    Stage,
    StageMany,
    Staged,
    StagedMany,
    Stored,
    TierFailure,
    TierHealthChanged,
    TierStatistics,
    WriterOpened,
)
from ....storage.tier_settings import HOT

TIERS_PATH = "/node/services/tiers"


def tier_path(name: str) -> str:
    return f"{TIERS_PATH}/{name}"


HOT_TIER_PATH = tier_path(HOT)  # the data directory: where every instance arrives


__all__ = [
    "CheckObjects", "DeleteObject", "Deleted", "FetchFile", "GetTierStatistics", "HOT_TIER_PATH", "Head",
    "ListObjects", "ObjectPage", "ObjectsChecked", "OpenWriter", "Place", "Placed", "PutFile", "ReadRecord",
    "RecordRead", "RemoveObjects", "Removed", "Stage", "StageMany", "Staged", "StagedMany", "Stored", "TIERS_PATH", "TierActor", "TierFailure",
    "TierHealthChanged", "TierStatistics", "WriterOpened", "check_tier", "discard_staged", "tier_path",
]
