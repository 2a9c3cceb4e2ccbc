"""[storage] durability: fsync flushes every stored file and its directory before the
answer; os leaves it to the kernel. Counted by wrapping the real flush calls."""

import pytest
from dicom_samples import SeriesSpec, write_series

import triopacs.storage.files as files
from triopacs import connect
from triopacs.client.connection import storage_contexts_for
from triopacs.config import Config, StorageSettings
from triopacs.supervisor import service_specs

from .nodes import counts, running_node, stored_files


@pytest.fixture
def flushes(monkeypatch):
    """How many file and directory fsyncs happened (the real calls still run)."""
    seen = {"file": 0, "directory": 0}
    real_file, real_directory = files.fsync_path, files.fsync_directory

    def file_flush(path):
        seen["file"] += 1
        real_file(path)

    def directory_flush(path):
        seen["directory"] += 1
        real_directory(path)

    monkeypatch.setattr(files, "fsync_path", file_flush)
    monkeypatch.setattr(files, "fsync_directory", directory_flush)
    return seen


async def store_series(node, folder, count):
    series = write_series(folder, SeriesSpec(count=count))
    async with connect("127.0.0.1", node.address.port, called_ae_title=node.config.node.ae_title,
                       contexts=storage_contexts_for(series.paths)) as association:
        for path in series.paths:
            assert (await association.store(path)).ok


@pytest.mark.parametrize("durability", ["fsync", "os"])
async def test_durability_decides_whether_stores_are_flushed(tmp_path, flushes, durability):
    async with running_node(tmp_path, durability=durability) as node:
        before = dict(flushes)
        await store_series(node, tmp_path / "in", 4)
        assert (await counts(node)).instances == 4
        assert len(stored_files(node)) == 4
        stored = {kind: flushes[kind] - before[kind] for kind in flushes}
    if durability == "fsync":
        assert stored["file"] >= 4 and stored["directory"] >= 4  # each file and its entry
    else:
        assert stored == {"file": 0, "directory": 0}


@pytest.mark.parametrize("durability,synchronous", [("fsync", "FULL"), ("os", "NORMAL")])
def test_index_commits_follow_the_durability_setting(durability, synchronous):
    config = Config(storage=StorageSettings(durability=durability))
    index = next(spec for spec in service_specs(config) if spec.name == "index")
    assert index.args["synchronous"] == synchronous
