"""Storage tiers as actors: /node/services/tiers/<name>, one per tier (the hot tier
`local` and each `[[tier]]`), each the owner of its bytes. See docs/storage-tiers.md."""

from .actor import TierActor, discard_staged
from .backends import check_tier
from .messages import (
    DeleteObject,
    Deleted,
    FetchFile,
    GetTierStatistics,
    Head,
    ListObjects,
    ObjectPage,
    PutFile,
    Stage,
    Staged,
    Stored,
    TierFailure,
    TierHealthChanged,
    TierStatistics,
)

TIERS_PATH = "/node/services/tiers"


def tier_path(name: str) -> str:
    return f"{TIERS_PATH}/{name}"


__all__ = [
    "DeleteObject", "Deleted", "FetchFile", "GetTierStatistics", "Head", "ListObjects", "ObjectPage", "PutFile",
    "Stage", "Staged", "Stored", "TIERS_PATH", "TierActor", "TierFailure", "TierHealthChanged", "TierStatistics",
    "check_tier", "discard_staged", "tier_path",
]
