"""Query/Retrieve FIND as SCP (C-FIND, PS3.4 C.4.1), Patient Root and Study Root.

Matches stream: each page the index finds is answered as Pending responses before the
next page is asked for, and a C-CANCEL stops the walk with a Cancel status.
"""

import trio

from ....protocol.catalog import FIND_MODELS
from ....protocol.commands import CFindRQ, CFindRSP
from ....protocol.datasets import encode_dataset
from ....protocol.negotiation import SupportedContext
from ....protocol.status import QueryRetrieveStatus, Status
from ..activity import QueryAnswered
from ..index import FindMatches, QueryRefused
from ....storage import audit_records
from .base import RunningOperation, Service, Session
from .identifiers import BadIdentifier, audited_keys, read_identifier

PAGE = 50


class FindService(Service):
    permission = "query"
    requests = (CFindRQ,)
    operation = True

    def __init__(self, *, index_path: str, ae_title: str) -> None:
        self.index_path = index_path
        self.ae_title = ae_title

    def contexts(self) -> list[SupportedContext]:
        return [SupportedContext(abstract_syntax=uid) for uid in FIND_MODELS]

    async def handle(self, session: Session, received, operation: RunningOperation | None) -> None:
        assert operation is not None
        request: CFindRQ = received.message
        began, level, sent = trio.current_time(), "", 0
        identifier = None

        async def finish(status: int, comment: str | None = None) -> None:
            session.ctx.publish(QueryAnswered(
                association_id=session.association_id, level=level, matches=sent, seconds=trio.current_time() - began, status=status,
            ))
            await session.audit(audit_records.query(
                session.called_ae_title, session.audit_peer(), sop_class_uid=request.affected_sop_class_uid,
                keys=audited_keys(identifier), matches=sent, status=status,
            ))
            await session.respond(
                CFindRSP(
                    message_id_being_responded_to=request.message_id,
                    status=status,
                    affected_sop_class_uid=request.affected_sop_class_uid,
                    error_comment=comment,
                ),
                received.context_id,
            )

        try:
            identifier, model, transfer_syntax = read_identifier(session, received)
        except BadIdentifier as bad:
            session.log.warning("query refused", status=hex(bad.status), reason=bad.reason)
            await finish(bad.status, bad.comment)
            return
        level = str(identifier.get("QueryRetrieveLevel", "")) or "WORKLIST"
        index = session.ctx.lookup(self.index_path)
        cursor: int | None = 0
        while cursor is not None and not operation.cancel_requested:
            try:
                page = await index.ask(
                    FindMatches(identifier=identifier, model=model, cursor=cursor, size=PAGE, retrieve_ae_title=self.ae_title),
                    timeout=None,
                )
            except QueryRefused as refused:
                session.log.warning("query refused", status=hex(refused.status), reason=refused.reason)
                await finish(refused.status, refused.comment[:64])
                return
            for response in page.responses:
                if operation.cancel_requested:
                    session.log.info("query cancelled", matches_sent=sent)
                    await finish(QueryRetrieveStatus.CANCELED)
                    return
                await session.link.send(
                    CFindRSP(
                        message_id_being_responded_to=request.message_id,
                        status=QueryRetrieveStatus.PENDING,
                        affected_sop_class_uid=request.affected_sop_class_uid,
                        has_dataset=True,
                    ),
                    received.context_id,
                    encode_dataset(response, transfer_syntax),
                )
                sent += 1
            cursor = page.cursor
        if operation.cancel_requested:
            await finish(QueryRetrieveStatus.CANCELED)
            return
        session.log.info("query answered", level=level, matches=sent)
        await finish(Status.SUCCESS)
