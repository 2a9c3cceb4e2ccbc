"""C-STORE holds a shared lock on its study while it commits: it waits behind an
exclusive (cleanup) or migration lock, and is refused with a clear status when the
study stays locked past [locks] acquire_wait_timeout."""

import trio
from dicom_samples import SeriesSpec, write_series

from triopacs import connect
from triopacs.client.connection import storage_contexts_for
from triopacs.workflow import GetLockStats, LockType, study_lock

from .nodes import counts, leftovers, running_node, stored_files


async def store_one(node, path):
    async with connect("127.0.0.1", node.address.port, called_ae_title=node.config.node.ae_title,
                       contexts=storage_contexts_for([path])) as association:
        return await association.store(path)


async def wait_for_contention(node, count: int) -> None:
    """Until the lock manager has seen `count` requests that had to wait."""
    while (await node.ref("locks").ask(GetLockStats())).contention_count < count:
        await trio.sleep(0)  # a checkpoint, not a delay: other tasks run first


async def test_a_store_waits_for_an_exclusive_lock_on_its_study(tmp_path):
    series = write_series(tmp_path / "in", SeriesSpec(count=1))
    async with running_node(tmp_path, acquire_wait_timeout=60.0) as node:
        results = []
        async with trio.open_nursery() as nursery:
            async with study_lock(node.ref("locks"), series.study_instance_uid, LockType.EXCLUSIVE, reason="test"):

                async def store():
                    results.append(await store_one(node, series.paths[0]))

                nursery.start_soon(store)
                with trio.fail_after(30):
                    await wait_for_contention(node, 1)
                assert results == []  # parked behind our lock
                assert (await counts(node)).instances == 0
            # lock released here: the store goes on
        assert results[0].ok
        assert (await counts(node)).instances == 1


async def test_a_store_into_a_study_locked_too_long_is_refused(tmp_path):
    series = write_series(tmp_path / "in", SeriesSpec(count=1))
    async with running_node(tmp_path, acquire_wait_timeout=0.2) as node:
        async with study_lock(node.ref("locks"), series.study_instance_uid, LockType.EXCLUSIVE, reason="test"):
            with trio.fail_after(30):
                result = await store_one(node, series.paths[0])
        assert result.status == 0xA700
        assert "busy" in result.error_comment
        assert (await counts(node)).instances == 0
        assert stored_files(node) == [] and leftovers(node) == []
        # and the study takes stores again once free
        assert (await store_one(node, series.paths[0])).ok
