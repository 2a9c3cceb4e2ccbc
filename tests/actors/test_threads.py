"""Waits for other threads hold virtual time, and a replay's end waits for them.

The thread's work takes real time (a short real sleep stands for a disk write); the
assertions are about order, never about how long anything took.
"""

import asyncio
import math
import threading
import time

import trio
from trio.testing import wait_all_tasks_blocked

from triopacs.actors import AsyncioPortal
from triopacs.actors.runtime.threads import run_sync_in_thread, settled


def slow_write(done: list[str]) -> None:
    time.sleep(0.05)
    done.append("written")


async def test_virtual_time_does_not_jump_while_a_thread_works(autojump_clock):
    done: list[str] = []
    seen: list[list[str]] = []

    async def next_input() -> None:
        await trio.sleep(1.0)  # one virtual second later
        seen.append(list(done))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(next_input)
        await run_sync_in_thread(slow_write, done)
    assert seen == [["written"]], "virtual time ran on while the thread was still writing"


async def test_settled_waits_for_work_on_other_threads(autojump_clock):
    done: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_sync_in_thread, slow_write, done)
        await settled()
        assert done == ["written"]


async def test_overlapping_waits_give_the_clock_back_as_it_was(autojump_clock):
    # A worker thread, then an asyncio portal call, in flight at once; the thread ends first.
    thread_may_end, portal_may_end = threading.Event(), threading.Event()
    thread_ended = trio.Event()

    async def in_thread() -> None:
        await run_sync_in_thread(thread_may_end.wait)
        thread_ended.set()

    async def on_asyncio() -> None:
        await asyncio.to_thread(portal_may_end.wait)

    async with AsyncioPortal() as portal, trio.open_nursery() as nursery:
        nursery.start_soon(in_thread)
        await wait_all_tasks_blocked()
        nursery.start_soon(portal.run, on_asyncio)
        await wait_all_tasks_blocked()
        try:
            thread_may_end.set()
            await thread_ended.wait()
            assert autojump_clock.autojump_threshold == math.inf  # the portal call still holds it
        finally:
            portal_may_end.set()
    assert autojump_clock.autojump_threshold == 0
