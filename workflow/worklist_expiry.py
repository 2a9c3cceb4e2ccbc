"""The built-in `worklist-expiry` task kind: delete worklist items past their time.

Queries already skip an item `[worklist] expire_after_hours` after its scheduled start;
this task deletes such items from the index, so a node whose worklist is never added to
again does not keep them forever. It takes no parameters: the index knows the expiry
time, and judges by its own clock.
"""

from collections.abc import Mapping
from typing import Any

from ..actors.node.index_dimse_n import ExpireWorklistItems, WorklistItemsExpired
from .maintenance import INDEX_PATH
from .tasks.kinds import TaskContext

KIND = "worklist-expiry"


async def worklist_expiry(params: Mapping[str, Any], ctx: TaskContext) -> str | None:
    expired: WorklistItemsExpired = await ctx.lookup(INDEX_PATH).ask(ExpireWorklistItems())
    if expired.item_ids:
        ctx.log.info("expired worklist items deleted", count=len(expired.item_ids), item_ids=list(expired.item_ids))
    return None
