"""The index's HSM requests (storage/hsm_db.py): what the migration service and the
retrieve services ask of the index actor, which runs each as one call on its reader
(reads) or as one transaction on its writer (writes)."""

import time

from ...storage.hsm_db import (
    Move,
    Placement,
    TierUsage,
    begin_migration,
    end_migration,
    journal_entries,
    known_keys,
    migration_candidates,
    study_placements,
    switch_tier,
    tier_usage,
    touch_instances,
)
from ..runtime.messages import message


@message("index.migration-candidates")
class ListMigrationCandidates:
    """Instances of `tier` not accessed since `accessed_before` (epoch seconds), of at
    least `min_size` bytes, least recently accessed first."""

    tier: str
    accessed_before: float
    min_size: int = 0
    limit: int = 1000


@message("index.study-placements")
class ListStudyPlacements:
    """Every instance of a study, with its tier, key, size and SHA-256."""

    study_instance_uid: str


@message("index.placements")
class Placements:
    items: tuple[Placement, ...]


@message("index.begin-migration")
class BeginMigration:
    """Journal these moves (one transaction)."""

    moves: tuple[Move, ...]


@message("index.switch-tier")
class SwitchTier:
    """Point each instance at its copy in the target tier, if its row still names the
    source (one transaction)."""

    moves: tuple[Move, ...]


@message("index.tier-switched")
class TierSwitched:
    switched: tuple[str, ...]  # SOP Instance UIDs


@message("index.end-migration")
class EndMigration:
    sop_instance_uids: tuple[str, ...]


@message("index.list-migration-journal")
class ListMigrationJournal:
    pass


@message("index.migration-journal")
class MigrationJournal:
    moves: tuple[Move, ...]


@message("index.known-keys")
class KnownKeys:
    """Which of these keys of `tier` a row (instance or journal) names."""

    tier: str
    keys: tuple[str, ...]
    journal: bool = True  # False: only what instance rows name


@message("index.keys")
class Keys:
    known: tuple[str, ...]


@message("index.get-tier-usage")
class GetTierUsage:
    pass


@message("index.tier-usage")
class TierUsageReply:
    usage: tuple[TierUsage, ...]


@message("index.touch-instances")
class TouchInstances:
    """These instances were just retrieved (one update per retrieve request)."""

    sop_instance_uids: tuple[str, ...]


@message("index.done")
class Done:
    pass


HSM_READS = (ListMigrationCandidates, ListStudyPlacements, ListMigrationJournal, KnownKeys, GetTierUsage)
HSM_WRITES = (BeginMigration, SwitchTier, EndMigration, TouchInstances)


async def hsm_request(message, read, write):
    """Answer one HSM request with `read(fn, *args)` (reader thread) or `write(fn, *args)`
    (one transaction on the writer thread)."""
    match message:
        case ListMigrationCandidates(tier=tier, accessed_before=before, min_size=min_size, limit=limit):
            return Placements(items=tuple(await read(migration_candidates, tier, before, min_size, limit)))
        case ListStudyPlacements(study_instance_uid=uid):
            return Placements(items=tuple(await read(study_placements, uid)))
        case ListMigrationJournal():
            return MigrationJournal(moves=tuple(await read(journal_entries)))
        case KnownKeys(tier=tier, keys=keys, journal=journal):
            return Keys(known=tuple(sorted(await read(known_keys, tier, keys, journal))))
        case GetTierUsage():
            return TierUsageReply(usage=tuple(await read(tier_usage)))
        case BeginMigration(moves=moves):
            await write(begin_migration, moves, time.time())
        case SwitchTier(moves=moves):
            return TierSwitched(switched=tuple(await write(switch_tier, moves)))
        case EndMigration(sop_instance_uids=uids):
            await write(end_migration, uids)
        case TouchInstances(sop_instance_uids=uids):
            await write(touch_instances, uids, time.time())
    return Done()
