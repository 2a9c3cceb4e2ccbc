"""What the node holds already of a chosen study, asked of the index (C-FIND's own
matching: STUDY or SERIES level with NumberOf...RelatedInstances), and how many bytes."""

from __future__ import annotations

import attrs
from pydicom import Dataset

from ...actors.node.index import FindMatches, ListInstances
from ...storage.query import InformationModel
from .criteria import ChosenStudy
from .remote import retrieve_query

INDEX_PATH = "/node/services/index"
PAGE = 200


@attrs.frozen(kw_only=True)
class Held:
    series: int
    instances: int


def _count(ds: Dataset, keyword: str) -> int:
    try:
        return int(str(ds.get(keyword, 0)))
    except ValueError:
        return 0


async def held(lookup, chosen: ChosenStudy) -> Held:
    """Series and instances of the study (or of its chosen series) in the local index."""
    query = Dataset()
    query.StudyInstanceUID = chosen.study.study_instance_uid
    if chosen.series:
        query.QueryRetrieveLevel = "SERIES"
        query.SeriesInstanceUID = [s.series_instance_uid for s in chosen.series]
        query.NumberOfSeriesRelatedInstances = ""
    else:
        query.QueryRetrieveLevel = "STUDY"
        query.NumberOfStudyRelatedSeries = ""
        query.NumberOfStudyRelatedInstances = ""
    series = instances = 0
    cursor: int | None = 0
    while cursor is not None:
        page = await lookup(INDEX_PATH).ask(FindMatches(identifier=query, model=InformationModel.STUDY_ROOT, cursor=cursor, size=PAGE))
        for match in page.responses:
            if chosen.series:
                series += 1
                instances += _count(match, "NumberOfSeriesRelatedInstances")
            else:
                series += _count(match, "NumberOfStudyRelatedSeries")
                instances += _count(match, "NumberOfStudyRelatedInstances")
        cursor = page.cursor
    return Held(series=series, instances=instances)


def complete(chosen: ChosenStudy, have: Held) -> bool:
    """Whether the node holds it all: as many instances as the source said, or - when the
    source gave no count - any at all."""
    expected = chosen.expected_instances
    return have.instances >= expected if expected is not None else have.instances > 0


async def held_bytes(lookup, chosen: ChosenStudy) -> int:
    query, level = retrieve_query(chosen)
    query.QueryRetrieveLevel = level
    found = await lookup(INDEX_PATH).ask(ListInstances(identifier=query, model=InformationModel.STUDY_ROOT))
    return sum(item.file_size for item in found.items)
