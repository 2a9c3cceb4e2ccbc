"""The database thread: plain functions of a SQLite connection run on one thread of their
own, one crossing per call, in order, and cancellation never leaves a call half done."""

import sqlite3
import threading
import time

import pytest
import trio
import trio.testing

from triopacs.actors import DatabaseClosed, DatabaseThread
from triopacs.actors.runtime.threads import waiting_on_another_thread
from triopacs.storage.sql import in_transaction

FOREVER = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"


def connector(path):
    def connect():
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("CREATE TABLE IF NOT EXISTS note (text TEXT)")
        return connection

    return connect


def notes(path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return [text for (text,) in connection.execute("SELECT text FROM note ORDER BY rowid")]
    finally:
        connection.close()


def add_note(connection, text):
    connection.execute("INSERT INTO note VALUES (?)", (text,))
    return threading.current_thread().name


class Gate:
    """Holds a call on the database thread until the test opens it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def hold(self, connection, *then):
        self.entered.set()
        assert self.opened.wait(30), "the test never opened the gate"
        for step in then:
            step(connection)

    async def wait_entered(self) -> None:
        with waiting_on_another_thread():
            await trio.to_thread.run_sync(self.entered.wait)


async def test_a_call_runs_on_the_thread_and_its_result_comes_back(tmp_path):
    async with DatabaseThread(connector(tmp_path / "db"), name="db-under-test") as thread:
        assert await thread.run(add_note, "one") == "db-under-test"
        assert await thread.run(lambda c: c.execute("SELECT text FROM note").fetchall()) == [("one",)]
    assert notes(tmp_path / "db") == ["one"]


async def test_the_same_exception_object_comes_back(tmp_path):
    error = LookupError("not here")

    def fail(connection):
        raise error

    async with DatabaseThread(connector(tmp_path / "db"), name="db") as thread:
        with pytest.raises(LookupError) as raised:
            await thread.run(fail)
        assert raised.value is error
        with pytest.raises(sqlite3.OperationalError):
            await thread.run(lambda c: c.execute("SELECT nothing FROM nowhere"))
        assert await thread.run(add_note, "still serving") == "db"


async def test_one_crossing_per_call_whatever_it_does(tmp_path):
    def many_statements(connection):
        for number in range(50):
            connection.execute("INSERT INTO note VALUES (?)", (str(number),))
        return connection.execute("SELECT count(*) FROM note").fetchone()[0]

    async with DatabaseThread(connector(tmp_path / "db"), name="db") as thread:
        before = thread.crossings
        assert await thread.run(in_transaction, many_statements) == 50
        assert thread.crossings == before + 1


async def test_calls_run_one_at_a_time_in_the_order_asked(tmp_path):
    order: list[int] = []
    running = 0
    most = 0

    def step(connection, number):
        nonlocal running, most
        running += 1
        most = max(most, running)
        order.append(number)
        connection.execute("SELECT count(*) FROM note").fetchone()
        running -= 1

    async with DatabaseThread(connector(tmp_path / "db"), name="db") as thread:
        gate = Gate()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(thread.run, gate.hold)
            await gate.wait_entered()
            for number in range(20):  # queued behind the gate, each once its asker is waiting
                nursery.start_soon(thread.run, step, number)
                await trio.testing.wait_all_tasks_blocked()
            gate.opened.set()
    assert order == list(range(20)) and most == 1


async def test_a_queued_call_cancelled_never_runs(tmp_path):
    async with DatabaseThread(connector(tmp_path / "db"), name="db") as thread:
        gate = Gate()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(thread.run, gate.hold)
            await gate.wait_entered()
            async with trio.open_nursery() as askers:
                askers.start_soon(thread.run, add_note, "withdrawn")
                await trio.testing.wait_all_tasks_blocked()
                askers.cancel_scope.cancel()
            # Its asker is gone already, while the call ahead of it still holds the thread.
            gate.opened.set()
        await thread.run(add_note, "after")
    assert notes(tmp_path / "db") == ["after"]


async def test_a_running_transaction_cancelled_finishes_before_cancelled_is_raised(tmp_path):
    gate = Gate()
    outcome: list[str] = []

    asker = trio.CancelScope()

    async def ask(thread):
        with asker:
            try:
                await thread.run(
                    in_transaction, lambda c: gate.hold(c, lambda c: add_note(c, "first"), lambda c: add_note(c, "second"))
                )
            except trio.Cancelled:
                outcome.append("cancelled")
                raise
            outcome.append("returned")

    async with DatabaseThread(connector(tmp_path / "db"), name="db") as thread:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, thread)
            await gate.wait_entered()
            asker.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert outcome == []  # still waiting for its call: the thread is mid-transaction
            gate.opened.set()
        assert outcome == ["cancelled"]
        assert await thread.run(lambda c: c.in_transaction) is False
    assert notes(tmp_path / "db") == ["first", "second"]  # the whole transaction, committed


async def test_a_reading_thread_interrupts_a_cancelled_statement(tmp_path):
    entered = threading.Event()

    def count_forever(connection):
        entered.set()
        return connection.execute(FOREVER).fetchone()

    async with DatabaseThread(connector(tmp_path / "db"), name="reader", interrupt_on_cancel=True) as thread:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(thread.run, count_forever)
                with waiting_on_another_thread():
                    await trio.to_thread.run_sync(entered.wait)
                scope.cancel()
        assert scope.cancelled_caught
        assert await thread.run(lambda c: c.execute("SELECT 42").fetchone()) == (42,)


async def test_close_waits_for_calls_asked_before_then_refuses(tmp_path):
    thread = DatabaseThread(connector(tmp_path / "db"), name="closing-db")
    await thread.start()
    async with trio.open_nursery() as nursery:
        for number in range(5):
            nursery.start_soon(thread.run, add_note, str(number))
        await trio.testing.wait_all_tasks_blocked()
        await thread.aclose()
    assert sorted(notes(tmp_path / "db")) == ["0", "1", "2", "3", "4"]
    assert not any(t.name == "closing-db" for t in threading.enumerate())
    with pytest.raises(DatabaseClosed):
        await thread.run(add_note, "late")
    await thread.aclose()  # twice is harmless


async def test_a_connection_that_cannot_open_fails_the_start(tmp_path):
    def refuse():
        raise sqlite3.OperationalError("unable to open database file")

    thread = DatabaseThread(refuse, name="never-open")
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        await thread.start()
    assert not any(t.name == "never-open" for t in threading.enumerate())
    with pytest.raises(DatabaseClosed):
        await thread.run(add_note, "x")


async def test_the_connection_is_used_on_its_own_thread_only(tmp_path):
    async with DatabaseThread(connector(tmp_path / "db"), name="db") as thread:
        connection = await thread.run(lambda c: c)
        with pytest.raises(sqlite3.ProgrammingError, match="thread"):
            connection.execute("SELECT 1")


async def test_virtual_time_stands_still_while_a_call_is_out(tmp_path, autojump_clock):
    # What replaying the index actor needs: the replayer delivers its next recorded input
    # "once everything before it has settled", and a commit on the database thread has
    # not settled until it is done.
    committed = False
    gate = Gate()

    async def next_input(seen: list[bool]) -> None:
        await trio.sleep(1.0)  # the next recorded input, one virtual second later
        seen.append(committed)

    async with DatabaseThread(connector(tmp_path / "db"), name="db") as thread:
        seen: list[bool] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(next_input, seen)
            nursery.start_soon(thread.run, gate.hold)
            await gate.wait_entered()
            await trio.testing.wait_all_tasks_blocked()
            gate.opened.set()  # the "commit" ends only now, whatever the clock could have done
            await trio.testing.wait_all_tasks_blocked()
            committed = True
    assert seen == [True], "virtual time ran on while the database thread was working"


async def test_an_interrupt_that_comes_between_statements_is_not_lost(tmp_path):
    # The cancellation arrives while the call runs Python between two statements: an
    # interrupt then reaches no statement, and the long one that follows would run on.
    entered = threading.Event()

    def pause_then_count_forever(connection):
        entered.set()
        time.sleep(0.2)  # no statement running: the first interrupt falls here
        return connection.execute(FOREVER).fetchone()

    async with DatabaseThread(connector(tmp_path / "db"), name="reader", interrupt_on_cancel=True) as thread:
        with trio.fail_after(20):  # real seconds: without repeated interrupts it never ends
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(thread.run, pause_then_count_forever)
                    with waiting_on_another_thread():
                        await trio.to_thread.run_sync(entered.wait)
                    scope.cancel()
        assert scope.cancelled_caught
        assert await thread.run(lambda c: c.execute("SELECT 7").fetchone()) == (7,)
