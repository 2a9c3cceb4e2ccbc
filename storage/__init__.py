"""Storage: file layout, Part 10 files, index attributes, the SQLite index, C-FIND matching.

Pure where it can be (layout, part10, files, attributes, matching: blocking calls, no
event loop); the index functions are asyncio coroutines over one aiosqlite connection,
run by the index actor on its private asyncio loop. Nothing here imports trio.
"""

from .attributes import InstanceRecord, extract_record, record_from_dataset
from .errors import InvalidDataset, InvalidPart10File, InvalidUID, QueryError, StorageError, UnsafePath
from .files import discard, ensure_directory, open_temp_beside, publish
from .index_db import (
    DuplicatePolicy,
    IndexCounts,
    Outcome,
    RecordOutcome,
    StoredInstance,
    delete_instances,
    delete_patient,
    delete_series,
    delete_study,
    get_instance,
    index_counts,
    open_index,
    record_instances,
    series_instances,
    set_location,
    study_instances,
    touch_instances,
)
from .layout import Layout, instance_path
from .levels import Level
from .part10 import Part10Writer, StoredDataset, WrittenFile, file_meta_bytes, iter_dataset_bytes, locate_dataset
from .query import (
    FindPage,
    FindPlan,
    InformationModel,
    QueryOptions,
    RetrieveItem,
    RetrievePlan,
    find_page,
    iter_find,
    plan_find,
    plan_retrieve,
    retrieve_items,
)

__all__ = [
    "DuplicatePolicy",
    "FindPage",
    "FindPlan",
    "IndexCounts",
    "InformationModel",
    "InstanceRecord",
    "InvalidDataset",
    "InvalidPart10File",
    "InvalidUID",
    "Layout",
    "Level",
    "Outcome",
    "Part10Writer",
    "QueryError",
    "QueryOptions",
    "RecordOutcome",
    "RetrieveItem",
    "RetrievePlan",
    "StorageError",
    "StoredDataset",
    "StoredInstance",
    "UnsafePath",
    "WrittenFile",
    "delete_instances",
    "delete_patient",
    "delete_series",
    "delete_study",
    "discard",
    "ensure_directory",
    "extract_record",
    "file_meta_bytes",
    "find_page",
    "get_instance",
    "index_counts",
    "instance_path",
    "iter_dataset_bytes",
    "iter_find",
    "locate_dataset",
    "open_index",
    "open_temp_beside",
    "plan_find",
    "plan_retrieve",
    "publish",
    "record_from_dataset",
    "record_instances",
    "retrieve_items",
    "series_instances",
    "set_location",
    "study_instances",
    "touch_instances",
]
