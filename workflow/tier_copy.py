"""Copying one instance from one tier to another, checked: what migration and archive share."""

from collections.abc import Callable

from ..actors import ActorRef
from ..actors.node.tiers import PutFile, Stage, discard_staged, tier_path
from ..actors.runtime.threads import run_sync_in_thread
from ..storage.local_store import hash_file


async def copy_checked(
    lookup: Callable[[str], ActorRef], *, source_tier: str, source_key: str, target_tier: str, target_key: str,
    size: int, sha256: str,
) -> None:
    """Copy `source_key` of `source_tier` to `target_key` of `target_tier`; raises OSError
    unless the target then holds `size` bytes with `sha256` (what the index says)."""
    source, target = lookup(tier_path(source_tier)), lookup(tier_path(target_tier))
    staged = await source.ask(Stage(key=source_key, expected_sha256=sha256, size=size), timeout=None)
    try:
        # What the tier holds after the upload (a head, or the upload's own answer).
        held = (await target.ask(PutFile(key=target_key, path=staged.path, size=size, sha256=sha256), timeout=None)).object
        # A staged copy was checked as it was downloaded; a tier's own file is hashed
        # here unless the upload hashed what it sent (held.checked).
        if not staged.temporary and not held.checked:
            found = await run_sync_in_thread(hash_file, staged.path)
            if (found.size, found.sha256) != (size, sha256):
                raise OSError(f"{source_key}: {found.size} bytes {found.sha256} on disk, the index says {size} {sha256}")
    finally:
        discard_staged(staged)
    if held.size != size or (held.sha256 is not None and held.sha256 != sha256):
        raise OSError(f"{target_key}: the target holds {held.size} bytes {held.sha256}, expected {size} {sha256}")
