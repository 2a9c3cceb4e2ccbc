"""Storage Commitment Push Model SOP class as SCP: the N-ACTION (PS3.4 J.3.2).

The request is checked here (SOP class and instance, action type, Action Information),
handed to the commitment actor, which records it before it answers, and then answered
Success at once; the instances are checked and the N-EVENT-REPORT sent later
(actors/node/commitment.py).
"""

from ....client.commitment import REQUEST_STORAGE_COMMITMENT, InvalidCommitmentData, read_action_information
from ....protocol.catalog import STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE
from ....protocol.commands import NActionRQ, NActionRSP
from ....protocol.negotiation import SupportedContext
from ....protocol.status import Status
from ...runtime.errors import ActorError, ReplyError
from ..commitment_messages import RequestCommitment
from .attribute_list import BadAttributeList, read_attribute_list
from .base import RunningOperation, Service, Session


class StorageCommitmentService(Service):
    permission = "commitment"
    requests = (NActionRQ,)
    operation = True

    def __init__(self, *, commitment_path: str) -> None:
        self.commitment_path = commitment_path

    def contexts(self) -> list[SupportedContext]:
        return [SupportedContext(abstract_syntax=STORAGE_COMMITMENT_PUSH_MODEL)]

    async def handle(self, session: Session, received, operation: RunningOperation | None) -> None:
        request: NActionRQ = received.message

        async def respond(status: int, comment: str | None = None) -> None:
            if status != Status.SUCCESS:
                session.log.warning("storage commitment refused", status=hex(status), reason=comment)
            await session.respond(
                NActionRSP(
                    message_id_being_responded_to=request.message_id,
                    status=status,
                    affected_sop_class_uid=STORAGE_COMMITMENT_PUSH_MODEL,
                    affected_sop_instance_uid=STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE,
                    action_type_id=request.action_type_id,
                    error_comment=comment,
                ),
                received.context_id,
            )

        if request.requested_sop_class_uid != STORAGE_COMMITMENT_PUSH_MODEL:
            await respond(Status.SOP_CLASS_NOT_SUPPORTED, f"SOP class {request.requested_sop_class_uid}"[:64])
            return
        if request.requested_sop_instance_uid != STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE:
            await respond(Status.NO_SUCH_SOP_INSTANCE, "the SOP instance is 1.2.840.10008.1.20.1.1")
            return
        if request.action_type_id != REQUEST_STORAGE_COMMITMENT:
            await respond(Status.NO_SUCH_ACTION_TYPE, f"action type {request.action_type_id}; only 1 exists")
            return
        try:
            transaction_uid, referenced = read_action_information(read_attribute_list(session, received))
        except BadAttributeList as bad:
            await respond(bad.status, bad.comment)
            return
        except InvalidCommitmentData as invalid:
            await respond(invalid.status, invalid.reason)
            return
        try:
            await session.ctx.lookup(self.commitment_path).ask(
                RequestCommitment(
                    transaction_uid=transaction_uid,
                    requestor_ae_title=session.calling_ae_title,
                    association=session.ctx.path,
                    context_id=received.context_id,
                    referenced=referenced,
                )
            )
        except (ActorError, ReplyError) as error:
            session.log.error("storage commitment could not be recorded", transaction_uid=transaction_uid, error=str(error))
            await respond(Status.PROCESSING_FAILURE, "the request could not be recorded")
            return
        session.log.info("storage commitment requested", transaction_uid=transaction_uid, instances=len(referenced))
        await respond(Status.SUCCESS)
