"""Verification SOP class (C-ECHO, PS3.4 Annex A)."""

from ....protocol.catalog import VERIFICATION
from ....protocol.commands import CEchoRQ, CEchoRSP
from ....protocol.negotiation import SupportedContext
from ....protocol.status import Status
from .base import Service


class VerificationService(Service):
    requests = (CEchoRQ,)

    def contexts(self) -> list[SupportedContext]:
        return [SupportedContext(abstract_syntax=VERIFICATION)]

    async def handle(self, session, received, operation) -> None:
        request = received.message
        await session.respond(
            CEchoRSP(
                message_id_being_responded_to=request.message_id,
                status=Status.SUCCESS,
                affected_sop_class_uid=VERIFICATION,
            ),
            received.context_id,
        )
