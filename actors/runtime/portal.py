"""The asyncio portal: one private asyncio loop in a worker thread, for asyncio libraries.

Some libraries speak only asyncio (aiobotocore and azure-storage-blob, for storage on S3
and Azure). Rather than run the node on an asyncio loop, we
keep one real asyncio loop in a thread and cross into it once per whole operation (a
transaction, an upload), which costs ~0.1 ms.

Cancellation crosses too: when the Trio caller is cancelled, the asyncio task is
cancelled and the caller waits, shielded, until the task's own cleanup has finished,
so no connection or upload is left half-done behind its back.
"""

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from .threads import waiting_on_another_thread

T = TypeVar("T")


class PortalClosed(RuntimeError):
    pass


class _Handoff:
    """Callbacks for another thread's loop, run in one wakeup however many arrive before
    that loop comes round to them: under load a crossing costs the other thread one
    wakeup per burst, not one per call. Order is kept."""

    def __init__(self, schedule: Callable[[Callable[[], None]], object]) -> None:
        self._schedule = schedule  # loop.call_soon_threadsafe, or a Trio token's run_sync_soon
        self._lock = threading.Lock()
        self._pending: list[Callable[[], None]] = []

    def submit(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append(callback)
            first = len(self._pending) == 1
        if first:
            self._schedule(self._run)

    def _run(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for callback in pending:
            callback()


def _notify(back: _Handoff, done: trio.Event) -> None:
    try:
        back.submit(done.set)
    except trio.RunFinishedError:
        pass  # the Trio side is gone; nobody is waiting any more


class AsyncioPortal:
    def __init__(self, name: str = "triopacs-asyncio") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._to_asyncio: _Handoff | None = None
        self._to_trio: dict[trio.lowlevel.TrioToken, _Handoff] = {}  # one per Trio run using the portal
        self.crossings = 0

    async def __aenter__(self) -> "AsyncioPortal":
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name=self._name, daemon=True)
        self._thread.start()
        await trio.to_thread.run_sync(ready.wait)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # libraries may ask for "the current loop" in this thread
        self._loop = loop
        self._to_asyncio = _Handoff(loop.call_soon_threadsafe)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
            # Let whatever is still running see a cancellation and clean up.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    async def aclose(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = None
        loop.call_soon_threadsafe(loop.stop)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(thread.join)

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `fn(*args)` as a task on the asyncio loop and return its result.

        An exception from the task is raised here as the same exception object.
        """
        loop = self._loop
        if loop is None:
            raise PortalClosed("the asyncio portal is not running")
        token = trio.lowlevel.current_trio_token()
        back = self._to_trio.get(token) or self._to_trio.setdefault(token, _Handoff(token.run_sync_soon))
        there = self._to_asyncio
        assert there is not None
        done = trio.Event()
        holder: dict[str, asyncio.Task[T]] = {}

        def start() -> None:  # runs on the asyncio loop
            task = loop.create_task(fn(*args))  # type: ignore[arg-type]
            holder["task"] = task
            task.add_done_callback(lambda _: _notify(back, done))

        self.crossings += 1
        # Waiting on the asyncio thread: a mock clock must not jump meanwhile (threads.py).
        with waiting_on_another_thread():
            there.submit(start)
            try:
                await done.wait()
            except trio.Cancelled:
                # The handoff keeps order, so `start` has run before this.
                there.submit(lambda: holder["task"].cancel())
                with trio.CancelScope(shield=True):
                    await done.wait()
                raise
        task = holder["task"]
        if task.cancelled():
            raise PortalClosed("the asyncio task was cancelled on the asyncio side")
        return task.result()
