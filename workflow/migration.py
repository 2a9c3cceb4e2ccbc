"""The HSM migration service: /node/services/migration moves instances between storage
tiers by last access (seed 003, HSM policy and migration service).

A cycle (RunMigration; the built-in `migration` task kind and `triopacs migrate --now`
ask for one) does, in order:

1. Recovery: every journal row (storage/hsm_db.py) left by a crash or a failed step is
   finished or rolled back - the copy the index does not name is deleted, then the row.
2. Reconciliation (when delete_after_migration): each configured tier is listed under
   its prefix; an object no instance or journal row names is a stray and is deleted.
3. hot -> warm, then warm -> cold: instances not accessed for `hot_to_warm` /
   `warm_to_cold` days, at least `min_size` bytes, least recently accessed first, up to
   `max_instances_per_cycle` and `max_bytes_per_cycle`, `max_concurrent_migrations` at once.

A batch (up to BATCH instances and BATCH_BYTES of one study; a study's batches one after
the other, max_concurrent_migrations studies at once) under one hold of the
study's MIGRATION lock: journal rows (one transaction); each instance copied - a local
file of the source (a tier's own file, or a checked download) uploaded to the target -
and checked against the index (size, SHA-256), max_concurrent_migrations at once; the
rows of the good copies switched in one transaction (each only if it still names the
source); the copies the index no longer names deleted; the journal rows dropped (one
transaction). A failure anywhere before the switch leaves the index naming the source;
the copy is removed now or, if its tier is down, by the next cycle's recovery. Never is
an instance left without a copy the index names (docs/storage-tiers.md).
"""

import time

import attrs
import trio

from ..actors import Actor, ActorError, AskTimeout, ReplyError, message
from ..actors.node.index_hsm import (
    BeginMigration,
    EndMigration,
    KnownKeys,
    ListMigrationCandidates,
    ListMigrationJournal,
    SwitchTier,
)
from ..actors.node.tiers import DeleteObject, ListObjects, RemoveObjects, tier_path
from ..storage.hsm_db import COPYING, ABANDONED, SWITCHED, Move, Placement
from ..storage.objects import instance_key
from ..storage.tier_settings import HOT
from .locks.client import study_lock
from .locks.types import LockError, LockType
from .tier_copy import copy_checked

DAY = 86400.0
MIGRATION_PATH = "/node/services/migration"
INDEX_PATH = "/node/services/index"
LOCKS_PATH = "/node/services/locks"
FAILED_LISTED = 100  # failed UIDs a report lists (all are counted)
BATCH = 64  # instances of one study journaled, switched and settled together
BATCH_BYTES = 256 * 1024 * 1024


@attrs.frozen(kw_only=True)
class MigrationPolicy:
    warm_tier: str = ""
    cold_tier: str = ""
    hot_to_warm: float = 30.0  # days since last access
    warm_to_cold: float = 90.0
    min_size: int = 0
    max_instances_per_cycle: int = 1000
    max_bytes_per_cycle: int = 10 * 1024**3
    max_concurrent_migrations: int = 4
    delete_after_migration: bool = True
    lock_wait: float = 30.0  # how long to wait for a study's lock before skipping it this cycle


@message("migration.run")
class RunMigration:
    dry_run: bool = False


@message("migration.report")
class MigrationReport:
    dry_run: bool
    migrated: int = 0
    bytes: int = 0
    skipped: int = 0  # locked studies, instances replaced meanwhile
    failed: tuple[tuple[str, str], ...] = ()  # (SOP Instance UID, why), the first FAILED_LISTED
    failures: int = 0
    planned: tuple[tuple[str, str, str], ...] = ()  # dry run: (SOP Instance UID, from, to)
    recovered: int = 0  # journal rows finished or rolled back
    strays_removed: int = 0
    started_at: float = 0.0
    duration: float = 0.0

    def summary(self) -> str:
        verb = "would migrate" if self.dry_run else "migrated"
        count = len(self.planned) if self.dry_run else self.migrated
        return (
            f"{verb} {count} instances ({self.bytes} bytes), {self.skipped} skipped, {self.failures} failed, "
            f"{self.recovered} recovered, {self.strays_removed} strays removed in {self.duration:.1f} s"
        )


@attrs.frozen(kw_only=True)
class MigrationCycleFinished:
    """Published after every cycle (an event, like cleanup's report)."""

    report: MigrationReport


@attrs.frozen(kw_only=True)
class MigrationProgress:
    """Published after each batch of a cycle: what is done of what was chosen so far
    (`chosen` grows as each tier pair's candidates are picked)."""

    migrated: int
    skipped: int
    failures: int
    bytes: int
    chosen: int


class MigrationRefused(ReplyError):
    pass


@attrs.define
class _Tally:
    migrated: int = 0
    bytes: int = 0
    skipped: int = 0
    failures: int = 0
    failed: list = attrs.field(factory=list)
    planned: list = attrs.field(factory=list)
    chosen: int = 0

    def progress(self) -> MigrationProgress:
        return MigrationProgress(
            migrated=self.migrated, skipped=self.skipped, failures=self.failures, bytes=self.bytes, chosen=self.chosen
        )

    def fail(self, uid: str, why: str) -> None:
        self.failures += 1
        if len(self.failed) < FAILED_LISTED:
            self.failed.append((uid, why))


def _unused_copy(move: Move) -> tuple[str, str, bool]:
    """(tier, key, whether to delete it) of the copy a journaled move leaves unused."""
    if move.state == SWITCHED:
        return move.source_tier, move.source_key, move.delete_source
    return move.target_tier, move.target_key, True  # copying or abandoned: the index names the source


def _study_batches(placements: list[Placement]) -> list[list[list[Placement]]]:
    """The placements grouped by study (in the order first seen), each study's cut into
    batches of at most BATCH instances and BATCH_BYTES (one instance may exceed it
    alone): a batch holds its study's lock, and a C-STORE of that study waits for it."""
    by_study: dict[str, list[Placement]] = {}
    for placement in placements:
        by_study.setdefault(placement.study_instance_uid, []).append(placement)
    studies: list[list[list[Placement]]] = []
    for group in by_study.values():
        batches: list[list[Placement]] = []
        batch: list[Placement] = []
        for placement in group:
            if batch and (len(batch) == BATCH or sum(p.size for p in batch) + placement.size > BATCH_BYTES):
                batches.append(batch)
                batch = []
            batch.append(placement)
        batches.append(batch)
        studies.append(batches)
    return studies


class MigrationService(Actor):
    accepts = (RunMigration,)
    replayable = False  # it acts on the tiers' bytes

    def __init__(self, policy: MigrationPolicy, prefixes: dict[str, str]) -> None:
        """`prefixes`: each configured tier's key prefix (the hot tier's keys are the index's paths)."""
        self.policy = policy
        self.prefixes = prefixes
        self.running = trio.Lock()  # one cycle at a time; a second request waits its turn

    async def on_start(self) -> None:
        # Finish what a crash interrupted before anything else moves.
        self.ctx.nursery.start_soon(self._recover_at_start)

    async def _recover_at_start(self) -> None:
        async with self.running:
            recovered = await self._recover()
        if recovered:
            self.ctx.log.warning("finished interrupted migrations", recovered=recovered)

    async def handle(self, message):
        match message:
            case RunMigration(dry_run=dry_run):
                self.ctx.nursery.start_soon(self._cycle_and_reply, dry_run, self.ctx.defer_reply())

    async def _cycle_and_reply(self, dry_run: bool, reply) -> None:
        try:
            async with self.running:
                report = await self._cycle(dry_run)
        except Exception as error:  # an index that is gone: the cycle failed as a whole
            self.ctx.log.exception("migration cycle failed")
            reply.fail(MigrationRefused(f"migration cycle failed: {error}"))
            return
        self.ctx.log.info("migration cycle", summary=report.summary(), failed=list(report.failed[:10]))
        self.ctx.publish(MigrationCycleFinished(report=report))
        reply.send(report)

    # -- a cycle -------------------------------------------------------------------------------

    async def _cycle(self, dry_run: bool) -> MigrationReport:
        started = time.time()
        tally = _Tally()
        recovered = strays = 0
        if not dry_run:
            recovered = await self._recover()
            if self.policy.delete_after_migration:
                for tier in self.prefixes:
                    strays += await self._reconcile(tier)
        budget = [self.policy.max_instances_per_cycle, self.policy.max_bytes_per_cycle]
        stages = [(HOT, self.policy.warm_tier, self.policy.hot_to_warm), (self.policy.warm_tier, self.policy.cold_tier, self.policy.warm_to_cold)]
        for source, target, days in stages:
            if source and target and budget[0] > 0:
                await self._stage(source, target, started - days * DAY, budget, tally, dry_run)
        return MigrationReport(
            dry_run=dry_run, migrated=tally.migrated, bytes=tally.bytes, skipped=tally.skipped, failed=tuple(tally.failed),
            failures=tally.failures, planned=tuple(tally.planned), recovered=recovered, strays_removed=strays,
            started_at=started, duration=time.time() - started,
        )

    async def _stage(self, source: str, target: str, before: float, budget: list[int], tally: _Tally, dry_run: bool) -> None:
        index = self.ctx.lookup(INDEX_PATH)
        found = await index.ask(
            ListMigrationCandidates(tier=source, accessed_before=before, min_size=self.policy.min_size, limit=budget[0])
        )
        chosen: list[Placement] = []
        for placement in found.items:
            if budget[0] <= 0 or placement.size > budget[1]:
                break
            budget[0] -= 1
            budget[1] -= placement.size
            chosen.append(placement)
        if dry_run:
            tally.planned += [(p.sop_instance_uid, source, target) for p in chosen]
            tally.bytes += sum(p.size for p in chosen)
            return
        tally.chosen += len(chosen)
        copies = trio.CapacityLimiter(self.policy.max_concurrent_migrations)
        studies = trio.CapacityLimiter(self.policy.max_concurrent_migrations)
        async with trio.open_nursery() as nursery:
            for batches in _study_batches(chosen):
                async with studies:  # no more tasks than slots at a time
                    pass
                nursery.start_soon(self._study_counted, batches, target, tally, copies, studies)

    async def _study_counted(self, batches: list[list[Placement]], target: str, tally: _Tally, copies, studies) -> None:
        """One study's batches one after the other: queued side by side, they would only
        wait for each other's lock (and give up after lock_wait)."""
        async with studies:
            for batch in batches:
                await self._batch_counted(batch, target, tally, copies)

    async def _batch_counted(self, batch: list[Placement], target: str, tally: _Tally, copies) -> None:
        """One study's instances (up to BATCH) under one hold of its MIGRATION lock."""
        study = batch[0].study_instance_uid
        try:
            async with study_lock(
                self.ctx.lookup(LOCKS_PATH), study, LockType.MIGRATION,
                reason="HSM migration", holder="migration", wait=self.policy.lock_wait,
            ):
                await self._migrate(batch, target, tally, copies)
        except LockError as error:
            tally.skipped += len(batch)
            self.ctx.log.info("study locked: left for the next cycle", study_instance_uid=study, error=str(error))
        except (ReplyError, ActorError, AskTimeout) as error:  # the index failed the batch's journal or switch
            for placement in batch:
                tally.fail(placement.sop_instance_uid, str(error))
        self.ctx.publish(tally.progress())  # for a progress bar (triopacs migrate)

    async def _migrate(self, batch: list[Placement], target: str, tally: _Tally, copies: trio.CapacityLimiter) -> None:
        """Journal the batch (one transaction), copy and check each instance (at most
        max_concurrent_migrations at once), switch the index rows of the good copies
        (one transaction), then delete what the index no longer names and drop the
        journal rows (one transaction). A copy that failed is removed again, or left
        to the next cycle's recovery when its tier cannot remove it now."""
        index = self.ctx.lookup(INDEX_PATH)
        moves = [self._move_of(placement, target) for placement in batch]
        await index.ask(BeginMigration(moves=tuple(moves)))
        copied: list[Move] = []
        switched: set[str] = set()
        try:
            async with trio.open_nursery() as nursery:
                for move in moves:
                    nursery.start_soon(self._copy_counted, move, copied, tally, copies)
            if copied:
                switched = set((await index.ask(SwitchTier(moves=tuple(copied)))).switched)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(120):
                settled = await self._settle(
                    [attrs.evolve(m, state=SWITCHED if m.sop_instance_uid in switched else ABANDONED) for m in moves]
                )
        for move in copied:
            if move.sop_instance_uid in switched:
                tally.migrated += 1
                tally.bytes += move.size
            else:
                tally.skipped += 1  # stored again meanwhile: the new copy stays where it is
        if settled < len(moves):
            self.ctx.log.warning("copies left for the next recovery", count=len(moves) - settled)

    def _move_of(self, placement: Placement, target: str) -> Move:
        return Move(
            sop_instance_uid=placement.sop_instance_uid,
            study_instance_uid=placement.study_instance_uid,
            source_tier=placement.tier,
            source_key=placement.key,
            target_tier=target,
            target_key=instance_key(
                self.prefixes[target], placement.study_instance_uid, placement.series_instance_uid, placement.sop_instance_uid
            ),
            size=placement.size,
            sha256=placement.sha256,
            delete_source=self.policy.delete_after_migration,
        )

    async def _copy_counted(self, move: Move, copied: list[Move], tally: _Tally, copies: trio.CapacityLimiter) -> None:
        async with copies:
            try:
                await self._copy(move)
            except (ReplyError, ActorError, AskTimeout, OSError) as error:
                tally.fail(move.sop_instance_uid, str(error))
                return
        copied.append(move)

    async def _copy(self, move: Move) -> None:
        await copy_checked(
            self.ctx.lookup, source_tier=move.source_tier, source_key=move.source_key, target_tier=move.target_tier,
            target_key=move.target_key, size=move.size, sha256=move.sha256,
        )

    # -- journal -------------------------------------------------------------------------------

    async def _settle(self, moves: list[Move]) -> int:
        """Delete the copies the index does not name (sources after a switch when asked
        to, targets otherwise), then drop the journal rows of those done, in one
        transaction; the rows of copies a tier could not delete now stay for the next
        recovery. Returns how many moves were settled."""
        unused = [(move, *_unused_copy(move)) for move in moves]
        # An instance stored again at the same place since is named by its row: keep it.
        named: set[tuple[str, str]] = set()
        for tier in {tier for _, tier, _, _ in unused}:
            keys = tuple(key for _, t, key, remove in unused if t == tier and remove)
            if keys:
                found = await self.ctx.lookup(INDEX_PATH).ask(KnownKeys(tier=tier, keys=keys, journal=False))
                named |= {(tier, key) for key in found.known}
        done: list[str] = []
        doomed: dict[str, dict[str, Move]] = {}  # tier -> key -> move
        for move, tier, key, remove in unused:
            if remove and (tier, key) not in named:
                doomed.setdefault(tier, {})[key] = move
            else:
                done.append(move.sop_instance_uid)
        async with trio.open_nursery() as nursery:
            for tier, moves_by_key in doomed.items():
                nursery.start_soon(self._remove, tier, moves_by_key, done)
        if done:
            await self.ctx.lookup(INDEX_PATH).ask(EndMigration(sop_instance_uids=tuple(done)))
        return len(done)

    async def _remove(self, tier: str, moves_by_key: dict[str, Move], done: list[str]) -> None:
        """One ask per tier and batch: a local tier unlinks them in one thread call."""
        try:
            removal = await self.ctx.lookup(tier_path(tier)).ask(RemoveObjects(keys=tuple(moves_by_key)), timeout=None)
        except (ReplyError, ActorError, AskTimeout) as error:
            self.ctx.log.warning("copies not removed yet; the journal keeps them", tier=tier, count=len(moves_by_key), error=str(error))
            return
        done.extend(moves_by_key[key].sop_instance_uid for key in removal.done)
        for key, why in removal.failed:
            self.ctx.log.warning(
                "copy not removed yet; the journal keeps it", sop_instance_uid=moves_by_key[key].sop_instance_uid, error=why
            )

    async def _recover(self) -> int:
        journal = await self.ctx.lookup(INDEX_PATH).ask(ListMigrationJournal())
        moves = [move for move in journal.moves if move.state in (COPYING, SWITCHED, ABANDONED)]
        return await self._settle(moves) if moves else 0

    async def _reconcile(self, tier: str) -> int:
        """Delete the objects of `tier` no row names; the number deleted."""
        ref, index = self.ctx.lookup(tier_path(tier)), self.ctx.lookup(INDEX_PATH)
        removed, cursor = 0, None
        try:
            while True:
                page = await ref.ask(ListObjects(cursor=cursor, limit=500), timeout=None)
                keys = tuple(o.key for o in page.objects)
                known = set((await index.ask(KnownKeys(tier=tier, keys=keys))).known) if keys else set()
                for key in keys:
                    if key not in known:
                        await ref.ask(DeleteObject(key=key), timeout=None)
                        removed += 1
                if page.cursor is None:
                    break
                cursor = page.cursor
        except (ReplyError, ActorError, AskTimeout) as error:
            self.ctx.log.warning("tier not reconciled this cycle", tier=tier, error=str(error))
        if removed:
            self.ctx.log.warning("stray objects removed", tier=tier, removed=removed)
        return removed


def migration_policy(hsm, lock_wait: float) -> MigrationPolicy:
    """The policy from [hsm] settings (config.HsmSettings)."""
    return MigrationPolicy(
        warm_tier=hsm.warm_tier, cold_tier=hsm.cold_tier, hot_to_warm=hsm.hot_to_warm, warm_to_cold=hsm.warm_to_cold,
        min_size=hsm.min_size, max_instances_per_cycle=hsm.max_instances_per_cycle, max_bytes_per_cycle=hsm.max_bytes_per_cycle,
        max_concurrent_migrations=hsm.max_concurrent_migrations, delete_after_migration=hsm.delete_after_migration,
        lock_wait=lock_wait,
    )



# -- the built-in task kind ---------------------------------------------------------------------

KIND = "migration"


async def migration(params, ctx) -> str | None:
    """The `migration` task kind: one cycle of the migration service, its report filed
    like cleanup's. Parameter: dry_run (default false). Fails (with the summary) when an
    instance could not be moved."""
    from .maintenance import config_from_params, file_report

    options = config_from_params(_TaskParams, params, KIND)
    report: MigrationReport = await ctx.lookup(MIGRATION_PATH).ask(RunMigration(dry_run=options.dry_run), timeout=None)
    await file_report(
        ctx, kind=KIND, started_at=report.started_at, succeeded=report.failures == 0, summary=report.summary(),
        report={
            "counts": {"migrated": report.migrated, "bytes": report.bytes, "skipped": report.skipped, "failed": report.failures,
                       "recovered": report.recovered, "strays_removed": report.strays_removed},
            "failed": [list(item) for item in report.failed],
            "planned": [list(item) for item in report.planned[:FAILED_LISTED]],
            "duration": report.duration,
        },
    )
    return f"{KIND}: {report.summary()}" if report.failures else None


@attrs.frozen(kw_only=True)
class _TaskParams:
    dry_run: bool = False
