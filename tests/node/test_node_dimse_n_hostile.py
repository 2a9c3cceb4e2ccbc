"""Broken and hostile N-requests against a running node: each gets the PS3.7 status for
what is wrong (or, past the memory limit, an abort of that one association), and the
node - the same association where it can - keeps serving.

The requests are sent with the client's own session (a real TCP association), bending
the request or its data set on purpose where a well-behaved client would refuse to.
"""

import struct

import trio
from pydicom.dataset import Dataset

from triopacs import connect
from triopacs.client.commitment import action_information
from triopacs.client.contexts import verification_contexts
from triopacs.client.errors import ClientError
from triopacs.protocol.datasets import encode_dataset
from triopacs.protocol.commands import NActionRQ, NCreateRQ, NDeleteRQ, NGetRQ, NSetRQ
from triopacs.protocol.negotiation import ProposedContext
from triopacs.protocol.status import Status
from triopacs.storage.commitment import ReferencedInstance

from .nodes import AE_TITLE, LOOPBACK, running_node

MPPS = "1.2.840.10008.3.1.2.3.3"
COMMITMENT = "1.2.840.10008.1.20.1"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
CONTEXTS = [ProposedContext(abstract_syntax=MPPS, transfer_syntaxes=(IMPLICIT_LE,)),
            ProposedContext(abstract_syntax=COMMITMENT, transfer_syntaxes=(IMPLICIT_LE,))]


def n_association(node):
    return connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=CONTEXTS)


async def raw_request(association, rq, sop_class: str, data: bytes | None) -> int:
    """Send `rq` (whatever it holds) with `data` as its data set bytes; the status back."""
    context = association._context(sop_class)
    await association._send(rq, context.context_id, data)
    received = await association._response_to(rq.message_id, "the response")
    return received.message.status


def bent(rq, **fields):
    """The request with fields a peer may leave out or get wrong (our constructor would
    refuse them), as the decoder hands them to the association."""
    for name, value in fields.items():
        object.__setattr__(rq, name, value)
    return rq


def _element(group: int, element: int, value: bytes) -> bytes:
    return struct.pack("<HHL", group, element, len(value)) + value


GOOD_LIST = _element(0x0008, 0x0060, b"CT")  # implicit VR LE: Modality


async def still_serving(node) -> None:
    with trio.fail_after(20):
        async with connect(LOOPBACK, node.address.port, called_ae_title=AE_TITLE, contexts=verification_contexts()) as association:
            await association.echo()


async def test_bad_n_requests_get_their_statuses_on_one_association(tmp_path):
    async with running_node(tmp_path) as node:
        async with n_association(node) as association:
            ids = iter(range(1, 100))

            async def status(rq, sop_class, data):
                return await raw_request(association, rq, sop_class, data)

            create = lambda **kw: NCreateRQ(message_id=next(ids), affected_sop_class_uid=MPPS,  # noqa: E731
                                            affected_sop_instance_uid="1.2.3.4", has_dataset=True, **kw)
            n_set = lambda: NSetRQ(message_id=next(ids), requested_sop_class_uid=MPPS,  # noqa: E731
                                   requested_sop_instance_uid="1.2.3.4")
            action = lambda **kw: NActionRQ(message_id=next(ids), requested_sop_class_uid=COMMITMENT,  # noqa: E731
                                            requested_sop_instance_uid=COMMITMENT_INSTANCE, action_type_id=1,
                                            has_dataset=True, **kw)
            garbage = b"\xde\xad\xbe\xef" * 3
            truncated = _element(0x0008, 0x0060, b"CT")[:-1] + _element(0x0040, 0x0252, b"IN PROGRESS ")[:5]
            commit = action_information("1.2.826.0.1.3680043.9.7.77", [ReferencedInstance("1.2.840.10008.5.1.4.1.1.2", "1.2.3")])
            commit_bytes = encode_dataset(commit, IMPLICIT_LE)
            no_transaction = Dataset()
            no_transaction.ReferencedSOPSequence = commit.ReferencedSOPSequence

            outcomes = [
                await status(bent(n_set(), requested_sop_instance_uid=None), MPPS, GOOD_LIST),
                await status(bent(create(), affected_sop_class_uid=None), MPPS, GOOD_LIST),
                await status(bent(n_set(), has_dataset=False), MPPS, None),  # no Modification List
                await status(create(), MPPS, garbage),
                await status(create(), MPPS, truncated),
                await status(create(), MPPS, GOOD_LIST),  # lacks the Type 1 attributes
                await status(bent(create(), affected_sop_class_uid=COMMITMENT), MPPS, GOOD_LIST),
                await status(NGetRQ(message_id=next(ids), requested_sop_class_uid=MPPS, requested_sop_instance_uid="1.2.3.4"), MPPS, None),
                await status(NDeleteRQ(message_id=next(ids), requested_sop_class_uid=MPPS, requested_sop_instance_uid="1.2.3.4"), MPPS, None),
                await status(bent(action(), action_type_id=None), COMMITMENT, commit_bytes),
                await status(bent(action(), action_type_id=2), COMMITMENT, commit_bytes),
                await status(bent(action(), requested_sop_instance_uid="1.2.3"), COMMITMENT, commit_bytes),
                await status(action(), COMMITMENT, garbage),
                await status(action(), COMMITMENT, encode_dataset(no_transaction, IMPLICIT_LE)),
                await status(bent(action(), has_dataset=False), COMMITMENT, None),
                await status(action(), COMMITMENT, commit_bytes),  # and a good one still works
            ]
    assert outcomes[0] == Status.INVALID_SOP_INSTANCE
    assert outcomes[1] == Status.SOP_CLASS_NOT_SUPPORTED
    assert outcomes[2] == Status.MISTYPED_ARGUMENT
    assert outcomes[3] == outcomes[4] == Status.PROCESSING_FAILURE
    assert outcomes[5] == Status.MISSING_ATTRIBUTE
    assert outcomes[6] == Status.SOP_CLASS_NOT_SUPPORTED
    assert outcomes[7] == outcomes[8] == Status.UNRECOGNIZED_OPERATION
    assert outcomes[9] == outcomes[10] == Status.NO_SUCH_ACTION_TYPE
    assert outcomes[11] == Status.NO_SUCH_SOP_INSTANCE
    assert outcomes[12] == Status.PROCESSING_FAILURE
    assert outcomes[13] == outcomes[14] == Status.INVALID_ARGUMENT_VALUE
    assert outcomes[15] == Status.SUCCESS


async def test_an_oversized_attribute_list_costs_only_its_association(tmp_path):
    async with running_node(tmp_path) as node:
        aborted = False
        try:
            async with n_association(node) as association:
                rq = NCreateRQ(message_id=1, affected_sop_class_uid=MPPS, affected_sop_instance_uid="1.2.3.4", has_dataset=True)
                huge = _element(0x0040, 0x0254, b"x" * (17 * 1024 * 1024))  # past the 16 MiB kept in memory
                await raw_request(association, rq, MPPS, huge)
        except ClientError:
            aborted = True
        assert aborted
        await still_serving(node)
