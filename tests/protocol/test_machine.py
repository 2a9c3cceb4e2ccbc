"""The PS3.8 state table: every one of the 247 cells, against the standard's own tables."""

from pathlib import Path

import pytest

from triopacs.protocol.codes import AbortReason, AbortSource
from triopacs.protocol.errors import LocalProtocolError
from triopacs.protocol.events import (
    Aborted,
    AcceptTransport,
    AssociationAccepted,
    AssociationRejected,
    AssociationRequested,
    CloseTransport,
    DataReceived,
    OpenTransport,
    ReleaseConfirmed,
    ReleaseRequested,
    StartARTIM,
    StopARTIM,
)
from triopacs.protocol.items import PresentationContextAC, PresentationContextRQ, UserInformation
from triopacs.protocol.machine import (
    ACTIONS,
    PEER_EVENTS,
    TABLE,
    Action,
    Event,
    Input,
    SendPDU,
    State,
    step,
)
from triopacs.protocol.pdu import (
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
    PresentationDataValue,
)

REPO_ROOT = Path(__file__).parents[2]
PS38 = REPO_ROOT / "tests" / "data" / "ps3.8"  # the standard's tables, written out by us

# The standard's table, written out here cell by cell (independently of machine.py's
# text), so each cell is a test case of its own: (event, state) -> (action, next state).
# Next states come from Tables 9-6..9-9; "3|13" / "9|10" are the conditional ones.
EXPECTED = {
    1: {1: ("AE-1", "4")},
    2: {4: ("AE-2", "5")},
    3: {2: ("AA-1", "13"), 3: ("AA-8", "13"), 5: ("AE-3", "6"), 6: ("AA-8", "13"), 7: ("AA-8", "13"),
        8: ("AA-8", "13"), 9: ("AA-8", "13"), 10: ("AA-8", "13"), 11: ("AA-8", "13"), 12: ("AA-8", "13"),
        13: ("AA-6", "13")},
    4: {2: ("AA-1", "13"), 3: ("AA-8", "13"), 5: ("AE-4", "1"), 6: ("AA-8", "13"), 7: ("AA-8", "13"),
        8: ("AA-8", "13"), 9: ("AA-8", "13"), 10: ("AA-8", "13"), 11: ("AA-8", "13"), 12: ("AA-8", "13"),
        13: ("AA-6", "13")},
    5: {1: ("AE-5", "2")},
    6: {2: ("AE-6", "3|13"), 3: ("AA-8", "13"), 5: ("AA-8", "13"), 6: ("AA-8", "13"), 7: ("AA-8", "13"),
        8: ("AA-8", "13"), 9: ("AA-8", "13"), 10: ("AA-8", "13"), 11: ("AA-8", "13"), 12: ("AA-8", "13"),
        13: ("AA-7", "13")},
    7: {3: ("AE-7", "6")},
    8: {3: ("AE-8", "13")},
    9: {6: ("DT-1", "6"), 8: ("AR-7", "8")},
    10: {2: ("AA-1", "13"), 3: ("AA-8", "13"), 5: ("AA-8", "13"), 6: ("DT-2", "6"), 7: ("AR-6", "7"),
         8: ("AA-8", "13"), 9: ("AA-8", "13"), 10: ("AA-8", "13"), 11: ("AA-8", "13"), 12: ("AA-8", "13"),
         13: ("AA-6", "13")},
    11: {6: ("AR-1", "7")},
    12: {2: ("AA-1", "13"), 3: ("AA-8", "13"), 5: ("AA-8", "13"), 6: ("AR-2", "8"), 7: ("AR-8", "9|10"),
         8: ("AA-8", "13"), 9: ("AA-8", "13"), 10: ("AA-8", "13"), 11: ("AA-8", "13"), 12: ("AA-8", "13"),
         13: ("AA-6", "13")},
    13: {2: ("AA-1", "13"), 3: ("AA-8", "13"), 5: ("AA-8", "13"), 6: ("AA-8", "13"), 7: ("AR-3", "1"),
         8: ("AA-8", "13"), 9: ("AA-8", "13"), 10: ("AR-10", "12"), 11: ("AR-3", "1"), 12: ("AA-8", "13"),
         13: ("AA-6", "13")},
    14: {8: ("AR-4", "13"), 9: ("AR-9", "11"), 12: ("AR-4", "13")},
    15: {3: ("AA-1", "13"), 4: ("AA-2", "1"), 5: ("AA-1", "13"), 6: ("AA-1", "13"), 7: ("AA-1", "13"),
         8: ("AA-1", "13"), 9: ("AA-1", "13"), 10: ("AA-1", "13"), 11: ("AA-1", "13"), 12: ("AA-1", "13")},
    16: {2: ("AA-2", "1"), 3: ("AA-3", "1"), 5: ("AA-3", "1"), 6: ("AA-3", "1"), 7: ("AA-3", "1"),
         8: ("AA-3", "1"), 9: ("AA-3", "1"), 10: ("AA-3", "1"), 11: ("AA-3", "1"), 12: ("AA-3", "1"),
         13: ("AA-2", "1")},
    17: {2: ("AA-5", "1"), 3: ("AA-4", "1"), 4: ("AA-4", "1"), 5: ("AA-4", "1"), 6: ("AA-4", "1"),
         7: ("AA-4", "1"), 8: ("AA-4", "1"), 9: ("AA-4", "1"), 10: ("AA-4", "1"), 11: ("AA-4", "1"),
         12: ("AA-4", "1"), 13: ("AR-5", "1")},
    18: {2: ("AA-2", "1"), 13: ("AA-2", "1")},
    19: {2: ("AA-1", "13"), 3: ("AA-8", "13"), 5: ("AA-8", "13"), 6: ("AA-8", "13"), 7: ("AA-8", "13"),
         8: ("AA-8", "13"), 9: ("AA-8", "13"), 10: ("AA-8", "13"), 11: ("AA-8", "13"), 12: ("AA-8", "13"),
         13: ("AA-7", "13")},
}
LOCAL_EVENTS = {1, 2, 5, 7, 8, 9, 11, 14, 15}  # the user's primitives and the driver's transport calls
CELLS = [(e, s) for e in range(1, 20) for s in range(1, 14)]


def state(n: int) -> State:
    return State[f"STA{n}"]


def event(n: int) -> Event:
    return Event[f"EVT{n}"]


def _rq() -> AAssociateRQ:
    return AAssociateRQ(
        called_ae_title="PACS",
        calling_ae_title="SCU",
        presentation_contexts=(PresentationContextRQ(context_id=1, abstract_syntax="1.2", transfer_syntaxes=("1.2.1",)),),
        user_information=UserInformation(),
    )


def _ac() -> AAssociateAC:
    return AAssociateAC(
        called_ae_title="PACS",
        calling_ae_title="SCU",
        presentation_contexts=(PresentationContextAC(context_id=1, result=0, transfer_syntax="1.2.1"),),
        user_information=UserInformation(),
    )


PDATA = PDataTF(pdvs=(PresentationDataValue(context_id=1, is_command=True, is_last=True, data=b"x"),))
RJ = AAssociateRJ(result=1, source=1, reason=1)
# What each event carries into its action.
PAYLOAD = {
    2: _rq(), 3: _ac(), 4: RJ, 6: _rq(), 7: _ac(), 8: RJ, 9: PDATA, 10: PDATA,
    12: AReleaseRQ(), 13: AReleaseRP(), 16: AAbort(source=2, reason=4),
}


def make_input(e: int, *, requestor: bool = False, rejection: AAssociateRJ | None = None) -> Input:
    reason = AbortReason.UNRECOGNIZED_PDU_PARAMETER if e == 19 else 0
    return Input(pdu=PAYLOAD.get(e), reason=reason, rejection=rejection, requestor=requestor)


@pytest.mark.parametrize(("e", "s"), CELLS, ids=[f"Evt{e}-Sta{s}" for e, s in CELLS])
def test_cell(e: int, s: int) -> None:
    cell = TABLE[state(s), event(e)]
    expected = EXPECTED[e].get(s)
    if expected is None:
        # A blank cell: refused if the local side caused it, ignored if it can only be stale input.
        assert not cell.action.defined
        if e in LOCAL_EVENTS:
            assert cell.action is Action.REFUSE
            with pytest.raises(LocalProtocolError):
                step(state(s), event(e), make_input(e))
        else:
            assert cell.action is Action.IGNORE
            assert step(state(s), event(e), make_input(e)) == (state(s), ())
        return
    action, next_states = expected
    assert cell.action.value == action
    first, _, second = next_states.partition("|")
    assert cell.next_state is state(int(first))
    assert cell.otherwise is (state(int(second)) if second else None)
    # Running the cell lands where the table says (first branch) and never raises.
    nxt, _outputs = step(state(s), event(e), make_input(e, requestor=True))
    assert nxt is state(int(first))
    if second:
        if action == "AE-6":
            nxt, _ = step(state(s), event(e), make_input(e, rejection=RJ))
        else:
            nxt, _ = step(state(s), event(e), make_input(e, requestor=False))
        assert nxt is state(int(second))


def test_table_has_every_cell_once() -> None:
    assert len(TABLE) == 247 == len(State) * len(Event)
    assert sum(cell.action.defined for cell in TABLE.values()) == 123


def test_peer_events_never_refused() -> None:
    for (s, e), cell in TABLE.items():
        if e in PEER_EVENTS or e in (Event.EVT17, Event.EVT18):
            assert cell.action is not Action.REFUSE, (s, e)


def _facts(name: str) -> list[list[str]]:
    """The fields of each line of a tests/data/ps3.8 file, comments left out."""
    lines = (PS38 / name).read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.startswith("#")]


def test_table_matches_the_standards_state_table() -> None:
    rows = _facts("state-table.txt")
    assert [row[0] for row in rows] == [e.label for e in Event]
    mismatches = []
    for event_label, *cells in rows:
        assert len(cells) == len(State), event_label
        for s, reference in zip(State, cells, strict=True):
            cell = TABLE[s, Event["EVT" + event_label[3:]]]
            ours = cell.action.value if cell.action.defined else "."
            if ours != reference:
                mismatches.append((event_label, s.label, reference, ours))
    assert mismatches == []


def test_actions_match_the_standards_next_states() -> None:
    rows = _facts("next-states.txt")
    assert {action for action, _ in rows} == {a.value for a in Action if a.defined}
    for action, next_state in rows:
        spec = ACTIONS[Action(action)]
        ours = spec.next_state.label + (f"|{spec.otherwise.label}" if spec.otherwise else "")
        assert ours == next_state, action


# --- what the actions output ---------------------------------------------------------


def outputs(s: int, e: int, **kw) -> tuple:
    return step(state(s), event(e), make_input(e, **kw))[1]


def test_association_establishment_outputs() -> None:
    assert outputs(1, 1) == (OpenTransport(),)
    assert outputs(4, 2) == (SendPDU(_rq()),)
    assert outputs(5, 3) == (AssociationAccepted(_ac()),)
    assert outputs(5, 4) == (AssociationRejected(RJ), CloseTransport())
    assert outputs(1, 5) == (AcceptTransport(), StartARTIM())
    assert outputs(2, 6) == (StopARTIM(), AssociationRequested(_rq()))
    assert outputs(2, 6, rejection=RJ) == (StopARTIM(), SendPDU(RJ), StartARTIM())
    assert outputs(3, 7) == (SendPDU(_ac()),)
    assert outputs(3, 8) == (SendPDU(RJ), StartARTIM())


def test_data_and_release_outputs() -> None:
    assert outputs(6, 9) == (SendPDU(PDATA),)
    assert outputs(6, 10) == (DataReceived(PDATA.pdvs),)
    assert outputs(6, 11) == (SendPDU(AReleaseRQ()),)
    assert outputs(6, 12) == (ReleaseRequested(collision=False),)
    assert outputs(7, 13) == (ReleaseConfirmed(), CloseTransport())
    assert outputs(8, 14) == (SendPDU(AReleaseRP()), StartARTIM())
    assert outputs(13, 17) == (StopARTIM(),)
    assert outputs(7, 10) == (DataReceived(PDATA.pdvs),)
    assert outputs(8, 9) == (SendPDU(PDATA),)
    assert outputs(7, 12) == (ReleaseRequested(collision=True),)
    assert outputs(9, 14) == (SendPDU(AReleaseRP()),)
    assert outputs(10, 13) == (ReleaseConfirmed(),)


def test_abort_outputs() -> None:
    user_abort = AAbort(source=AbortSource.SERVICE_USER, reason=AbortReason.REASON_NOT_SPECIFIED)
    assert outputs(6, 15) == (SendPDU(user_abort), StartARTIM())
    # AA-1 caused by the peer in Sta2: provider source with the reason (module docstring).
    assert outputs(2, 10) == (SendPDU(AAbort(source=2, reason=AbortReason.UNEXPECTED_PDU)), StartARTIM())
    assert outputs(2, 19) == (SendPDU(AAbort(source=2, reason=AbortReason.UNRECOGNIZED_PDU_PARAMETER)), StartARTIM())
    assert outputs(2, 18) == (StopARTIM(), CloseTransport())
    assert outputs(6, 16) == (Aborted(source=2, reason=4, by_peer=True), CloseTransport())
    assert outputs(6, 17) == (Aborted(source=2, reason=0, by_peer=False),)
    assert outputs(2, 17) == (StopARTIM(),)
    assert outputs(13, 10) == ()
    assert outputs(13, 6) == (SendPDU(AAbort(source=2, reason=AbortReason.UNEXPECTED_PDU)),)
    assert outputs(13, 19) == (SendPDU(AAbort(source=2, reason=AbortReason.UNRECOGNIZED_PDU_PARAMETER)),)
    unexpected = AbortReason.UNEXPECTED_PDU
    assert outputs(6, 3) == (SendPDU(AAbort(source=2, reason=unexpected)), Aborted(2, unexpected, False), StartARTIM())
    invalid = AbortReason.UNRECOGNIZED_PDU_PARAMETER
    assert outputs(6, 19) == (SendPDU(AAbort(source=2, reason=invalid)), Aborted(2, invalid, False), StartARTIM())


def test_refusal_names_state_and_event() -> None:
    with pytest.raises(LocalProtocolError, match="P-DATA request.*Sta7"):
        step(State.STA7, Event.EVT9, make_input(9))


def test_committed_state_diagram_is_generated_from_the_table() -> None:
    import importlib.util

    script = REPO_ROOT / "docs" / "make_state_diagram.py"
    spec = importlib.util.spec_from_file_location("make_state_diagram", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (REPO_ROOT / "docs" / "state-diagram.md").read_text()
    assert committed == module.render(), "docs/state-diagram.md is stale: run python docs/make_state_diagram.py"
    # Every defined cell appears on some arrow.
    drawn = sum(label.count(",") + 1 for labels in module.edges().values() for label in labels)
    assert drawn == 123 + 2  # the two conditional cells are drawn once per branch
