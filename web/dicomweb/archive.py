"""What DICOMweb asks of the node's actors: C-FIND pages from the index for a search,
the instances a retrieve names, and their files from whichever tier holds them.

Nothing here opens the database or reads the data directory on its own: a search is
FindMatches (the C-FIND request), a retrieve is ListInstances (C-GET's) and each file
comes through its tier actor's Stage, a local tier's own file or a checked copy an
object store's tier downloaded, as C-GET reads them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import trio
from pydicom.dataset import Dataset

from ...actors import ActorContext, ActorError, ReplyError
from ...actors.node.index import FindMatches, ListInstances, QueryRefused
from ...actors.node.index_hsm import TouchInstances
from ...actors.node.services.retrieve import local_file
from ...actors.node.tiers import TIERS_PATH, Stage, StagedMany, StageMany, Staged, discard_staged
from ...protocol.uid import is_valid_uid
from ...storage.dicom_json import SPECIFIC_CHARACTER_SET, JsonDataset, make_element
from ...storage.levels import Level
from ...storage.query import QUERY_RETRIEVE_LEVEL, UNIQUE_KEYS, InformationModel, RetrieveItem
from ...supervisor import INDEX
from ..problems import bad_request, not_found, unavailable
from .qido import Search

PAGE = 200
LEFT_OUT = frozenset(f"{tag:08X}" for tag in (SPECIFIC_CHARACTER_SET, QUERY_RETRIEVE_LEVEL))  # JSON is UTF-8; the level is the resource's
ASK_TIMEOUT = 30.0


def check_uid(uid: str, what: str) -> str:
    if not is_valid_uid(uid):
        raise bad_request(f"not a valid {what}", f"{uid[:80]!r} is not digits and dots of at most 64 characters")
    return uid


class Archive:
    def __init__(self, ctx: ActorContext, *, track_access_time: bool = False) -> None:
        self.ctx = ctx
        self.track_access_time = track_access_time

    async def search(self, search: Search) -> tuple[list[JsonDataset], bool]:
        """The matches from offset on, at most limit; and whether more were left out."""
        found: list[JsonDataset] = []
        skip = search.offset
        cursor: int | None = 0
        while cursor is not None:
            page = await self._ask(INDEX, FindMatches(
                identifier=search.identifier, model=InformationModel.STUDY_ROOT, cursor=cursor, size=PAGE,
                options=search.options, as_json=True,
            ))
            for match in page.matches:
                if skip:
                    skip -= 1
                    continue
                if len(found) == search.limit:
                    return found, True
                found.append({tag: attr for tag, attr in match.items() if tag not in LEFT_OUT})
            cursor = page.cursor
        return found, False

    async def instances(self, study: str, series: str | None = None, instance: str | None = None) -> list[RetrieveItem]:
        """What a retrieve names, in study/series/instance order; 404 when nothing."""
        identifier = Dataset()
        level = Level.IMAGE if instance else Level.SERIES if series else Level.STUDY
        identifier.add(make_element(QUERY_RETRIEVE_LEVEL, "CS", level.name))
        for at, uid, what in ((Level.STUDY, study, "Study Instance UID"), (Level.SERIES, series, "Series Instance UID"),
                              (Level.IMAGE, instance, "SOP Instance UID")):
            if uid is not None:
                identifier.add(make_element(UNIQUE_KEYS[at], "UI", check_uid(uid, what)))
        answer = await self._ask(INDEX, ListInstances(identifier=identifier, model=InformationModel.STUDY_ROOT))
        if not answer.items:
            named = instance or series or study
            raise not_found(level.name.lower().replace("image", "instance"), f"no {level.name.lower()} {named} in the archive")
        return list(answer.items)

    def local_file(self, item: RetrieveItem) -> AbstractAsyncContextManager[Path]:
        """A local file holding the instance, from whichever tier holds it (as C-GET reads it)."""
        return local_file(self.ctx, TIERS_PATH, item)

    @asynccontextmanager
    async def local_files(self, items: list[RetrieveItem]) -> AsyncIterator[list[tuple[Path | None, str]]]:
        """Local files for several instances, one StageMany per tier: (path, "") for each
        item, or (None, why) where its tier could not provide it. Copies removed after."""
        found: list[tuple[Path | None, str]] = [(None, "")] * len(items)
        staged: list[Staged] = []
        try:
            by_tier: dict[str, list[int]] = {}
            for index, item in enumerate(items):
                by_tier.setdefault(item.tier, []).append(index)
            for tier, indexes in by_tier.items():
                stages = tuple(Stage(key=items[i].file_path, expected_sha256=items[i].sha256 or None, size=items[i].file_size)
                               for i in indexes)
                try:
                    answer: StagedMany = await self.ctx.lookup(f"{TIERS_PATH}/{tier}").ask(StageMany(stages=stages), timeout=None)
                except (ReplyError, ActorError) as error:
                    for i in indexes:
                        found[i] = (None, f"tier {tier}: {error}")
                    continue
                for i, one, problem in zip(indexes, answer.staged, answer.problems):
                    if one is not None:
                        staged.append(one)
                        found[i] = (Path(one.path), "")
                    else:
                        found[i] = (None, problem)
            yield found
        finally:
            if any(one.temporary for one in staged):
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(lambda: [discard_staged(one) for one in staged])

    async def touch(self, items: list[RetrieveItem]) -> None:
        """Record the access, as C-GET does when access times are tracked."""
        if self.track_access_time and items:
            try:
                await self.ctx.lookup(INDEX).ask(
                    TouchInstances(sop_instance_uids=tuple(i.sop_instance_uid for i in items)), timeout=ASK_TIMEOUT
                )
            except (ReplyError, ActorError) as error:
                self.ctx.log.warning("access times not recorded", instances=len(items), error=str(error))

    async def _ask(self, path: str, message: object):
        try:
            return await self.ctx.lookup(path).ask(message, timeout=None)
        except QueryRefused as refused:
            raise bad_request("the query cannot be answered", refused.reason) from None
        except (ReplyError, ActorError) as error:
            raise unavailable(f"{path} is not available", str(error)) from None

