"""Modality Performed Procedure Step SOP class as SCP (N-CREATE, N-SET; PS3.4 F.7).

The index checks every request against the rules of storage/mpps.py and records it in
the same transaction; the service turns a refusal into its status (with the Attribute
Identifier List and Error ID the refusal names) and each change of state into an event:
`MPPSStarted`, `MPPSCompleted`, `MPPSDiscontinued`.
"""

from ....protocol.catalog import MODALITY_PERFORMED_PROCEDURE_STEP
from ....protocol.commands import NCreateRQ, NCreateRSP, NSetRQ, NSetRSP
from ....protocol.negotiation import SupportedContext
from ....protocol.status import Status
from ....protocol.uid import new_uid
from ....storage.mpps import StepStatus
from ....storage.mpps_db import PerformedStep
from ..dimse_n_events import MPPSCompleted, MPPSDiscontinued, MPPSStarted
from ..index_dimse_n import CreatePerformedStep, PerformedStepRefused, SetPerformedStep
from .attribute_list import BadAttributeList, attributes_of, read_attribute_list
from .base import RunningOperation, Service, Session

_EVENTS = {StepStatus.COMPLETED: MPPSCompleted, StepStatus.DISCONTINUED: MPPSDiscontinued}


class PerformedStepService(Service):
    permission = "mpps"
    requests = (NCreateRQ, NSetRQ)
    operation = True

    def __init__(self, *, index_path: str) -> None:
        self.index_path = index_path

    def contexts(self) -> list[SupportedContext]:
        return [SupportedContext(abstract_syntax=MODALITY_PERFORMED_PROCEDURE_STEP)]

    async def handle(self, session: Session, received, operation: RunningOperation | None) -> None:
        request = received.message
        create = isinstance(request, NCreateRQ)
        sop_class = request.affected_sop_class_uid if create else request.requested_sop_class_uid
        uid = (request.affected_sop_instance_uid or new_uid()) if create else request.requested_sop_instance_uid
        response_type = NCreateRSP if create else NSetRSP

        async def respond(status: int, comment: str | None = None, tags: tuple[int, ...] = (), error_id: int | None = None) -> None:
            await session.respond(
                response_type(
                    message_id_being_responded_to=request.message_id,
                    status=status,
                    affected_sop_class_uid=MODALITY_PERFORMED_PROCEDURE_STEP,
                    affected_sop_instance_uid=uid,
                    error_comment=comment,
                    attribute_identifier_list=tags or None,
                    error_id=error_id,
                ),
                received.context_id,
            )

        if sop_class != MODALITY_PERFORMED_PROCEDURE_STEP:
            await respond(Status.SOP_CLASS_NOT_SUPPORTED, f"SOP class {sop_class} on the MPPS context"[:64])
            return
        try:
            attributes, charset = attributes_of(read_attribute_list(session, received))
        except BadAttributeList as bad:
            await respond(bad.status, bad.comment)
            return
        index = session.ctx.lookup(self.index_path)
        try:
            if create:
                reply = await index.ask(
                    CreatePerformedStep(
                        sop_instance_uid=uid, attributes=attributes, specific_character_set=charset,
                        creator_ae_title=session.calling_ae_title,
                    )
                )
            else:
                reply = await index.ask(SetPerformedStep(sop_instance_uid=uid, changes=attributes, specific_character_set=charset))
        except PerformedStepRefused as refused:
            refusal = refused.refusal
            session.log.warning(
                "performed procedure step refused", sop_instance_uid=uid, status=hex(refusal.status), reason=refusal.comment
            )
            await respond(refusal.status, refusal.comment, refusal.tags, refusal.error_id)
            return
        step: PerformedStep = reply.step
        await respond(Status.SUCCESS)
        session.log.info("performed procedure step", sop_instance_uid=uid, status=step.status.value, created=create)
        # A final step takes no N-SET, so a successful one that leaves it final made it so.
        event = MPPSStarted if create else _EVENTS.get(step.status)
        if event is not None:
            session.ctx.publish(
                event(
                    sop_instance_uid=uid,
                    calling_ae_title=session.calling_ae_title,
                    attributes=step.attributes,
                    worklist_items=step.worklist_items,
                )
            )
