"""The DIMSE-N operations of a client association (PS3.7 10): N-CREATE, N-SET, N-ACTION
and N-EVENT-REPORT as requests, and N-EVENT-REPORTs a peer sends us.

Each request returns the peer's answer as an `NResult` whatever its status (a refusal
is an answer: `ok` tells); only the association failing raises. An N-EVENT-REPORT the
peer sends while we wait for something else is kept, not dropped, for
`receive_event_report` (a storage commitment report may come right behind the N-ACTION
response).
"""

from __future__ import annotations

from collections import deque

import attrs
import trio
from pydicom.dataset import Dataset

from ..protocol.commands import (
    DimseRequest,
    NActionRQ,
    NActionRSP,
    NCreateRQ,
    NCreateRSP,
    NEventReportRQ,
    NEventReportRSP,
    NSetRQ,
    NSetRSP,
)
from ..protocol.errors import LocalProtocolError
from ..protocol.negotiation import AcceptedContext
from ..protocol.status import Status, StatusClass, describe, status_class
from .datasets import decode_dataset, encode_dataset
from .errors import DimseTimeout, InvalidInput, NoPresentationContext
from .link import MemorySink, MessageReceived
from .session import AssociationSession


@attrs.frozen(kw_only=True)
class NResult:
    """The peer's answer to one N-request."""

    status: int
    sop_instance_uid: str | None = None  # the affected instance the response names
    attributes: Dataset | None = None  # an Attribute List / Action Reply, when one came
    error_comment: str | None = None
    error_id: int | None = None
    attribute_identifier_list: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return status_class(self.status) in (StatusClass.SUCCESS, StatusClass.WARNING)

    @property
    def meaning(self) -> str:
        return describe(self.status).meaning


@attrs.frozen(kw_only=True)
class EventReport:
    """An N-EVENT-REPORT the peer sent us (already answered)."""

    sop_class_uid: str
    sop_instance_uid: str
    event_type_id: int
    information: Dataset | None


class NServices(AssociationSession):
    """N-requests on top of the session's message flow (mixed into ClientAssociation)."""

    _event_reports: deque[MessageReceived]

    async def n_create(self, sop_class: str, attributes: Dataset | None, *, sop_instance_uid: str | None = None) -> NResult:
        context = self._context(sop_class)
        rq = self._build(
            NCreateRQ, affected_sop_class_uid=sop_class, affected_sop_instance_uid=sop_instance_uid, has_dataset=attributes is not None
        )
        return await self._n_request(rq, context, attributes, NCreateRSP)

    async def n_set(self, sop_class: str, sop_instance_uid: str, modifications: Dataset) -> NResult:
        context = self._context(sop_class)
        rq = self._build(NSetRQ, requested_sop_class_uid=sop_class, requested_sop_instance_uid=sop_instance_uid)
        return await self._n_request(rq, context, modifications, NSetRSP)

    async def n_action(
        self, sop_class: str, sop_instance_uid: str, action_type_id: int, information: Dataset | None
    ) -> NResult:
        context = self._context(sop_class)
        rq = self._build(
            NActionRQ, requested_sop_class_uid=sop_class, requested_sop_instance_uid=sop_instance_uid,
            action_type_id=action_type_id, has_dataset=information is not None,
        )
        return await self._n_request(rq, context, information, NActionRSP)

    async def n_event_report(
        self, sop_class: str, sop_instance_uid: str, event_type_id: int, information: Dataset | None
    ) -> NResult:
        """Send an N-EVENT-REPORT: what the SCP of a SOP class does (a storage commitment
        report), on a context where we play it - or, if the peer ignored the role we
        proposed, any context of the class (peers accept it there too)."""
        agreed = self._agreed()
        context = agreed.find(sop_class, as_scp=True) or agreed.find(sop_class)
        if context is None:
            raise NoPresentationContext(sop_class, role="SCP")
        rq = self._build(
            NEventReportRQ, affected_sop_class_uid=sop_class, affected_sop_instance_uid=sop_instance_uid,
            event_type_id=event_type_id, has_dataset=information is not None,
        )
        return await self._n_request(rq, context, information, NEventReportRSP)

    async def receive_event_report(self, *, timeout: float) -> EventReport:
        """The next N-EVENT-REPORT the peer sends (one that came earlier first), answered
        with Success - or 0110 when its Event Information cannot be decoded, and then it
        is returned without. DimseTimeout after `timeout` seconds; the association stays."""
        self._check_usable()
        received = self._event_reports.popleft() if self._event_reports else None
        with trio.move_on_after(timeout):
            while received is None:
                candidate = await self._receive("an N-EVENT-REPORT", timeout=None)
                if isinstance(candidate.message, NEventReportRQ):
                    received = candidate
                else:
                    self.log.warning("dropping an unexpected DIMSE message", message=type(candidate.message).__name__)
                    if candidate.dataset is not None:
                        await candidate.dataset.discard()
        if received is None:
            raise DimseTimeout("an N-EVENT-REPORT", timeout)
        return await self._answer_event_report(received)

    # --- underneath ---------------------------------------------------------------------------

    def _build(self, request_type: type[DimseRequest], **fields) -> DimseRequest:
        try:
            return request_type(message_id=self._next_id(), **fields)
        except LocalProtocolError as error:
            raise InvalidInput(str(error)) from None

    async def _n_request(self, rq: DimseRequest, context: AcceptedContext, dataset: Dataset | None, response_type: type) -> NResult:
        await self._settle()
        data = None
        if dataset is not None:
            try:
                data = encode_dataset(dataset, context.transfer_syntax)
            except InvalidInput:
                raise
            except Exception as error:  # pydicom: a value that cannot be encoded
                raise InvalidInput(f"cannot encode the data set: {error}") from None
        await self._send(rq, context.context_id, data)
        received = await self._response_to(rq.message_id, f"{type(rq).__name__[:-2]} response")
        response = received.message
        if not isinstance(response, response_type):
            await self._give_up(f"the peer answered {type(rq).__name__} with {type(response).__name__}")
        attributes = None
        if isinstance(received.dataset, MemorySink) and received.dataset.data:
            try:
                attributes = decode_dataset(received.dataset.data, context.transfer_syntax)
            except Exception:  # an unreadable attribute list must not hide the status
                attributes = None
        return NResult(
            status=response.status,
            sop_instance_uid=response.affected_sop_instance_uid,
            attributes=attributes,
            error_comment=response.error_comment,
            error_id=response.error_id,
            attribute_identifier_list=tuple(response.attribute_identifier_list or ()),
        )

    async def _answer_event_report(self, received: MessageReceived) -> EventReport:
        rq: NEventReportRQ = received.message
        context = self.negotiated.context(received.context_id) if self.negotiated else None
        information, status = None, Status.SUCCESS
        if isinstance(received.dataset, MemorySink) and context is not None:
            try:
                information = decode_dataset(received.dataset.data, context.transfer_syntax)
            except Exception:
                status = Status.PROCESSING_FAILURE
        await self._send(
            NEventReportRSP(
                message_id_being_responded_to=rq.message_id,
                status=status,
                affected_sop_class_uid=rq.affected_sop_class_uid,
                affected_sop_instance_uid=rq.affected_sop_instance_uid,
                event_type_id=rq.event_type_id,
            ),
            received.context_id,
        )
        return EventReport(
            sop_class_uid=rq.affected_sop_class_uid or "",
            sop_instance_uid=rq.affected_sop_instance_uid or "",
            event_type_id=rq.event_type_id or 0,
            information=information,
        )
