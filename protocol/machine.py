"""The DICOM upper layer state machine (PS3.8 9.2): states, events, actions, and ONE table.

Rules of this module:
- `TABLE[(state, event)]` holds all 13 x 19 = 247 cells, the standard's blanks as
  explicit entries. Every standard action has exactly one next state (ACTIONS); the
  two conditional ones (AE-6, AR-8) are decided by data in the Input, never by
  looking at a connection.
- Actions are pure: they return outputs (SendPDU, indications, ARTIM and transport
  instructions) and do no I/O.
- A blank cell is one of two things, decided by who can cause it:
    REFUSE  the local user (or the driver, for the transport indications Evt2/Evt5)
            asked for something this state does not allow: LocalProtocolError, and
            nothing changes.
    IGNORE  input that can only be stale, so it is dropped and the state kept: a PDU
            in Sta1/Sta4 (no transport connection exists, so the bytes were read
            before we closed), a transport close in Sta1 (already closed), an ARTIM
            expiry where the timer is not running (a timer the driver failed to
            cancel in time). Peer input therefore never raises here.
- Abort codes. PS3.8 names AA-8's source (service-provider) but no reason, and neither
  for AA-7 (codes.md). Whenever our provider aborts because of the peer's input we send
  source service-provider with the precise reason: unexpected-PDU for a valid PDU in
  the wrong state (as DCMTK and pynetdicom do for AA-7), the decoder's reason for an
  invalid one (Evt19); AA-8's local A-P-ABORT indication carries the same reason.
  AA-1's text says service-user, which fits its main trigger, the local user's own
  A-ABORT (Evt15), and is what we send then. Where a peer PDU triggers AA-1 (Sta2,
  before any user has seen the association) we deliberately deviate and send the
  provider source and reason as above: a user-source abort with a blank reason would
  tell the peer nothing about what went wrong. Action and next state are unchanged.
"""

from collections.abc import Callable
from enum import Enum

import attrs

from .codes import AbortReason, AbortSource
from .errors import LocalProtocolError
from .events import (
    AcceptTransport,
    Aborted,
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
from .pdu import PDU, AAbort, AAssociateRJ, AReleaseRP, AReleaseRQ


class State(Enum):
    STA1 = "Idle"
    STA2 = "Transport connection open (awaiting A-ASSOCIATE-RQ PDU)"
    STA3 = "Awaiting local A-ASSOCIATE response primitive"
    STA4 = "Awaiting transport connection opening to complete"
    STA5 = "Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU"
    STA6 = "Association established and ready for data transfer"
    STA7 = "Awaiting A-RELEASE-RP PDU"
    STA8 = "Awaiting local A-RELEASE response primitive"
    STA9 = "Release collision requestor side: awaiting A-RELEASE response primitive"
    STA10 = "Release collision acceptor side: awaiting A-RELEASE-RP PDU"
    STA11 = "Release collision requestor side: awaiting A-RELEASE-RP PDU"
    STA12 = "Release collision acceptor side: awaiting A-RELEASE response primitive"
    STA13 = "Awaiting transport connection close indication"

    @property
    def label(self) -> str:
        return "Sta" + self.name[3:]


class Event(Enum):
    EVT1 = "A-ASSOCIATE request (local user)"
    EVT2 = "Transport connection confirm (local transport service)"
    EVT3 = "A-ASSOCIATE-AC PDU received"
    EVT4 = "A-ASSOCIATE-RJ PDU received"
    EVT5 = "Transport connection indication (local transport service)"
    EVT6 = "A-ASSOCIATE-RQ PDU received"
    EVT7 = "A-ASSOCIATE response primitive (accept)"
    EVT8 = "A-ASSOCIATE response primitive (reject)"
    EVT9 = "P-DATA request primitive"
    EVT10 = "P-DATA-TF PDU received"
    EVT11 = "A-RELEASE request primitive"
    EVT12 = "A-RELEASE-RQ PDU received"
    EVT13 = "A-RELEASE-RP PDU received"
    EVT14 = "A-RELEASE response primitive"
    EVT15 = "A-ABORT request primitive"
    EVT16 = "A-ABORT PDU received"
    EVT17 = "Transport connection closed indication (local transport service)"
    EVT18 = "ARTIM timer expired (local)"
    EVT19 = "Unrecognized or invalid PDU received"

    @property
    def label(self) -> str:
        return "Evt" + self.name[3:]


class Action(Enum):
    AE_1 = "AE-1"
    AE_2 = "AE-2"
    AE_3 = "AE-3"
    AE_4 = "AE-4"
    AE_5 = "AE-5"
    AE_6 = "AE-6"
    AE_7 = "AE-7"
    AE_8 = "AE-8"
    DT_1 = "DT-1"
    DT_2 = "DT-2"
    AR_1 = "AR-1"
    AR_2 = "AR-2"
    AR_3 = "AR-3"
    AR_4 = "AR-4"
    AR_5 = "AR-5"
    AR_6 = "AR-6"
    AR_7 = "AR-7"
    AR_8 = "AR-8"
    AR_9 = "AR-9"
    AR_10 = "AR-10"
    AA_1 = "AA-1"
    AA_2 = "AA-2"
    AA_3 = "AA-3"
    AA_4 = "AA-4"
    AA_5 = "AA-5"
    AA_6 = "AA-6"
    AA_7 = "AA-7"
    AA_8 = "AA-8"
    REFUSE = "refuse"  # blank cell, local cause: LocalProtocolError
    IGNORE = "ignore"  # blank cell, stale input: dropped, state kept

    @property
    def defined(self) -> bool:
        """True for the standard's actions, False for the two kinds of blank cell."""
        return self not in (Action.REFUSE, Action.IGNORE)


# Events caused by peer bytes (as opposed to the local user, transport or timer).
PEER_EVENTS = frozenset(
    {Event.EVT3, Event.EVT4, Event.EVT6, Event.EVT10, Event.EVT12, Event.EVT13, Event.EVT16, Event.EVT19}
)


@attrs.frozen
class SendPDU:
    """Output: encode this PDU and send it."""

    pdu: PDU


@attrs.frozen(kw_only=True)
class Input:
    """What an event carries into its action.

    pdu: the PDU received (peer events) or to send (Evt2: the RQ; Evt7: the AC;
    Evt8: the RJ; Evt9: the P-DATA-TF).
    reason: why an invalid PDU was invalid (Evt19).
    rejection: for Evt6, set when the provider finds the A-ASSOCIATE-RQ unacceptable;
    the RJ to send (AE-6 then goes to Sta13).
    requestor: the local role (AR-8 goes to Sta9 for the requestor, Sta10 for the acceptor).
    """

    pdu: PDU | None = None
    reason: int = AbortReason.REASON_NOT_SPECIFIED
    rejection: AAssociateRJ | None = None
    requestor: bool = False


NO_INPUT = Input()
OPEN_TRANSPORT = OpenTransport()
ACCEPT_TRANSPORT = AcceptTransport()
CLOSE_TRANSPORT = CloseTransport()
START_ARTIM = StartARTIM()
STOP_ARTIM = StopARTIM()
_SEND_RELEASE_RQ = SendPDU(AReleaseRQ())
_SEND_RELEASE_RP = SendPDU(AReleaseRP())
_USER_ABORT = AAbort(source=AbortSource.SERVICE_USER, reason=AbortReason.REASON_NOT_SPECIFIED)


def _provider_reason(event: Event, inp: Input) -> int:
    return inp.reason if event is Event.EVT19 else AbortReason.UNEXPECTED_PDU


def _provider_abort(event: Event, inp: Input) -> AAbort:
    return AAbort(source=AbortSource.SERVICE_PROVIDER, reason=_provider_reason(event, inp))


# --- the actions (Tables 9-6 to 9-9) ---------------------------------------------------
# Each takes (event, input) and returns its outputs in the order they happen.

Outputs = tuple


def ae_1(event: Event, inp: Input) -> Outputs:
    return (OPEN_TRANSPORT,)


def ae_2(event: Event, inp: Input) -> Outputs:
    return (SendPDU(inp.pdu),)


def ae_3(event: Event, inp: Input) -> Outputs:
    return (AssociationAccepted(inp.pdu),)


def ae_4(event: Event, inp: Input) -> Outputs:
    return (AssociationRejected(inp.pdu), CLOSE_TRANSPORT)


def ae_5(event: Event, inp: Input) -> Outputs:
    return (ACCEPT_TRANSPORT, START_ARTIM)


def ae_6(event: Event, inp: Input) -> Outputs:
    if inp.rejection is None:
        return (STOP_ARTIM, AssociationRequested(inp.pdu))
    return (STOP_ARTIM, SendPDU(inp.rejection), START_ARTIM)


def ae_7(event: Event, inp: Input) -> Outputs:
    return (SendPDU(inp.pdu),)


def ae_8(event: Event, inp: Input) -> Outputs:
    return (SendPDU(inp.pdu), START_ARTIM)


def dt_1(event: Event, inp: Input) -> Outputs:
    return (SendPDU(inp.pdu),)


def dt_2(event: Event, inp: Input) -> Outputs:
    return (DataReceived(inp.pdu.pdvs),)


def ar_1(event: Event, inp: Input) -> Outputs:
    return (_SEND_RELEASE_RQ,)


def ar_2(event: Event, inp: Input) -> Outputs:
    return (ReleaseRequested(collision=False),)


def ar_3(event: Event, inp: Input) -> Outputs:
    return (ReleaseConfirmed(), CLOSE_TRANSPORT)


def ar_4(event: Event, inp: Input) -> Outputs:
    return (_SEND_RELEASE_RP, START_ARTIM)


def ar_5(event: Event, inp: Input) -> Outputs:
    return (STOP_ARTIM,)


def ar_6(event: Event, inp: Input) -> Outputs:
    return (DataReceived(inp.pdu.pdvs),)


def ar_7(event: Event, inp: Input) -> Outputs:
    return (SendPDU(inp.pdu),)


def ar_8(event: Event, inp: Input) -> Outputs:
    return (ReleaseRequested(collision=True),)


def ar_9(event: Event, inp: Input) -> Outputs:
    return (_SEND_RELEASE_RP,)


def ar_10(event: Event, inp: Input) -> Outputs:
    return (ReleaseConfirmed(),)


def aa_1(event: Event, inp: Input) -> Outputs:
    abort = _USER_ABORT if event is Event.EVT15 else _provider_abort(event, inp)
    return (SendPDU(abort), START_ARTIM)


def aa_2(event: Event, inp: Input) -> Outputs:
    return (STOP_ARTIM, CLOSE_TRANSPORT)


def aa_3(event: Event, inp: Input) -> Outputs:
    abort = inp.pdu
    return (Aborted(source=abort.source, reason=abort.reason, by_peer=True), CLOSE_TRANSPORT)


def aa_4(event: Event, inp: Input) -> Outputs:
    return (Aborted(source=AbortSource.SERVICE_PROVIDER, reason=AbortReason.REASON_NOT_SPECIFIED, by_peer=False),)


def aa_5(event: Event, inp: Input) -> Outputs:
    return (STOP_ARTIM,)


def aa_6(event: Event, inp: Input) -> Outputs:
    return ()


def aa_7(event: Event, inp: Input) -> Outputs:
    return (SendPDU(_provider_abort(event, inp)),)


def aa_8(event: Event, inp: Input) -> Outputs:
    reason = _provider_reason(event, inp)
    return (
        SendPDU(AAbort(source=AbortSource.SERVICE_PROVIDER, reason=reason)),
        Aborted(source=AbortSource.SERVICE_PROVIDER, reason=reason, by_peer=False),
        START_ARTIM,
    )


@attrs.frozen
class ActionSpec:
    """An action's function and its next state; `otherwise` is the second next state of a
    conditional action (AE-6 when the RQ is rejected, AR-8 on the acceptor side)."""

    run: Callable[[Event, Input], Outputs]
    next_state: State
    otherwise: State | None = None


S = State
ACTIONS: dict[Action, ActionSpec] = {
    Action.AE_1: ActionSpec(ae_1, S.STA4),
    Action.AE_2: ActionSpec(ae_2, S.STA5),
    Action.AE_3: ActionSpec(ae_3, S.STA6),
    Action.AE_4: ActionSpec(ae_4, S.STA1),
    Action.AE_5: ActionSpec(ae_5, S.STA2),
    Action.AE_6: ActionSpec(ae_6, S.STA3, otherwise=S.STA13),
    Action.AE_7: ActionSpec(ae_7, S.STA6),
    Action.AE_8: ActionSpec(ae_8, S.STA13),
    Action.DT_1: ActionSpec(dt_1, S.STA6),
    Action.DT_2: ActionSpec(dt_2, S.STA6),
    Action.AR_1: ActionSpec(ar_1, S.STA7),
    Action.AR_2: ActionSpec(ar_2, S.STA8),
    Action.AR_3: ActionSpec(ar_3, S.STA1),
    Action.AR_4: ActionSpec(ar_4, S.STA13),
    Action.AR_5: ActionSpec(ar_5, S.STA1),
    Action.AR_6: ActionSpec(ar_6, S.STA7),
    Action.AR_7: ActionSpec(ar_7, S.STA8),
    Action.AR_8: ActionSpec(ar_8, S.STA9, otherwise=S.STA10),
    Action.AR_9: ActionSpec(ar_9, S.STA11),
    Action.AR_10: ActionSpec(ar_10, S.STA12),
    Action.AA_1: ActionSpec(aa_1, S.STA13),
    Action.AA_2: ActionSpec(aa_2, S.STA1),
    Action.AA_3: ActionSpec(aa_3, S.STA1),
    Action.AA_4: ActionSpec(aa_4, S.STA1),
    Action.AA_5: ActionSpec(aa_5, S.STA1),
    Action.AA_6: ActionSpec(aa_6, S.STA13),
    Action.AA_7: ActionSpec(aa_7, S.STA13),
    Action.AA_8: ActionSpec(aa_8, S.STA13),
}

# Table 9-10. One row per event, one column per state Sta1..Sta13.
# "--" = REFUSE (local misuse), ".." = IGNORE (stale input); see the module docstring.
_TABLE_TEXT = """
       Sta1 Sta2 Sta3 Sta4 Sta5 Sta6 Sta7 Sta8 Sta9 Sta10 Sta11 Sta12 Sta13
Evt1   AE-1 --   --   --   --   --   --   --   --   --    --    --    --
Evt2   --   --   --   AE-2 --   --   --   --   --   --    --    --    --
Evt3   ..   AA-1 AA-8 ..   AE-3 AA-8 AA-8 AA-8 AA-8 AA-8  AA-8  AA-8  AA-6
Evt4   ..   AA-1 AA-8 ..   AE-4 AA-8 AA-8 AA-8 AA-8 AA-8  AA-8  AA-8  AA-6
Evt5   AE-5 --   --   --   --   --   --   --   --   --    --    --    --
Evt6   ..   AE-6 AA-8 ..   AA-8 AA-8 AA-8 AA-8 AA-8 AA-8  AA-8  AA-8  AA-7
Evt7   --   --   AE-7 --   --   --   --   --   --   --    --    --    --
Evt8   --   --   AE-8 --   --   --   --   --   --   --    --    --    --
Evt9   --   --   --   --   --   DT-1 --   AR-7 --   --    --    --    --
Evt10  ..   AA-1 AA-8 ..   AA-8 DT-2 AR-6 AA-8 AA-8 AA-8  AA-8  AA-8  AA-6
Evt11  --   --   --   --   --   AR-1 --   --   --   --    --    --    --
Evt12  ..   AA-1 AA-8 ..   AA-8 AR-2 AR-8 AA-8 AA-8 AA-8  AA-8  AA-8  AA-6
Evt13  ..   AA-1 AA-8 ..   AA-8 AA-8 AR-3 AA-8 AA-8 AR-10 AR-3  AA-8  AA-6
Evt14  --   --   --   --   --   --   --   AR-4 AR-9 --    --    AR-4  --
Evt15  --   --   AA-1 AA-2 AA-1 AA-1 AA-1 AA-1 AA-1 AA-1  AA-1  AA-1  --
Evt16  ..   AA-2 AA-3 ..   AA-3 AA-3 AA-3 AA-3 AA-3 AA-3  AA-3  AA-3  AA-2
Evt17  ..   AA-5 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4 AA-4  AA-4  AA-4  AR-5
Evt18  ..   AA-2 ..   ..   ..   ..   ..   ..   ..   ..    ..    ..    AA-2
Evt19  ..   AA-1 AA-8 ..   AA-8 AA-8 AA-8 AA-8 AA-8 AA-8  AA-8  AA-8  AA-7
"""


@attrs.frozen
class Transition:
    """One cell: the action and its next state (None: the state is kept, or the call refused)."""

    action: Action
    next_state: State | None
    otherwise: State | None = None


def _build_table() -> dict[tuple[State, Event], Transition]:
    lines = [line.split() for line in _TABLE_TEXT.strip().splitlines()]
    states = [State["STA" + label[3:]] for label in lines[0]]
    table = {}
    for event_label, *cells in lines[1:]:
        event = Event["EVT" + event_label[3:]]
        assert len(cells) == len(states), event_label
        for state, cell in zip(states, cells, strict=True):
            if cell == "--":
                table[state, event] = Transition(Action.REFUSE, None)
            elif cell == "..":
                table[state, event] = Transition(Action.IGNORE, None)
            else:
                action = Action(cell)
                spec = ACTIONS[action]
                table[state, event] = Transition(action, spec.next_state, spec.otherwise)
    assert len(table) == len(State) * len(Event) == 247
    return table


TABLE: dict[tuple[State, Event], Transition] = _build_table()


def step(state: State, event: Event, inp: Input = NO_INPUT) -> tuple[State, Outputs]:
    """Apply one event: (next state, outputs). Raises LocalProtocolError for a REFUSE cell."""
    transition = TABLE[state, event]
    action = transition.action
    if action is Action.REFUSE:
        raise LocalProtocolError(f"{event.value} ({event.label}) is not allowed in {state.label} ({state.value})")
    if action is Action.IGNORE:
        return state, ()
    outputs = ACTIONS[action].run(event, inp)
    next_state = transition.next_state
    if transition.otherwise is not None:
        # AE-6: acceptable unless a rejection was passed in; AR-8: requestor or acceptor.
        take_first = inp.rejection is None if action is Action.AE_6 else inp.requestor
        if not take_first:
            next_state = transition.otherwise
    return next_state, outputs
