"""Storage: file layout, Part 10 files, index attributes, the SQLite index, C-FIND matching.

Pure where it can be (layout, part10, files, attributes, matching: blocking calls, no
event loop); the index functions are plain synchronous functions of a
``sqlite3.Connection``, which the index actor runs on its database threads, one call
per request. Nothing here imports trio.
"""

from .attributes import InstanceRecord, extract_record, record_from_dataset
from .errors import InvalidDataset, InvalidPart10File, InvalidUID, QueryError, StorageError, UnsafePath
from .files import discard, ensure_directory, open_temp_beside, publish
from .index_db import DuplicatePolicy, IndexCounts, Outcome, RecordOutcome, index_counts, open_index, record_instances
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
    "UnsafePath",
    "WrittenFile",
    "discard",
    "ensure_directory",
    "extract_record",
    "file_meta_bytes",
    "find_page",
    "index_counts",
    "instance_path",
    "iter_dataset_bytes",
    "locate_dataset",
    "open_index",
    "open_temp_beside",
    "plan_find",
    "plan_retrieve",
    "publish",
    "record_from_dataset",
    "record_instances",
    "retrieve_items",
]
