"""The transfer syntax of contexts the acceptor sends on (C-GET): held syntaxes first,
then a syntax anything can be converted into, then the requestor's order."""

import pytest

from triopacs.protocol.codes import ContextResult
from triopacs.protocol.negotiation import AcceptorPolicy, ProposedContext, SupportedContext, build_request, negotiate
from triopacs.protocol.sending_syntaxes import choose_sending_syntaxes

ELE, ILE, EBE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
DEFLATE = "1.2.840.10008.1.2.1.99"
JPEG, J2K, RLE, JLS = "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80"
GETSCU_JPEG = (JPEG, ELE, EBE, ILE)  # what DCMTK getscu +xy proposes for every storage class
UNCOMPRESSED = (ELE, ILE, EBE)
COMPRESSED = (JPEG, JLS, J2K, RLE, DEFLATE)


@pytest.mark.parametrize(
    "candidates, held, expected",
    [
        # One context: what is held decides, as long as everything held can be sent.
        ([GETSCU_JPEG], {JPEG}, [JPEG]),
        ([GETSCU_JPEG], {ELE}, [ELE]),
        ([GETSCU_JPEG], {EBE}, [EBE]),
        ([GETSCU_JPEG], {JPEG, ELE}, [ELE]),  # JPEG is decompressed; ELE could not become JPEG
        ([GETSCU_JPEG], {JPEG, J2K}, [ELE]),  # both decompressed rather than one refused
        ([GETSCU_JPEG], set(), [JPEG]),  # nothing held: the requestor's first
        ([GETSCU_JPEG], None, [ELE]),  # not known: something anything converts into
        ([(JPEG,)], {ELE}, [JPEG]),  # no writable syntax offered: ELE instances will fail
        ([(EBE, ILE)], {EBE, JPEG}, [ILE]),  # big endian is never written: ILE carries both
        # Several contexts of one class: each held syntax gets its own.
        ([UNCOMPRESSED, COMPRESSED], {ELE, J2K}, [ELE, J2K]),
        ([UNCOMPRESSED, COMPRESSED, COMPRESSED], {EBE, RLE, JLS}, [EBE, JLS, RLE]),
        ([COMPRESSED, UNCOMPRESSED], {RLE, JLS, J2K}, [JLS, ELE]),  # fallback on the uncompressed one
        ([(JPEG,), (J2K,), (ELE,)], {J2K}, [JPEG, J2K, ELE]),
        ([COMPRESSED, COMPRESSED], set(), [JPEG, JLS]),  # distinct, in the requestor's order
        ([(), GETSCU_JPEG], {JPEG}, [None, JPEG]),
    ],
)
def test_choose_sending_syntaxes(candidates, held, expected):
    assert choose_sending_syntaxes(candidates, held) == expected


CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
POLICY = AcceptorPolicy(
    contexts=(SupportedContext(abstract_syntax=CT, scu_role=True), SupportedContext(abstract_syntax=MR, scu_role=True)),
    transfer_syntaxes=(ELE, ILE, EBE, DEFLATE, JPEG, JLS, J2K, RLE),  # the node's own preference: uncompressed first
)


def accepted(request, **kwargs) -> list[tuple[int, str]]:
    ac = negotiate(request, POLICY, **kwargs).response
    return [(pc.context_id, pc.transfer_syntax) for pc in ac.presentation_contexts if pc.result == ContextResult.ACCEPTANCE]


def test_contexts_we_send_on_follow_what_is_held():
    request = build_request(
        calling_ae_title="GETSCU",
        called_ae_title="TRIOPACS",
        contexts=[
            ProposedContext(abstract_syntax=CT, transfer_syntaxes=GETSCU_JPEG, scu_role=False, scp_role=True),
            ProposedContext(abstract_syntax=MR, transfer_syntaxes=GETSCU_JPEG, scu_role=False, scp_role=True),
        ],
    )
    assert accepted(request, held_syntaxes={CT: {JPEG}, MR: {JPEG, ELE}}) == [(1, JPEG), (3, ELE)]
    assert accepted(request, held_syntaxes={}) == [(1, JPEG), (3, JPEG)]


def test_contexts_we_receive_on_keep_our_preference():
    # No SCP role for the requestor: it sends, we receive, and our own order decides.
    request = build_request(
        calling_ae_title="STORESCU",
        called_ae_title="TRIOPACS",
        contexts=[ProposedContext(abstract_syntax=CT, transfer_syntaxes=GETSCU_JPEG)],
    )
    assert accepted(request, held_syntaxes={CT: {JPEG}}) == [(1, ELE)]
