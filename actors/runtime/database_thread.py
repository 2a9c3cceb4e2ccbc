"""A database thread: one thread that owns one SQLite connection and runs plain
synchronous functions of it for Trio, one at a time, in the order they were asked.

    thread = DatabaseThread(lambda: open_index(path), name="index-writer")
    await thread.start()                                  # opens the connection on the thread
    outcomes = await thread.run(record_instances, records, policy)
    await thread.aclose()                                 # after the calls already asked

One request, one crossing: `run(fn, *args)` queues the call and sleeps; the thread runs
`fn(connection, *args)` whole - a transaction with all its statements, a C-FIND page
with all its fetches - and hands the result (or the exception, as the same object)
back through the Trio token. `crossings` counts them. The connection is opened on the
thread and used nowhere else (sqlite3's same-thread check stays on and would catch a
slip). Why this and not aiosqlite: docs/architecture.md, "Reaching SQLite".

Cancellation never leaves the thread half way through a call:
- a call still queued is withdrawn: it never runs;
- a call already running runs to its end on the thread (a transaction commits or rolls
  back there); its result is dropped and the caller's Cancelled is raised once it has
  ended, so when `run` returns or raises the thread is done with that call.
  `interrupt_on_cancel` (for threads that only read) also interrupts its statements
  (sqlite3.Connection.interrupt, again every few milliseconds until the call ends: an
  interrupt between two statements is lost), so a long read ends early, with an error
  nobody sees.

While a call is out it is counted as a wait on another thread (threads.py): a mock
clock does not jump and a replay does not end meanwhile.
"""

import enum
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from .threads import waiting_on_another_thread

T = TypeVar("T")

INTERRUPT_EVERY = 0.005  # seconds between interrupts of a cancelled read


class DatabaseClosed(RuntimeError):
    """The database thread is not running (not started yet, or closed)."""


class _State(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    WITHDRAWN = "withdrawn"


class _Call:
    __slots__ = ("fn", "args", "state", "done", "value", "error", "last")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], *, last: bool = False) -> None:
        self.fn = fn
        self.args = args
        self.state = _State.QUEUED
        self.done = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.last = last  # the thread ends after this one


def _close(connection: sqlite3.Connection | None) -> None:
    if connection is not None:
        connection.close()


class DatabaseThread:
    def __init__(
        self, connect: Callable[[], sqlite3.Connection], *, name: str, interrupt_on_cancel: bool = False
    ) -> None:
        """`connect` opens the connection (on the thread, at `start`)."""
        self.name = name
        self.crossings = 0
        self._connect = connect
        self._interrupt_on_cancel = interrupt_on_cancel
        self._queue: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards call states, so an interrupt hits only its own call
        self._connection: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._open = False

    async def __aenter__(self) -> "DatabaseThread":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the thread and open the connection there; raises what opening raised."""
        if self._thread is not None:
            raise RuntimeError(f"database thread {self.name} was started already")
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
        self._thread.start()
        try:
            await self._call(self._open_connection, ())
        except BaseException:
            await self._stop()
            raise
        self._open = True

    async def aclose(self) -> None:
        """Close the connection and end the thread, after every call asked before."""
        if not self._open:
            return
        self._open = False
        await self._stop()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(connection, *args)` on the thread: its result, or its exception raised here."""
        if not self._open:
            raise DatabaseClosed(f"database thread {self.name} is not running")
        return await self._call(fn, args)

    # -- Trio side -------------------------------------------------------------------------

    async def _stop(self) -> None:
        with trio.CancelScope(shield=True):
            await self._call(_close, (), last=True)
        assert self._thread is not None
        # The thread has delivered its last call; it only has to return now.
        self._thread.join()

    async def _call(self, fn: Callable[..., T], args: tuple[Any, ...], *, last: bool = False) -> T:
        call = _Call(fn, args, last=last)
        self.crossings += 1
        with waiting_on_another_thread():
            self._queue.put(call)
            try:
                await call.done.wait()
            except trio.Cancelled:
                with self._lock:
                    if call.state is _State.QUEUED:
                        call.state = _State.WITHDRAWN
                        raise
                    if call.state is _State.RUNNING and self._interrupt_on_cancel:
                        threading.Thread(target=self._interrupt_until_done, args=(call,), daemon=True).start()
                with trio.CancelScope(shield=True):
                    await call.done.wait()
                raise
        if call.error is not None:
            error, call.error = call.error, None  # no cycle through the frame holding `call`
            raise error
        return call.value

    def _interrupt_until_done(self, call: _Call) -> None:
        """Interrupt the call's statements until it ends. One interrupt is not enough: it
        is lost when it comes between two statements, or before the first one starts."""
        while True:
            with self._lock:
                if call.state is not _State.RUNNING or self._connection is None:
                    return
                self._connection.interrupt()
            time.sleep(INTERRUPT_EVERY)

    # -- the thread ------------------------------------------------------------------------

    def _open_connection(self, _: None) -> None:
        self._connection = self._connect()

    def _serve(self) -> None:
        assert self._token is not None
        while True:
            call = self._queue.get()
            with self._lock:
                if call.state is _State.WITHDRAWN:
                    continue
                call.state = _State.RUNNING
            try:
                call.value = call.fn(self._connection, *call.args)
            except BaseException as error:
                call.error = error
            with self._lock:
                call.state = _State.DONE
                if call.last:
                    self._connection = None
            try:
                self._token.run_sync_soon(call.done.set)
            except trio.RunFinishedError:
                pass  # the Trio side is gone; nobody waits any more
            if call.last:
                return
