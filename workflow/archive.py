"""The built-in `archive` task kind (seed 5.1.5): studies older than `archive_after` days
are copied to a destination tier (a [[tier]]: another directory, S3 or Azure) as one
package per study, verified, and optionally deleted here.

A package is the study's Part 10 files as stored plus a manifest, under
`archive/{StudyUID}/` in the destination tier:

    archive/{StudyUID}/{SeriesUID}/{SOPUID}.dcm     each instance, byte for byte
    archive/{StudyUID}/manifest.json                written last: what the package holds

The manifest lists every instance (SOP Instance UID, series, key, size, SHA-256) and is
written only after every file is in the tier and checked (size and SHA-256, by the
upload itself or a head); a package without a manifest is incomplete and is written
again by the next run. A study whose manifest exists is archived already and skipped.

Per study, under its EXCLUSIVE lock (try-only: a locked study waits for the next run):
the files are copied from whichever tier holds each (staged like a retrieve), checked,
the manifest written; with `delete_after_archive` the study is then deleted here
through the index's crash-safe deletion - only a study wholly in the hot tier (the
deletion removes files of the data directory only); others are archived and kept.

`triopacs restore` (cli_tiers.py) brings a package back: it reads the manifest,
fetches each file checked against it, and stores them into the node.
"""

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..actors import ActorError, AskTimeout, ReplyError
from ..actors.node.index import DeleteStudy, ListStudiesStoredBefore
from ..actors.node.index_hsm import ListStudyPlacements
from ..actors.node.tiers import FetchFile, Head, PutFile, tier_path
from ..actors.node.tiers.messages import TierFailure
from ..actors.runtime.threads import run_sync_in_thread
from ..storage.objects import instance_key
from ..storage.local_store import hash_file
from ..storage.tier_settings import HOT
from .locks.client import study_lock
from .locks.types import LockError, LockType
from .maintenance import DAY, INDEX_PATH, LOCKS_PATH, config_from_params, file_report, holder_name
from .tasks.kinds import TaskContext
from .tier_copy import copy_checked

KIND = "archive"
PACKAGE_PREFIX = "archive/"
MANIFEST = "manifest.json"


@attrs.frozen(kw_only=True)
class ArchiveConfig:
    destination: str = ""  # a [[tier]] name
    archive_after: float = 365.0  # days since the study's newest instance arrived
    max_archives_per_cycle: int = 10
    delete_after_archive: bool = False
    staging: str = ""  # a local directory for the manifest while it is written

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "ArchiveConfig":
        return config_from_params(cls, params, KIND)


def package_keys(study_uid: str) -> tuple[str, str]:
    """(the package's prefix, its manifest's key)."""
    prefix = f"{PACKAGE_PREFIX}{study_uid}/"
    instance_key(PACKAGE_PREFIX, study_uid, "1", "1")  # the study UID is checked before it becomes a key
    return prefix, prefix + MANIFEST


async def archive_study(ctx: TaskContext, config: ArchiveConfig, study_uid: str) -> dict[str, Any]:
    """Write and check one study's package; its manifest."""
    tier = ctx.lookup(tier_path(config.destination))
    placements = (await ctx.lookup(INDEX_PATH).ask(ListStudyPlacements(study_instance_uid=study_uid))).items
    entries = []
    for placement in placements:
        key = instance_key(PACKAGE_PREFIX, study_uid, placement.series_instance_uid, placement.sop_instance_uid)
        await copy_checked(
            ctx.lookup, source_tier=placement.tier, source_key=placement.key, target_tier=config.destination,
            target_key=key, size=placement.size, sha256=placement.sha256,
        )
        entries.append({
            "sop_instance_uid": placement.sop_instance_uid, "series_instance_uid": placement.series_instance_uid,
            "key": key, "size": placement.size, "sha256": placement.sha256,
        })
    manifest = {"study_instance_uid": study_uid, "archived_at": time.time(), "instances": entries}
    _, manifest_key = package_keys(study_uid)
    staging = Path(config.staging)
    staging.mkdir(parents=True, exist_ok=True)
    local = staging / f"manifest-{study_uid}.json"
    local.write_text(json.dumps(manifest, sort_keys=True, indent=1))
    try:
        found = await run_sync_in_thread(hash_file, local)
        await tier.ask(PutFile(key=manifest_key, path=str(local), size=found.size, sha256=found.sha256), timeout=None)
    finally:
        local.unlink(missing_ok=True)
    return manifest


async def _archived(ctx: TaskContext, config: ArchiveConfig, study_uid: str) -> bool:
    try:
        await ctx.lookup(tier_path(config.destination)).ask(Head(key=package_keys(study_uid)[1]), timeout=None)
    except TierFailure as failure:
        if failure.missing:
            return False
        raise
    return True


async def archive(params: Mapping[str, Any], ctx: TaskContext) -> str | None:
    """The `archive` task kind; fails (with the summary) when a study could not be archived."""
    config = ArchiveConfig.from_params(params)
    started = time.time()
    archived, deleted, kept, skipped, failed = [], [], [], [], []
    cursor = None
    while len(archived) < config.max_archives_per_cycle:
        page = await ctx.lookup(INDEX_PATH).ask(ListStudiesStoredBefore(before=started - config.archive_after * DAY, after=cursor, limit=200))
        for study in page.studies:
            if len(archived) >= config.max_archives_per_cycle:
                break
            uid = study.study_instance_uid
            try:
                if await _archived(ctx, config, uid):
                    continue
                async with study_lock(ctx.lookup(LOCKS_PATH), uid, LockType.EXCLUSIVE, reason="archive", holder=holder_name(ctx), try_only=True):
                    manifest = await archive_study(ctx, config, uid)
                    archived.append(uid)
                    if config.delete_after_archive:
                        tiers = {p.tier for p in (await ctx.lookup(INDEX_PATH).ask(ListStudyPlacements(study_instance_uid=uid))).items}
                        if tiers <= {HOT} and len(manifest["instances"]):
                            outcome = await ctx.lookup(INDEX_PATH).ask(DeleteStudy(study_instance_uid=uid), timeout=600)
                            (deleted if outcome.study.retired else kept).append(uid)
                        else:
                            kept.append(uid)
            except LockError:
                skipped.append(uid)
            except (ReplyError, ActorError, AskTimeout, OSError) as error:
                failed.append([uid, str(error)])
        if page.cursor is None:
            break
        cursor = page.cursor
    summary = f"{len(archived)} studies archived, {len(deleted)} deleted here, {len(skipped)} locked, {len(failed)} failed"
    await file_report(
        ctx, kind=KIND, started_at=started, succeeded=not failed, summary=summary,
        report={
            "counts": {"archived": len(archived), "deleted": len(deleted), "kept": len(kept), "locked": len(skipped), "failed": len(failed)},
            "archived": archived, "failed": failed, "destination": config.destination,
        },
    )
    return f"{KIND}: {summary}" if failed else None


async def restore_study(
    ctx_lookup, destination: str, study_uid: str, staging: Path, on_fetched: Callable[[int, int], None] | None = None
) -> list[Path]:
    """Fetch a package's files, each checked against its manifest, into `staging`; their
    paths. `on_fetched(done, total)` after each file (a progress bar)."""
    tier = ctx_lookup(tier_path(destination))
    _, manifest_key = package_keys(study_uid)
    staging.mkdir(parents=True, exist_ok=True)
    local = staging / MANIFEST
    await tier.ask(FetchFile(key=manifest_key, dest=str(local)), timeout=None)
    manifest = json.loads(local.read_text())
    paths = []
    for entry in manifest["instances"]:
        dest = staging / f"{entry['sop_instance_uid']}.dcm"
        fetched = (await tier.ask(FetchFile(key=entry["key"], dest=str(dest), expected_sha256=entry["sha256"], size=entry["size"]), timeout=None)).object
        if fetched.size != entry["size"]:
            raise OSError(f"{entry['key']}: {fetched.size} bytes, the manifest says {entry['size']}")
        paths.append(dest)
        if on_fetched is not None:
            on_fetched(len(paths), len(manifest["instances"]))
    return paths
