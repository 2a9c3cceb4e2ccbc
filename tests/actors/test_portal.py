import asyncio
import threading

import pytest
import trio
import trio.testing

from triopacs.actors import AsyncioPortal


async def test_result_comes_back_from_the_asyncio_thread():
    async with AsyncioPortal() as portal:

        async def where():
            await asyncio.sleep(0)
            return threading.current_thread().name, asyncio.get_running_loop().is_running()

        name, running = await portal.run(where)
    assert name == "triopacs-asyncio" and running
    assert threading.current_thread().name != name


async def test_exception_is_the_original_object():
    error = KeyError("missing row")

    async def fail():
        raise error

    async with AsyncioPortal() as portal:
        with pytest.raises(KeyError) as info:
            await portal.run(fail)
    assert info.value is error


async def test_cancellation_waits_for_asyncio_cleanup():
    cleanup_finished = threading.Event()
    started = trio.Event()
    token = trio.lowlevel.current_trio_token()

    async def slow_operation():
        token.run_sync_soon(started.set)
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.05)  # cleanup that itself takes time
            cleanup_finished.set()

    async with AsyncioPortal() as portal:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(portal.run, slow_operation)
                await started.wait()
                scope.cancel()
        # The moment the cancelled call returns, the asyncio side has cleaned up.
        assert cleanup_finished.is_set()
        assert scope.cancelled_caught


async def test_portal_is_shut_down_with_its_thread():
    portal = AsyncioPortal(name="portal-under-test")
    async with portal:
        assert any(t.name == "portal-under-test" for t in threading.enumerate())
    assert not any(t.name == "portal-under-test" for t in threading.enumerate())
