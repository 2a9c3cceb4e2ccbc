"""Modality Worklist Information Model - FIND as SCP (C-FIND, PS3.4 K).

Like a Query/Retrieve C-FIND, matches stream in pages from the index as Pending
responses and a C-CANCEL stops the walk; matching is storage/worklist_query.py. Every
query answered is published as `WorklistQueried` with the items returned.
"""

from ....client.link import MemorySink
from ....protocol.catalog import MODALITY_WORKLIST_FIND
from ....protocol.commands import CFindRQ, CFindRSP
from ....protocol.datasets import UndecodableDataset, decode_dataset, encode_dataset
from ....protocol.negotiation import SupportedContext
from ....protocol.status import QueryRetrieveStatus, Status
from ....storage import audit_records
from ....storage.worklist_db import WorklistMatch
from ..dimse_n_events import WorklistQueried
from ..index import QueryRefused
from ..index_dimse_n import FindWorklist
from .base import RunningOperation, Service, Session
from .identifiers import audited_keys

PAGE = 50


class WorklistService(Service):
    permission = "worklist"
    requests = (CFindRQ,)
    operation = True

    def __init__(self, *, index_path: str) -> None:
        self.index_path = index_path

    def contexts(self) -> list[SupportedContext]:
        return [SupportedContext(abstract_syntax=MODALITY_WORKLIST_FIND)]

    async def handle(self, session: Session, received, operation: RunningOperation | None) -> None:
        assert operation is not None
        request: CFindRQ = received.message
        context = session.context(received.context_id)

        async def respond(status: int, comment: str | None = None, dataset: bytes | None = None) -> None:
            await session.respond(
                CFindRSP(
                    message_id_being_responded_to=request.message_id,
                    status=status,
                    affected_sop_class_uid=request.affected_sop_class_uid,
                    error_comment=comment,
                    has_dataset=dataset is not None,
                ),
                received.context_id,
                dataset,
            )

        if not isinstance(received.dataset, MemorySink):
            await respond(QueryRetrieveStatus.UNABLE_TO_PROCESS, "the request carries no identifier")
            return
        try:
            identifier = decode_dataset(
                received.dataset.data, context.transfer_syntax, max_depth=session.settings.max_sequence_depth
            )
        except UndecodableDataset as error:
            session.log.warning("worklist query refused", reason=str(error))
            await respond(QueryRetrieveStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(error)[:64])
            return
        index = session.ctx.lookup(self.index_path)
        sent: list[WorklistMatch] = []
        cursor: int | None = 0
        status = Status.SUCCESS
        while cursor is not None:
            try:
                page = await index.ask(FindWorklist(identifier=identifier, cursor=cursor, size=PAGE), timeout=None)
            except QueryRefused as refused:
                session.log.warning("worklist query refused", status=hex(refused.status), reason=refused.reason)
                await respond(refused.status, refused.comment[:64])
                return
            for match in page.matches:
                if operation.cancel_requested:
                    break
                await respond(QueryRetrieveStatus.PENDING, dataset=encode_dataset(match.response, context.transfer_syntax))
                sent.append(match)
            cursor = None if operation.cancel_requested else page.cursor
        if operation.cancel_requested:
            status = QueryRetrieveStatus.CANCELED
        session.log.info("worklist query answered", matches=len(sent), status=hex(status))
        await session.audit(audit_records.query(
            session.called_ae_title, session.audit_peer(), sop_class_uid=request.affected_sop_class_uid,
            keys={**audited_keys(identifier), "ScheduledStationAETitle": _station(identifier)}, matches=len(sent), status=status,
        ))
        await respond(status)
        session.ctx.publish(
            WorklistQueried(
                calling_ae_title=session.calling_ae_title,
                association_id=session.association_id,
                items=tuple(sent),
                status=int(status),
            )
        )


def _station(identifier) -> str:
    steps = identifier.get("ScheduledProcedureStepSequence") or []
    return str(steps[0].get("ScheduledStationAETitle", "")) if len(steps) else ""
