import io

import pytest
import trio

from triopacs.actors import ActorSpec, ActorSystem, ReplayError, TraceRecorder, JsonLinesSink, open_supervisor, replay
from triopacs.actors.runtime.trace import read_trace

from .bank import Auditor, Deposit, Inbox, InsufficientFunds, Ledger, Teller, Withdraw

PATHS = {"ledger": "/bank/ledger", "auditor": "/bank/auditor", "teller": "/bank/teller", "inbox": "/bank/inbox"}


async def record_a_day() -> list[str]:
    """Run the bank for a virtual day and return its trace as JSON lines."""
    buffer = io.StringIO()
    sink = JsonLinesSink(buffer)
    system = ActorSystem(recorder=TraceRecorder(sink))
    system.recorder.begin()
    async with open_supervisor(system, "/bank") as root:
        await root.start(ActorSpec(name="inbox", actor=Inbox))
        await root.start(ActorSpec(name="ledger", actor=Ledger))
        await root.start(ActorSpec(name="auditor", actor=Auditor, args={"report_to": PATHS["inbox"]}))
        teller = await root.start(
            ActorSpec(name="teller", actor=Teller, args={"ledger": PATHS["ledger"], "auditor": PATHS["auditor"]})
        )
        await teller.ask(Deposit(account="ann", amount=50))
        await trio.sleep(1800)
        await teller.ask(Deposit(account="bob", amount=500))
        with pytest.raises(InsufficientFunds):
            await teller.ask(Withdraw(account="ann", amount=80))
        await trio.sleep(3600 * 3)
        await teller.ask(Withdraw(account="bob", amount=120))
        await trio.sleep(600)
    return buffer.getvalue().splitlines()


async def test_replaying_the_whole_system_reproduces_it(autojump_clock):
    lines = await record_a_day()
    result = await replay(lines)
    assert result.ok, result.report()
    assert set(result.actors) == set(PATHS.values())
    # 5 asks from outside; summaries at 1h, 2h, 3h, 4h after the auditor started
    assert result.inputs == 4
    assert result.compared >= 4 + 4


async def test_replaying_one_actor_with_stand_ins(autojump_clock):
    lines = await record_a_day()
    result = await replay(lines, actors=[PATHS["teller"]])
    assert result.ok, result.report()
    assert result.actors == (PATHS["teller"],)


async def test_a_changed_behaviour_is_reported_as_a_diff(autojump_clock):
    lines = await record_a_day()

    def stricter_teller():
        return Teller(ledger=PATHS["ledger"], auditor=PATHS["auditor"], threshold=40)

    result = await replay(lines, actors=[PATHS["teller"]], factories={PATHS["teller"]: stricter_teller})
    assert not result.ok
    report = result.report()
    assert [m.stream for m in result.mismatches] == ["message /bank/teller -> /bank/auditor"]
    # ann's deposit of 50 is now flagged too; that one line is the whole difference
    added = [line for line in report.splitlines() if line.startswith("+{")]
    assert added == ['+{"payload":{"account":"ann","amount":50},"type":"bank.large-movement"}']
    assert not [line for line in report.splitlines() if line.startswith("-{")]


async def test_timer_driven_output_is_compared(autojump_clock):
    lines = await record_a_day()

    def lazy_auditor():
        return Auditor(report_to=PATHS["inbox"], every=7200.0)

    result = await replay(lines, actors=[PATHS["auditor"]], factories={PATHS["auditor"]: lazy_auditor})
    assert not result.ok
    assert [m.stream for m in result.mismatches] == ["message /bank/auditor -> /bank/inbox"]


async def test_trace_format_is_one_json_object_per_line(autojump_clock):
    lines = await record_a_day()
    records = list(read_trace(lines))
    assert records[0]["kind"] == "trace" and records[0]["version"] == 1
    kinds = {r["kind"] for r in records}
    assert kinds == {"trace", "actor", "message", "reply"}
    refusal = next(r for r in records if r["kind"] == "reply" and "error" in r)
    assert refusal["error"]["type"].endswith(":InsufficientFunds")
    times = [r["t"] for r in records[1:]]
    assert times == sorted(times)


async def test_unknown_actor_is_a_setup_error(autojump_clock):
    lines = await record_a_day()
    with pytest.raises(ReplayError, match="/bank/vault"):
        await replay(lines, actors=["/bank/vault"])
